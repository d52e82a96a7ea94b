"""Mean-pooling over padded positions, whose values depend on which kernel ran.

What happens:
    No error; the pooled vector changes between training and evaluation. With a
    ``src_key_padding_mask``, ``nn.TransformerEncoder`` in ``eval()`` under ``no_grad``
    takes its fast path (nested tensors) and returns **zeros** at padded positions; in
    ``train()`` the math path returns finite, meaningless values there. Both agree at the
    real tokens (within 1e-6 here). A classifier that averages over all ``L`` positions sees a
    different input in evaluation than in training: here the pooled vector of the padded
    example moves by up to 0.56.

Why:
    What a layer puts at padded *query* positions is unspecified: nothing should read it.
    Pooling with ``.mean(dim=1)`` reads it, so the result depends on the kernel, the mode
    and the version.

Fix:
    Pool over real tokens only: ``(out * keep[..., None]).sum(1) / keep.sum(1, keepdims=True)``
    (or take the ``[CLS]`` / last real token); never rely on the values at padded positions.

Sources:
    https://github.com/pytorch/pytorch/issues/86120
        (TransformerEncoder src_key_padding_mask "does not work" in eval(): fast path)
    https://github.com/pytorch/pytorch/issues/97111
        (TransformerEncoder truncates the output with enable_nested_tensor=True)
    https://github.com/pytorch/pytorch/pull/81013 (Better Transformer fast-path conditions)
"""

import numpy as np

from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"pooled output, padded positions zeroed, differs from the reference"
TAGS = ("backend-constraint", "mask-missing")
SYMPTOMS = (
    "model.eval() gives different results than training with src_key_padding_mask",
    "TransformerEncoder output is zero at padded positions",
    "mean pooling includes padding tokens",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 5, 8))  # (B, L, E)
    keep = np.arange(5) < np.array([[3], [5]])  # (B, L): example 0 has 3 tokens
    return x, keep


def _encode(x: np.ndarray, keep: np.ndarray, zero_padding: bool) -> np.ndarray:
    """One attention layer; ``zero_padding`` is what fused/nested kernels do."""
    scores = np.where(keep[:, None, :], x @ x.swapaxes(-1, -2) / np.sqrt(8), -np.inf)
    out = softmax(scores) @ x + x
    return np.where(keep[..., None], out, 0.0) if zero_padding else out


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    pooled = [_encode(x, keep, zero).mean(axis=1) for zero in (True, False)]
    return np.stack(pooled)  # the same model, two kernels


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    pooled = []
    for zero in (True, False):
        out = _encode(x, keep, zero)
        pooled.append((out * keep[..., None]).sum(1) / keep.sum(1, keepdims=True))
    return np.stack(pooled)


# --8<-- [end:fixed]


def detect(pooled: np.ndarray) -> None:
    check_close(pooled[0], pooled[1], name="pooled output, padded positions zeroed,")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "The two paths are the same `nn.TransformerEncoder`: `eval()` under `no_grad` (fast "
    "path, zeros at padding) and `train()` with dropout 0 (math path)."
)


def _torch(masked_mean: bool) -> object:
    import torch

    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, num_layers=1)
    x, keep = (torch.from_numpy(a) for a in _inputs())
    x = x.float()
    pooled = []
    with torch.no_grad():
        for train in (False, True):
            encoder.train(train)
            out = encoder(x, src_key_padding_mask=~keep)
            if masked_mean:
                pooled.append((out * keep[..., None]).sum(1) / keep.sum(1, keepdim=True))
            else:
                pooled.append(out.mean(dim=1))
    return torch.stack(pooled)


def torch_broken() -> object:
    return _torch(masked_mean=False)


def torch_fixed() -> object:
    return _torch(masked_mean=True)
