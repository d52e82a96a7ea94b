"""What several cases share, written the way users write it (not part of any snippet's bug)."""

import numpy as np


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """The usual max-subtracted softmax over ``axis`` (the key axis by default)."""
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)
