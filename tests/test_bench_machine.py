"""The benchmark's environment handling and roofline arithmetic (no timing is asserted)."""

import pytest

from refattn._machine import (
    CLEANED_MARKER,
    Rates,
    benchmark_env,
    describe,
    roofline_seconds,
)


def test_benchmark_env_drops_only_the_slow_blas_variables() -> None:
    environ = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576", "PATH": "/bin"}
    env = benchmark_env(environ)
    assert env is not None
    assert "OPENBLAS_CORETYPE" not in env
    assert "OPENBLAS_L2_SIZE" not in env
    assert env["PATH"] == "/bin"
    assert "OPENBLAS_CORETYPE=Haswell" in env[CLEANED_MARKER]
    assert environ["OPENBLAS_CORETYPE"] == "Haswell"  # the caller's mapping is untouched


def test_benchmark_env_changes_nothing_when_clean_or_already_reexecuted() -> None:
    assert benchmark_env({"PATH": "/bin"}) is None
    assert benchmark_env({"OPENBLAS_CORETYPE": "Haswell", CLEANED_MARKER: "x"}) is None


@pytest.mark.parametrize(
    ("shape", "causal", "pairs"),
    [((1, 1, 4, 8), False, 16), ((1, 1, 4, 8), True, 10), ((2, 3, 5, 8), False, 150)],
)
def test_roofline_counts_two_gemms_and_one_exp_per_kept_score(
    shape: tuple[int, int, int, int], causal: bool, pairs: int
) -> None:
    rates = Rates(gemm_flops=1e9, exp2_per_second=1e8)
    dim = shape[-1]
    expected = 2 * (2 * pairs * dim) / 1e9 + pairs / 1e8
    assert roofline_seconds(shape, causal, rates) == pytest.approx(expected, rel=1e-12)


def test_describe_names_the_blas_kernel_and_the_environment() -> None:
    text = "\n".join(describe())
    assert "kernel in use:" in text
    assert "environment:" in text
    assert "NumPy" in text
