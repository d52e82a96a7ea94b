"""Framework semantics reproduced on NumPy arrays, built on :func:`refattn.attention`.

Each adapter takes the framework's own argument names and conventions and translates them
to refattn's explicit ones; none holds a second copy of the math.
"""
