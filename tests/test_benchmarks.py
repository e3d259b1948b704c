"""The benchmark scripts still run (`make bench` is not part of CI): a --quick pass of run_all.py."""

import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_run_all_quick_prints_the_summary_table():
    out = subprocess.run(
        [sys.executable, "benchmarks/run_all.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = out.stdout.split("## Summary", 1)[1]
    for row in ("share of fp32 matmul peak", "Lightning vs bare loop", "no data set held twice"):
        assert row in summary
    assert "held once: yes; splits are index views: yes" in summary


def test_bf16_rows_are_measured_only_where_the_cpu_computes_bf16_natively():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import summary
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert not summary.native_bf16(["avx2", "avx512f"])
    assert summary.native_bf16(["avx2", "avx512f", "avx512_bf16"])
    assert summary.native_bf16(["amx_bf16", "amx_tile"])
    assert summary.bf16_wanted("on") and not summary.bf16_wanted("off")
    assert summary.bf16_wanted("auto") == summary.native_bf16(summary.cpu_model_and_flags()[1])
    # a row left out says why: asked for, or the CPU's lack of native bf16
    assert summary.bf16_skipped("off") == "--bf16 off"
    assert "no avx512_bf16 or amx_bf16" in summary.bf16_skipped("auto")


@pytest.mark.parametrize("choice", ["on", "off"])
def test_head_and_training_benchmarks_keep_freed_memory_as_training_does(choice):
    # in a fresh process: keep_freed_memory() changes the process's malloc for good
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import summary; before = summary.header(); "
        "summary.apply_malloc_keep(sys.argv[1]); print(before); print(summary.header())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, choice], cwd=ROOT, capture_output=True, text=True, check=True
    )
    before, after = out.stdout.splitlines()[-2:]
    assert "malloc_keep off" in before
    glibc = platform.libc_ver()[0] == "glibc"
    assert f"malloc_keep {'on' if choice == 'on' and glibc else 'off'}" in after
