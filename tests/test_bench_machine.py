"""The benchmark's options, environment handling and roofline arithmetic (no timing is asserted)."""

import pytest

from refattn._machine import (
    CLEANED_MARKER,
    CpuClock,
    Rates,
    benchmark_env,
    describe,
    other_load,
    roofline_seconds,
)
from refattn.bench import SHAPES, parse_args, summary


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


def test_bench_runs_every_table_at_every_shape_by_default() -> None:
    args = parse_args([])
    assert args.sections == ["forward", "backward", "long", "tiny"]
    assert args.shapes == SHAPES
    assert args.repeat == 7
    assert not args.write_docs


def test_bench_quick_keeps_one_shape_and_drops_the_long_table_unless_asked() -> None:
    quick = parse_args(["--quick", "--repeat", "3"])
    assert quick.sections == ["forward", "backward", "tiny"]
    assert quick.shapes == [(2, 8, 1024, 64)]
    assert quick.repeat == 3
    assert parse_args(["--quick", "--only", "long"]).sections == ["long"]


@pytest.mark.parametrize(
    ("only", "sections"),
    [
        (["--only", "tiny"], ["tiny"]),
        (["--only", "tiny,forward"], ["forward", "tiny"]),
        (["--only", "backward", "--only", "forward"], ["forward", "backward"]),
        (["--only", "long, tiny", "--only", "tiny"], ["long", "tiny"]),
    ],
)
def test_bench_only_picks_tables_in_their_usual_order(only: list[str], sections: list[str]) -> None:
    assert parse_args(only).sections == sections


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        (["--shapes", "1x32x512x64"], [(1, 32, 512, 64)]),
        (["--shapes", "5,1"], [(2, 8, 1024, 64), (1, 32, 512, 64)]),
        (["--shapes", "3", "--shapes", "4x8x256x64"], [(4, 8, 256, 64), (1, 8, 1024, 128)]),
        (["--quick", "--shapes", "4"], [(1, 16, 2048, 64)]),
    ],
)
def test_bench_shapes_picks_a_subset_of_the_five(
    shapes: list[str], expected: list[tuple[int, int, int, int]]
) -> None:
    assert parse_args(shapes).shapes == expected


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--only", "fwd"], "unknown table 'fwd'"),
        (["--only", ","], "--only needs at least one of"),
        (["--shapes", "6"], "unknown shape '6'"),
        (["--shapes", "1x1x4x8"], "unknown shape '1x1x4x8'"),
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--write-docs", "--only", "tiny"], "drop --only and --shapes"),
        (["--write-docs", "--shapes", "1"], "drop --only and --shapes"),
    ],
)
def test_bench_refuses_bad_options_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert fragment in capsys.readouterr().err


def test_bench_write_docs_still_allowed_for_a_full_or_quick_run() -> None:
    assert parse_args(["--write-docs"]).write_docs
    assert parse_args(["--write-docs", "--quick"]).shapes == [(2, 8, 1024, 64)]


def test_other_load_is_the_busy_time_this_process_tree_did_not_use() -> None:
    start = CpuClock(wall=10.0, busy=100.0, own=1.0)
    # 4 s of wall on 2 cores = 8 CPU-seconds; 6 busy, of which 2.5 ours: 3.5 others'
    end = CpuClock(wall=14.0, busy=106.0, own=3.5)
    assert other_load(start, end, cores=2) == pytest.approx(3.5 / 8)
    assert other_load(start, CpuClock(wall=14.0, busy=101.0, own=3.5), cores=2) == 0.0
    assert other_load(CpuClock(10.0, None, 1.0), end, cores=2) is None


def test_cpu_clock_reads_this_machine() -> None:
    before = CpuClock.now()
    sum(i * i for i in range(200_000))  # some CPU time of our own
    after = CpuClock.now()
    assert after.wall > before.wall
    assert after.own >= before.own
    load = other_load(before, after, cores=1)
    assert load is None or 0.0 <= load <= 1.0


def test_summary_gives_the_geometric_mean_and_the_worst_row() -> None:
    line = summary([("a", 0.5), ("b", 2.0), ("c", 1.0)], "x / y")
    assert line == "x / y: geometric mean 1.00×, largest 2.00× at b"
