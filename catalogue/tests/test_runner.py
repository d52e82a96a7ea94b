"""The runner judges variants honestly: a wrong claim, a changed outcome or a bad fix fails."""

from __future__ import annotations

import types

import numpy as np
import pytest

from catalogue import Case
from catalogue.runner import normalise, resolve, run, run_variant, to_numpy
from refattn.checks import check_finite
from refattn.errors import CheckFailure


def _case(**names: object) -> Case:
    """A case module made up for the test: NumPy raises ValueError('bad shape 3')."""

    def broken() -> None:
        raise ValueError("bad shape 3")

    module = types.ModuleType("made_up")
    module.__doc__ = "A made-up case.\n\nWhat happens:\n    x\n\nWhy:\n    y\n\nFix:\n    z\n"
    defaults: dict[str, object] = {
        "KIND": "exception",
        "EXPECTED": ValueError,
        "MATCH": r"bad shape \d",
        "TAGS": ("mask-shape",),
        "broken": broken,
        "fixed": lambda: np.ones(2),
    }
    for key, value in {**defaults, **names}.items():
        setattr(module, key, value)
    return Case("made_up", module)


def test_claimed_exception_is_ok_and_a_wrong_message_is_not() -> None:
    assert run(_case()).broken_ok
    outcome = run(_case(MATCH=r"bad shape 4"))
    assert not outcome.broken_ok
    assert outcome.broken == "ValueError: bad shape 3"
    assert not run(_case(EXPECTED=TypeError)).broken_ok


def test_a_subclass_of_the_claimed_exception_is_not_the_claim() -> None:
    class Narrow(ValueError):
        pass

    def broken() -> None:
        raise Narrow("bad shape 3")

    assert not run(_case(broken=broken)).broken_ok


def test_nan_variant_is_judged_by_detect_and_its_fix_by_the_reference() -> None:
    import torch

    def detect(output: np.ndarray) -> None:
        check_finite(output, name="weights")

    def torch_fixed() -> object:
        return torch.tensor([1.0, 2.0])

    case = _case(
        detect=detect,
        reference=lambda: np.array([1.0, 2.0]),
        fixed=lambda: np.array([1.0, 2.0]),
        torch_broken=lambda: torch.tensor([1.0, float("nan")]),
        torch_fixed=torch_fixed,
        TORCH_KIND="nan",
        TORCH_EXPECTED=CheckFailure,
        TORCH_MATCH=r"weights has 1 NaN",
    )
    outcome = run_variant(case, "torch")
    assert outcome is not None
    assert outcome.ok
    assert outcome.broken.startswith("returned NaN/inf; detect raised CheckFailure: weights")
    wrong_fix = _case(**{**vars(case.module), "torch_fixed": lambda: torch.tensor([1.0, 2.5])})
    outcome = run_variant(wrong_fix, "torch")
    assert outcome is not None
    assert outcome.fixed_ok is False
    assert "Not equal to tolerance" in (outcome.fixed or "")


def test_a_tensorflow_class_given_by_its_path_is_resolved_and_matched() -> None:
    import tensorflow as tf

    cls = resolve("tensorflow.errors.InvalidArgumentError")
    assert cls is tf.errors.InvalidArgumentError
    with pytest.raises(TypeError, match="does not name an exception class"):
        resolve("tensorflow.constant")

    def tf_broken() -> object:
        return tf.reshape(tf.zeros((2, 5)), (3, 3))

    case = _case(
        tf_broken=tf_broken,
        TF_EXPECTED="tensorflow.errors.InvalidArgumentError",
        TF_MATCH=r"Input to reshape is a tensor with 10 values",
    )
    outcome = run_variant(case, "tf")
    assert outcome is not None
    assert outcome.ok
    assert "function_node" not in outcome.broken  # normalised: no device or kernel names
    assert outcome.broken.startswith("InvalidArgumentError: Input to reshape")


def test_normalise_drops_addresses_device_prefixes_and_colours() -> None:
    text = "\x1b[1m{{function_node __wrapped__X_device_/job:l/CPU:0}} bad at 0x7f3a2b1c9d80\x1b[0m"
    assert normalise(text) == "bad at 0x…"


def test_to_numpy_converts_each_framework() -> None:
    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    bf16 = to_numpy(torch.tensor([1.5], dtype=torch.bfloat16, requires_grad=True))
    assert bf16.dtype == np.float32
    assert bf16.tolist() == [1.5]
    pair = to_numpy((tf.constant([1.0]), jnp.asarray([2.0])))
    assert isinstance(pair, tuple)
    assert [a.tolist() for a in pair] == [[1.0], [2.0]]


def test_detector_numbers_are_recorded_to_four_digits() -> None:
    from catalogue.runner import round_decimals

    text = "at [0, 1]: -0.434529 vs -0.0643316 (largest 0.731). sums to 0.683612. v2.5.1"
    assert (
        round_decimals(text)
        == "at [0, 1]: -0.4345 vs -0.06433 (largest 0.731). sums to 0.6836. v2.5.1"
    )
