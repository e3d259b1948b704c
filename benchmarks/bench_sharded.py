"""Head memory per rank and step time vs number of classes: plain, sharded (2 ranks) and sampled heads.

Every configuration runs in fresh processes, so that each one's peak resident memory (VmHWM) is its
own: "head memory" is that peak minus the resident memory just before the head is built (the class
matrix, its gradient, SGD's momentum and the step's (batch, classes) temporaries). The sharded head
runs as 2 processes joined by gloo on this CPU; every process gets --threads torch threads (1: on a
shared, loaded machine two OpenMP threads in one process ran several times slower than one). A step is forward + backward + SGD (momentum 0.9, weight decay 5e-4) of the head alone, on
a random batch of embeddings (ArcFace margin, D=512, batch 128 in all: 64 per rank when sharded).

The largest class count that fits this machine comes from a straight-line fit of the measured
memory against the class count, and is marked as extrapolated where it lies beyond the largest
count measured.

    python benchmarks/bench_sharded.py                 # the recorded table (a few minutes)
    python benchmarks/bench_sharded.py --classes 10000 100000 --steps 1
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

MODES = ("plain", "sharded", "sampled", "sharded+sampled")
MIB, GIB = 2**20, 2**30


def memory_kib(field: str) -> int:
    """A line of /proc/self/status in KiB: VmRSS (now) or VmHWM (the peak so far)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")


