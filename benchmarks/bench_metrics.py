"""Benchmark of the open-set evaluation: verification on many pairs, exact and HNSW search.

Run: .venv/bin/python benchmarks/bench_metrics.py [--pairs N] [--gallery N] [--probes N] [--dim D]
Prints a markdown table. Times are wall-clock seconds, best of --repeats for verification.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import summary
from marginface.metrics import verification_metrics
from marginface.search import FlatSearch, HNSWSearch
from marginface.search.base import as_unit_rows


def face_like(
    n_ids: int, per_id: int, dim: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(identity directions, images): an image is its identity plus noise at about 45 degrees."""
    centres = rng.normal(size=(n_ids, dim)).astype(np.float32)
    noise = rng.normal(size=(n_ids * per_id, dim)).astype(np.float32)
    return centres, np.repeat(centres, per_id, axis=0) + noise


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_verification(n_pairs: int, repeats: int, rng: np.random.Generator) -> list[tuple]:
    """verification_metrics on random pair scores: 1% genuine, cosines of a decent model."""
    issame = rng.random(n_pairs) < 0.01
    scores = np.clip(rng.normal(0.05 + 0.5 * issame, 0.15), -1, 1).astype(np.float32)
    seconds, out = timed(lambda: verification_metrics(scores, issame), repeats)
    note = f"target < 3 s; TAR@FAR=1e-4 = {out['tar@far=1e-4']:.4f}"
    return [
        (
            "verification_metrics (AUC, EER, 10-fold acc., 4 TAR@FAR)",
            f"{n_pairs:,} pairs",
            seconds,
            note,
        )
    ]


def torch_top_k(gallery: np.ndarray, queries: np.ndarray, k: int, block: int = 256):
    """The other exact path measured: torch GEMM of `block` queries against everything + topk."""
    import torch

    g = torch.from_numpy(as_unit_rows(gallery, "gallery"))
    q = torch.from_numpy(as_unit_rows(queries, "queries"))
    scores, ids = [], []
    for start in range(0, len(q), block):
        top = torch.topk(q[start : start + block] @ g.T, k, dim=1)
        scores.append(top.values)
        ids.append(top.indices)
    return torch.cat(scores).numpy(), torch.cat(ids).numpy()


def bench_search(
    n_gallery: int,
    n_probes: int,
    dim: int,
    k: int,
    rng: np.random.Generator,
    threads: int,
    peak: float,
    hnsw: bool = True,
) -> tuple[list[tuple], dict]:
    """Exact search (FAISS flat vs torch GEMM + topk) and HNSW on face-like data."""
    per_id = 10
    centres, gallery = face_like(n_gallery // per_id, per_id, dim, rng)
    which = rng.integers(0, len(centres), n_probes)
    probes = centres[which] + rng.normal(size=(n_probes, dim)).astype(np.float32)
    size = f"{n_probes:,} x {n_gallery:,}, D={dim}, k={k}"
    gflop = 2 * n_probes * n_gallery * dim / 1e9
    rows = []

    flat = FlatSearch(num_threads=threads)
    build_s, _ = timed(lambda: flat.build(gallery))
    exact_s, (_, exact_ids) = timed(lambda: flat.search(probes, k))
    torch_s, (_, torch_ids) = timed(lambda: torch_top_k(gallery, probes, k))
    # both are exact: they may differ only where two scores tie to float32 rounding
    agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(exact_ids, torch_ids, strict=True)])
    rows.append(("FlatSearch build", f"{n_gallery:,} vectors", build_s, ""))
    rows.append(
        (
            f"FlatSearch search (exact, FAISS {threads} thread(s))",
            size,
            exact_s,
            f"{n_probes / exact_s:,.0f} queries/s; {gflop / exact_s:.0f} GFLOP/s = "
            f"{gflop / exact_s / peak:.0%} of the fp32 matmul peak",
        )
    )
    rows.append(
        (
            "torch GEMM (256 queries a block) + topk, exact",
            size,
            torch_s,
            f"{gflop / torch_s:.0f} GFLOP/s = {gflop / torch_s / peak:.0%} of peak; "
            f"recall@{k} between the two exact paths {agree:.4f}",
        )
    )
    figures = {"exact_s": exact_s, "torch_s": torch_s, "share": gflop / exact_s / peak}
    figures["recall"] = agree
    if not hnsw:
        return rows, figures
    hnsw_search = HNSWSearch(num_threads=threads)  # m=32, ef_construction=200, ef_search=128
    build_s, _ = timed(lambda: hnsw_search.build(gallery))
    rows.append(
        ("HNSWSearch build (m=32, ef_construction=200)", f"{n_gallery:,} vectors", build_s, "")
    )
    for ef_search in (16, 32, 128):
        hnsw_search.ef_search = ef_search
        hnsw_s, (_, hnsw_ids) = timed(lambda: hnsw_search.search(probes, k))
        recall = float(np.mean(hnsw_ids[:, 0] == exact_ids[:, 0]))
        note = f"recall@1 vs exact {recall:.4f}; search speed-up {exact_s / hnsw_s:.1f}x"
        rows.append((f"HNSWSearch search (ef_search={ef_search})", size, hnsw_s, note))
    return rows, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000_000)
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch and FAISS threads")
    parser.add_argument("--no-hnsw", action="store_true", help="skip HNSW (its build is slow)")
    parser.add_argument("--summary", help="add the headline figures to this JSON file (run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(summary.header())
    peak = summary.matmul_peak()
    rng = np.random.default_rng(0)
    rows = bench_verification(args.pairs, args.repeats, rng)
    search_rows, search = bench_search(
        args.gallery, args.probes, args.dim, args.k, rng, args.threads, peak, not args.no_hnsw
    )
    rows += search_rows
    print(f"fp32 matmul peak (2048^3, {args.threads} thread(s)): {peak:.1f} GFLOP/s")
    print()
    print("| benchmark | size | seconds | note |")
    print("|---|---|---:|---|")
    for name, what, secs, note in rows:
        print(f"| {name} | {what} | {secs:.2f} | {note} |")
    pairs_s = rows[0][2]
    summary.add(
        args.summary,
        [
            (
                f"verification metrics on {args.pairs:,} pairs",
                f"{pairs_s:.2f} s",
                "< 3 s" if args.pairs >= 10_000_000 else "(10M pairs: < 3 s)",
                pairs_s < 3 if args.pairs >= 10_000_000 else None,
            ),
            (
                f"exact search, {args.probes:,} probes x {args.gallery:,} gallery, "
                f"{args.threads} thread(s)",
                f"{search['exact_s']:.2f} s = {search['share']:.0%} of peak (torch GEMM + topk "
                f"{search['torch_s']:.2f} s); recall {search['recall']:.4f}",
                ">= 50% of peak, recall 1.0",
                search["share"] >= 0.5 and search["recall"] >= 0.9999
                if args.probes >= 10_000 and args.gallery >= 100_000
                else None,
            ),
        ],
    )


if __name__ == "__main__":
    main()
