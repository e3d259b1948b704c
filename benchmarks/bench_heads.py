"""Forward+backward time of every configured head (conf/loss/*.yaml) against plain softmax.

    .venv/bin/python benchmarks/bench_heads.py --batch 256 --dim 512 --classes 100000 --repeats 5

Heads are timed round-robin in the same process (one step of each per round, the order rotated
every round) so that load from other processes hits them alike. For each head the table gives the
median wall time, the median CPU time of this process (user + system, all threads: the work done,
less sensitive than wall time to other processes on a shared machine), both ratios to softmax, and
the median over rounds of each round's CPU ratio (the summary's figure: it cancels drifting load).
A step is head(embeddings, labels) -> cross_entropy -> backward, gradients reaching both the
embeddings and the weight, as in training.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import summary

CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "loss"


def step(
    head: torch.nn.Module, embeddings: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """Wall and CPU seconds for one training step of the head alone."""
    head.weight.grad = None
    embeddings.grad = None
    head.anneal(1000)
    wall, cpu = time.perf_counter(), time.process_time()
    F.cross_entropy(head(embeddings, labels), labels).backward()
    if embeddings.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--summary", help="add the headline figures to this JSON file (run_all.py)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    device = torch.device(args.device)
    heads = {}
    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = OmegaConf.load(path)
        heads[path.stem] = hydra.utils.instantiate(
            cfg, embedding_dim=args.dim, num_classes=args.classes
        ).to(device)
    names = list(heads)
    embeddings = torch.randn(args.batch, args.dim, device=device, requires_grad=True)
    labels = torch.randint(args.classes, (args.batch,), device=device)

    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.warmup + args.repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            seconds, cpu_seconds = step(heads[name], embeddings, labels)
            if round_ >= args.warmup:
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(summary.header())
    print(
        f"B={args.batch} D={args.dim} C={args.classes}, {args.repeats} timed steps per head "
        f"({args.warmup} warm-up), {device.type} {where}, {torch.get_num_threads()} threads"
    )
    print()
    print(
        "| head | wall median ms | wall min ms | wall ratio | CPU median ms | CPU ratio "
        "| CPU ratio, median of rounds |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    wall_ref, cpu_ref = statistics.median(wall["softmax"]), statistics.median(cpu["softmax"])
    # each round times every head within a few seconds: its ratio to that round's softmax step
    # cancels load that drifts over the run, which the ratio of medians does not
    by_round = {
        name: statistics.median(a / b for a, b in zip(cpu[name], cpu["softmax"], strict=True))
        for name in names
    }
    for name in names:
        median, fastest = statistics.median(wall[name]), min(wall[name])
        cpu_median = statistics.median(cpu[name])
        print(
            f"| {name} | {median * 1e3:.0f} | {fastest * 1e3:.0f} | {median / wall_ref:.2f} "
            f"| {cpu_median * 1e3:.0f} | {cpu_median / cpu_ref:.2f} | {by_round[name]:.2f} |"
        )
    slowest = max((n for n in names if n != "softmax"), key=lambda n: by_round[n])
    ratio = by_round[slowest]
    full_size = args.classes >= 100_000
    try:
        import pytorch_metric_learning  # noqa: F401

        pml = "installed, not compared here"
    except ImportError:
        pml = "not measured: pytorch-metric-learning is not installed"
    summary.add(
        args.summary,
        [
            (
                f"slowest margin head vs softmax, C={args.classes:,} (CPU time, median of "
                f"rounds, {torch.get_num_threads()} thread(s))",
                f"{slowest} {ratio:.2f}x",
                "<= 1.15x" if full_size else "(C=100,000: <= 1.15x)",
                ratio <= 1.15 if full_size else None,
            ),
            ("ArcFace head vs pytorch-metric-learning's ArcFaceLoss", pml, "<= 0.6x", None),
        ],
    )


if __name__ == "__main__":
    main()