def machine_memory() -> int:
    """Physical memory of this machine, bytes (MemTotal)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("MemTotal not in /proc/meminfo")


def head_of_mode(mode: str, classes: int, dim: int, rate: float):
    """The ArcFace head of `mode` (plain, sharded, sampled, sharded_sampled), placed on this rank."""
    from marginface.training.factory import build_head

    options = {"sharded": mode.startswith("sharded")}
    options["sample_rate"] = rate if mode.endswith("sampled") else 1.0
    head = build_head({"_target_": "marginface.heads.ArcFaceHead"}, dim, classes, options)
    if mode != "plain":
        head.setup_shard()
    return head


def run_steps(job: dict, classes: int, steps: int, rank: int, world: int):
    """(head, [(forward+backward s, optimizer s) per step]) for `steps` steps on `classes` classes."""
    local = job["batch"] // world
    x = torch.randn(local, job["dim"], requires_grad=True)
    labels = torch.randint(0, classes, (local,))
    head = head_of_mode(job["mode"], classes, job["dim"], job["rate"])
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    times = []
    for _ in range(steps):
        if world > 1:
            dist.barrier()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        if job["mode"] == "plain":
            loss = F.cross_entropy(head(x, labels), labels)
        else:
            loss = head(x, labels)
        loss.backward()
        middle = time.perf_counter()
        optimizer.step()
        times.append((middle - start, time.perf_counter() - middle))
    return head, times


def worker(rank: int, world: int, rendezvous: str | None, job: dict, results) -> None:
    """One process of one configuration: build, warm up, time `steps` steps, report to `results`."""
    torch.set_num_threads(job["threads"])
    if world > 1:
        dist.init_process_group("gloo", init_method=rendezvous, rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)
        # a tiny head first: BLAS buffers, thread pools and gloo's first collectives are not
        # memory of the head being measured
        run_steps(job, 64 * world, 2, rank, world)
        gc.collect()
        before = memory_kib("VmRSS")
        head, times = run_steps(job, job["classes"], job["steps"] + 1, rank, world)
        peak = (memory_kib("VmHWM") - before) * 1024
        times = times[1:]  # the first step allocates the gradient and SGD's momentum
        rows = head.weight.shape[0]
        results.put(
            {
                "rank": rank,
                "peak": peak,
                "params": rows * job["dim"] * 4,
                "baseline": before * 1024,
                "forward_backward": statistics.median(t[0] for t in times),
                "optimizer": statistics.median(t[1] for t in times),
                "step": statistics.median(t[0] + t[1] for t in times),
            }
        )
    finally:
        if world > 1:
            dist.destroy_process_group()


def measure(job: dict) -> dict:
    """Run one configuration in fresh processes; the per-rank maximum of each figure."""
    context = mp.get_context("spawn")
    results = context.Queue()
    world = job["world"]
    with tempfile.TemporaryDirectory() as folder:
        rendezvous = f"file://{folder}/rendezvous" if world > 1 else None
        processes = [
            context.Process(target=worker, args=(rank, world, rendezvous, job, results))
            for rank in range(world)
        ]
        for process in processes:
            process.start()
        reports = [results.get(timeout=job["timeout"]) for _ in processes]
        for process in processes:
            process.join()
    rank0 = next(r for r in reports if r["rank"] == 0)
    return {
        **job,
        "peak": max(r["peak"] for r in reports),
        "params": max(r["params"] for r in reports),
        "baseline": max(r["baseline"] for r in reports),
        "forward_backward": rank0["forward_backward"],
        "optimizer": rank0["optimizer"],
        "step": rank0["step"],
    }


def largest_fit(rows: list[dict], budget: int) -> tuple[int, bool]:
    """Largest class count whose predicted memory, all processes together, fits `budget` bytes.

    Straight line through (classes, peak per process) of the measured rows; the second value says
    whether that count lies beyond the largest measured one (extrapolated).
    """
    classes = np.array([r["classes"] for r in rows], dtype=float)
    peaks = np.array([r["peak"] for r in rows], dtype=float)
    slope, intercept = (
        np.polyfit(classes, peaks, 1) if len(rows) > 1 else (peaks[0] / classes[0], 0)
    )
    world, baseline = rows[0]["world"], max(r["baseline"] for r in rows)
    largest = int((budget / world - baseline - intercept) / slope)
    return largest, largest > classes.max()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=["plain", "sharded", "sampled"]
    )
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=128, help="whole batch (split over ranks)")
    parser.add_argument("--rate", type=float, default=0.1, help="sample_rate of the sampled heads")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (a loaded machine makes 2 OpenMP threads slower than 1)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)

    command = "python benchmarks/bench_sharded.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    load_start = os.getloadavg()
    print(f"# {command.strip()}")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{machine_memory() / GIB:.1f} GiB, torch {torch.__version__}; load average at start "
        f"{load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}"
    )
    rows = []
    started = time.perf_counter()
    for classes in args.classes:
        for mode in args.modes:
            world = 2 if mode.startswith("sharded") else 1
            job = {
                "mode": mode,
                "classes": classes,
                "world": world,
                "threads": args.threads,
                "dim": args.dim,
                "batch": args.batch,
                "rate": args.rate,
                "steps": args.steps,
                "timeout": args.timeout,
            }
            row = measure(job)
            rows.append(row)
            print(
                f"#   {mode:>15} {classes:>9,} classes: head {row['peak'] / MIB:8.0f} MiB/rank, "
                f"step {row['step']:.3f} s",
                flush=True,
            )
    load_end = os.getloadavg()

    print()
    print(
        "| head | classes | ranks | matrix MiB/rank | head memory MiB/rank (peak) | "
        "fwd+bwd s | SGD step s | step s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        name = r["mode"] + (f" r={r['rate']:g}" if r["mode"].endswith("sampled") else "")
        print(
            f"| {name} | {r['classes']:,} | {r['world']} | {r['params'] / MIB:.0f} | "
            f"{r['peak'] / MIB:.0f} | {r['forward_backward']:.3f} | {r['optimizer']:.3f} | "
            f"{r['step']:.3f} |"
        )
    print()
    by = {(r["mode"], r["classes"]): r for r in rows}
    for classes in args.classes:
        plain = by.get(("plain", classes))
        if plain is None:
            continue
        parts = []
        if ("sharded", classes) in by:
            ratio = by[("sharded", classes)]["peak"] / plain["peak"]
            parts.append(f"sharded/plain head memory per rank {ratio:.2f}")
        if ("sampled", classes) in by:
            sampled = by[("sampled", classes)]
            parts.append(
                f"plain/sampled step time {plain['step'] / sampled['step']:.1f}x "
                f"(fwd+bwd {plain['forward_backward'] / sampled['forward_backward']:.1f}x)"
            )
        if parts:
            print(f"- {classes:,} classes: " + "; ".join(parts))
    budget = machine_memory()
    print(
        f"- largest class count whose head fits this {budget / GIB:.1f} GiB machine "
        "(all ranks together; straight-line fit of the measured peaks):"
    )
    for mode in args.modes:
        mine = [r for r in rows if r["mode"] == mode]
        largest, extrapolated = largest_fit(mine, budget)
        per_device, _ = largest_fit([{**r, "world": 1} for r in mine], budget)
        note = "extrapolated" if extrapolated else "measured range"
        extra = (
            f"; with one {budget / GIB:.0f} GiB device per rank: ~{per_device:,}"
            if mine[0]["world"] > 1
            else ""
        )
        print(f"  - {mode}: ~{largest:,} classes ({note}){extra}")
    print(
        f"- load average at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )


if __name__ == "__main__":
    main()
