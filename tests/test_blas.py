"""OPENBLAS_CORETYPE is chosen from the CPU's flags before FAISS loads, and FAISS's OpenBLAS uses it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from marginface.blas import AVX512, choose_openblas_coretype, coretype_for, cpu_flags

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx2 fma avx512f avx512dq avx512bw avx512vl
bugs\t\t: none

processor\t: 1
flags\t\t: fpu sse2
"""


def test_flags_are_read_from_the_first_processor():
    assert cpu_flags(CPUINFO) == {"fpu", "sse2", "avx2", "fma", *AVX512}
    assert cpu_flags("model name: x\n") == frozenset()


@pytest.mark.parametrize(
    ("flags", "core"),
    [
        ({"avx2", "fma", *AVX512}, "SkylakeX"),
        ({"avx2", "fma", "avx512f"}, "Haswell"),  # AVX-512 foundation alone: not SkylakeX's set
        ({"avx2", "fma"}, "Haswell"),
        ({"avx", "sse4_2"}, None),
        (set(), None),
    ],
)
def test_coretype_follows_the_flags(flags, core):
    assert coretype_for(frozenset(flags)) == core


def test_a_value_already_set_is_kept(monkeypatch):
    monkeypatch.delitem(sys.modules, "faiss", raising=False)
    environ = {"OPENBLAS_CORETYPE": "Zen"}
    assert choose_openblas_coretype(environ, frozenset(AVX512)) is None
    assert environ == {"OPENBLAS_CORETYPE": "Zen"}
    environ = {}
    expected = "SkylakeX" if sys.platform == "linux" else None
    assert choose_openblas_coretype(environ, frozenset(AVX512)) == expected
    assert environ.get("OPENBLAS_CORETYPE") == expected


def test_nothing_is_set_once_faiss_is_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", object())
    environ = {}
    assert choose_openblas_coretype(environ, frozenset(AVX512)) is None
    assert environ == {}


def blas_kernels(imports: str) -> tuple[str | None, dict[str, list[str]]]:
    """In a fresh process without OPENBLAS_CORETYPE: `imports`, then the value it ended with and the
    kernel family of each OpenBLAS loaded, numpy's and FAISS's apart."""
    code = (
        f"import json, os, {imports}\n"
        "from threadpoolctl import threadpool_info\n"
        "libs = [i for i in threadpool_info() if i['internal_api'] == 'openblas']\n"
        "kinds = {k: [i.get('architecture') for i in libs if (k == 'faiss') == ('faiss' in i['filepath'])] for k in ('faiss', 'numpy')}\n"
        "print(json.dumps([os.environ.get('OPENBLAS_CORETYPE'), kinds]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    chosen, kinds = json.loads(out.stdout.strip().splitlines()[-1])
    return chosen, kinds


def test_faiss_loads_its_openblas_with_the_chosen_kernels_and_numpy_keeps_its_own():
    pytest.importorskip("threadpoolctl")
    _, alone = blas_kernels("numpy")
    chosen, kinds = blas_kernels("marginface, faiss")
    assert chosen == coretype_for(cpu_flags())
    assert kinds["numpy"] == alone["numpy"]  # numpy's OpenBLAS chose for itself
    if chosen is None or not kinds["faiss"]:  # no flags to act on, or a FAISS without OpenBLAS
        pytest.skip(f"nothing to check here (coretype {chosen}, FAISS BLAS {kinds['faiss']})")
    assert [a.lower() for a in kinds["faiss"]] == [chosen.lower()] * len(kinds["faiss"])
