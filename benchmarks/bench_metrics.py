"""Benchmark of the open-set evaluation: verification on many pairs, exact and HNSW search.

Run: .venv/bin/python benchmarks/bench_metrics.py [--pairs N] [--gallery N] [--probes N] [--dim D]
Prints a markdown table. Times are wall-clock seconds, best of --repeats for verification.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

import summary
from marginface.metrics import verification_metrics
from marginface.search import FlatSearch, HNSWSearch, default_num_threads


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


def bench_search(
    n_gallery: int, n_probes: int, dim: int, k: int, rng: np.random.Generator
) -> list[tuple]:
    """Exact search against HNSW on face-like data: probes are new images of gallery identities."""
    per_id = 10
    centres, gallery = face_like(n_gallery // per_id, per_id, dim, rng)
    which = rng.integers(0, len(centres), n_probes)
    probes = centres[which] + rng.normal(size=(n_probes, dim)).astype(np.float32)
    size = f"{n_probes:,} x {n_gallery:,}, D={dim}, k={k}"
    rows = []

    flat = FlatSearch()
    build_s, _ = timed(lambda: flat.build(gallery))
    exact_s, (_, exact_ids) = timed(lambda: flat.search(probes, k))
    rows.append(("FlatSearch build", f"{n_gallery:,} vectors", build_s, ""))
    rows.append(
        ("FlatSearch search (exact)", size, exact_s, f"{n_probes / exact_s:,.0f} queries/s")
    )

    hnsw = HNSWSearch()  # m=32, ef_construction=200, ef_search=128
    build_s, _ = timed(lambda: hnsw.build(gallery))
    rows.append(
        ("HNSWSearch build (m=32, ef_construction=200)", f"{n_gallery:,} vectors", build_s, "")
    )
    for ef_search in (16, 32, 128):
        hnsw.ef_search = ef_search
        hnsw_s, (_, hnsw_ids) = timed(lambda: hnsw.search(probes, k))
        recall = float(np.mean(hnsw_ids[:, 0] == exact_ids[:, 0]))
        note = f"recall@1 vs exact {recall:.4f}; search speed-up {exact_s / hnsw_s:.1f}x"
        rows.append((f"HNSWSearch search (ef_search={ef_search})", size, hnsw_s, note))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000_000)
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--probes", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--summary", help="add the headline figures to this JSON file (run_all.py)")
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())  # other users slow every timing down
    rng = np.random.default_rng(0)
    rows = bench_verification(args.pairs, args.repeats, rng)
    rows += bench_search(args.gallery, args.probes, args.dim, args.k, rng)
    print(
        f"CPU: {cpu_name()}; {os.cpu_count()} cores visible, FAISS threads {default_num_threads()}; "
        f"numpy {np.__version__}; load average before {load}"
    )
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
                f"exact search, {args.probes:,} probes x {args.gallery:,} gallery",
                f"{args.probes / rows[2][2]:,.0f} queries/s",
                "",
                None,
            ),
        ],
    )


if __name__ == "__main__":
    main()
