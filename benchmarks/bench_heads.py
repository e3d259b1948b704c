"""Forward+backward time of every configured head (conf/loss/*.yaml) against plain softmax.

    .venv/bin/python benchmarks/bench_heads.py --batch 256 --dim 512 --classes 100000 --repeats 5

Heads are timed round-robin in the same process (one step of each per round, the order rotated
every round) so that load from other processes hits them alike. For each head the table gives the
median wall time, the median CPU time of this process (user + system, all threads: the work done,
less sensitive than wall time to other processes on a shared machine), both ratios to softmax, and
the median over rounds of each round's CPU ratio (the summary's figure: it cancels drifting load).
A step is head(embeddings, labels) -> cross_entropy -> backward, gradients reaching both the
embeddings and the weight, as in training (heads in training mode: stateful heads update their
state every step, as in training). Freed memory is kept in the process as training's default
`malloc_keep: true` does (`--malloc-keep off`: glibc's own behaviour; the header says which).

A head with K weight rows per class (sub-center ArcFace) is compared with a softmax head of C*K
classes, timed in the same rounds (the row `softmax@C*K`): the work its GEMMs do.

When pytorch-metric-learning is installed (the dev extra), its ArcFaceLoss (the same scale and margin
as conf/loss/arcface.yaml, W of shape (D, C)) is timed in the same rounds as the row `pml_arcface`,
and the summary gives ArcFace's CPU time over it (median of rounds).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import summary
from marginface.heads import SoftmaxHead

CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "loss"
#: the heads of 2018 and before (issue 15's <= 1.15x); the later ones have a 1.25x target
EARLY_HEADS = ("amsoftmax", "arcface", "combined", "cosface", "lsoftmax", "sphereface")


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


def pml_step(loss: torch.nn.Module, embeddings: torch.Tensor, labels: torch.Tensor):
    """Wall and CPU seconds for one step of a pytorch-metric-learning loss (it returns the loss)."""
    loss.W.grad = None
    embeddings.grad = None
    wall, cpu = time.perf_counter(), time.process_time()
    loss(embeddings, labels).backward()
    if embeddings.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def pml_arcface(arcface: torch.nn.Module) -> torch.nn.Module | None:
    """pytorch-metric-learning's ArcFaceLoss at the head's settings (margin in degrees), or None."""
    try:
        from pytorch_metric_learning.losses import ArcFaceLoss
    except ImportError:
        return None
    dim, classes = arcface.weight.shape[1], arcface.weight.shape[0]
    return ArcFaceLoss(
        num_classes=classes,
        embedding_size=dim,
        margin=math.degrees(arcface.full_margin),
        scale=float(arcface.scale),
    ).to(arcface.weight.device)


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
    summary.add_malloc_keep_option(parser)
    args = parser.parse_args()
    summary.apply_malloc_keep(args.malloc_keep)
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
    # the reference of each head: softmax with as many weight rows
    reference = {name: "softmax" for name in heads}
    for name, head in list(heads.items()):
        rows = head.weight.shape[0]
        if rows != args.classes:
            wide = f"softmax@{rows // args.classes}C"
            if wide not in heads:
                heads[wide] = SoftmaxHead(args.dim, rows).to(device)
                reference[wide] = "softmax"
            reference[name] = wide
    theirs = {}
    if (loss := pml_arcface(heads["arcface"])) is not None:
        theirs["pml_arcface"] = loss
        heads["pml_arcface"] = loss
        reference["pml_arcface"] = "softmax"
    names = list(heads)
    embeddings = torch.randn(args.batch, args.dim, device=device, requires_grad=True)
    labels = torch.randint(args.classes, (args.batch,), device=device)

    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.warmup + args.repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            timer = pml_step if name in theirs else step
            seconds, cpu_seconds = timer(heads[name], embeddings, labels)
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
        "| ratio to | CPU ratio, median of rounds |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---:|")
    # each round times every head within a few seconds: its ratio to that round's reference step
    # cancels load that drifts over the run, which the ratio of medians does not
    by_round = {
        name: statistics.median(a / b for a, b in zip(cpu[name], cpu[reference[name]], strict=True))
        for name in names
    }
    for name in names:
        median, fastest = statistics.median(wall[name]), min(wall[name])
        cpu_median = statistics.median(cpu[name])
        ref = reference[name]
        print(
            f"| {name} | {median * 1e3:.0f} | {fastest * 1e3:.0f} "
            f"| {median / statistics.median(wall[ref]):.2f} | {cpu_median * 1e3:.0f} "
            f"| {cpu_median / statistics.median(cpu[ref]):.2f} | {ref} | {by_round[name]:.2f} |"
        )
    full_size = args.classes >= 100_000
    # issue targets: the 2018 margin heads <= 1.15x softmax, the later heads <= 1.25x
    early = [n for n in names if n in EARLY_HEADS]
    later = [
        n for n in names if not n.startswith("softmax") and n not in EARLY_HEADS and n not in theirs
    ]
    slow_early = max(early, key=by_round.get)
    slow_later = max(later, key=by_round.get) if later else None
    if theirs:
        versus = statistics.median(
            a / b for a, b in zip(cpu["arcface"], cpu["pml_arcface"], strict=True)
        )
        pml, pml_met = f"{versus:.2f}x (CPU time, median of rounds)", versus <= 0.6
    else:
        pml, pml_met = "not measured: pytorch-metric-learning is not installed", None
    summary.add(
        args.summary,
        [
            (
                f"slowest 2018 margin head vs softmax, C={args.classes:,} (CPU time, median of "
                f"rounds, {torch.get_num_threads()} thread(s))",
                f"{slow_early} {by_round[slow_early]:.2f}x",
                "<= 1.15x" if full_size else "(C=100,000: <= 1.15x)",
                by_round[slow_early] <= 1.15 if full_size else None,
            ),
            (
                "slowest post-2018 head vs softmax of as many rows (CPU time, median of rounds)",
                f"{slow_later} {by_round[slow_later]:.2f}x" if slow_later else "none",
                "<= 1.25x" if full_size else "(C=100,000: <= 1.25x)",
                (by_round[slow_later] <= 1.25) if (full_size and slow_later) else None,
            ),
            ("ArcFace head vs pytorch-metric-learning's ArcFaceLoss", pml, "<= 0.6x", pml_met),
        ],
    )


if __name__ == "__main__":
    main()
