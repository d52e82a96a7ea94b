"""Peak memory of one call, as the memory tests measure it."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable


def peak_bytes(call: Callable[[], object]) -> int:
    """Peak bytes tracemalloc traces while ``call`` runs (its inputs already exist).

    NumPy reports its array allocations to tracemalloc, so this is the scratch a call
    allocates, arrays included.
    """
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
