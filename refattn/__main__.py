"""``python -m refattn``: the ``refattn`` command line (see :mod:`refattn.cli`)."""

from refattn.cli import entry

if __name__ == "__main__":
    entry()
