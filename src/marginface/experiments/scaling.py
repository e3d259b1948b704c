"""Weakness 1 of softmax loss, measured: the head's parameters, memory and step time grow with the classes.

For each head config (conf/loss/*.yaml) and each number of classes C, on random embeddings:
- parameters and bytes: counted on the head itself (built on the `meta` device, so even 2M classes
  cost no memory); C * D for every head here (plus C for softmax with a bias);
- memory: bytes of the tensors a training step holds for the head: the weight, its gradient, the
  SGD momentum buffer and the (B, C) logits. Counted from those tensors where the step ran, from the
  same shapes where it did not; on CUDA the allocator's peak is measured too;
- time: median wall-clock seconds of forward + cross-entropy + backward (gradients reaching the
  embeddings and the weight), after warm-up. Where a step would not fit `max_bytes` or the previous
  size already took longer than `max_step_s`, the time is extrapolated linearly in C from the two
  largest measured sizes and flagged `measured: false`.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from marginface.configs import config_dir
from marginface.evaluation.evaluate import head_size
from marginface.report.runs import HEAD_ORDER
from marginface.report.scaling import load, save  # noqa: F401 - the file format, with its reader
from marginface.training.factory import build_head

#: identities of public training sets, marked on the figures
DATASETS = {"CASIA-WebFace": 10_572, "MS1M": 85_742, "WebFace42M": 2_059_906}
DEFAULT_CLASSES = (100, 1_000, 10_000, 100_000, 1_000_000)
#: cosface is the same head as amsoftmax under another name
ALIASES = ("cosface",)


def head_configs(
    loss_dir: str | Path | None = None, names: Sequence[str] | None = None
) -> dict[str, DictConfig]:
    """Head configs by name from conf/loss (aliases left out unless named)."""
    loss_dir = Path(loss_dir) if loss_dir else config_dir() / "loss"
    found = {p.stem: p for p in sorted(loss_dir.glob("*.yaml"))}
    if names is None:
        order = {h: k for k, h in enumerate(HEAD_ORDER)}
        names = sorted((n for n in found if n not in ALIASES), key=lambda n: (order.get(n, 99), n))
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ValueError(f"unknown head(s) {unknown}; choices: {sorted(found)} (in {loss_dir})")
    return {n: OmegaConf.load(found[n]) for n in names}


def count(cfg: DictConfig | Mapping, num_classes: int, dim: int) -> dict[str, int]:
    """Parameters and their bytes of the head with `num_classes` classes (no memory used)."""
    return head_size(build_head(cfg, dim, num_classes, device="meta"))


def step_bytes(weight_bytes: int, batch: int, num_classes: int, itemsize: int = 4) -> int:
    """Weight + gradient + SGD momentum + (B, C) logits: what a training step holds for the head."""
    return 3 * weight_bytes + batch * num_classes * itemsize


def _time_step(head, embeddings, labels) -> tuple[float, torch.Tensor]:
    head.zero_grad(set_to_none=True)
    embeddings.grad = None
    if embeddings.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    logits = head(embeddings, labels)
    F.cross_entropy(logits, labels).backward()
    if embeddings.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, logits


def run_steps(
    cfg: DictConfig | Mapping,
    num_classes: int,
    dim: int,
    batch: int,
    repeats: int = 3,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Build the head for real and time `repeats` training steps; the tensors it held, in bytes."""
    device = torch.device(device)
    torch.manual_seed(seed)
    head = build_head(cfg, dim, num_classes, device=device)
    head.anneal(1000)  # L-Softmax / SphereFace past their start-up blend, as in most of training
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    embeddings = torch.randn(batch, dim, device=device, requires_grad=True)
    labels = torch.randint(num_classes, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for i in range(warmup + repeats):
        seconds, logits = _time_step(head, embeddings, labels)
        optimizer.step()  # outside the timing: it creates the momentum buffer that is counted
        if i >= warmup:
            times.append(seconds)
    tensors = [p for p in head.parameters()] + [p.grad for p in head.parameters()]
    tensors += [
        s for state in optimizer.state.values() for s in state.values() if torch.is_tensor(s)
    ]
    held = (
        sum(t.numel() * t.element_size() for t in tensors) + logits.numel() * logits.element_size()
    )
    out = {
        "step_s": statistics.median(times),
        "step_s_min": min(times),
        "memory_bytes": held,
        "peak_bytes": None,
    }
    if device.type == "cuda":
        out["peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
    return out


def _extrapolate(points: list[tuple[int, float]], num_classes: int) -> float | None:
    """Step time at `num_classes`, linear in C through the two largest measured sizes."""
    if not points:
        return None
    (c2, t2) = points[-1]
    if len(points) == 1:
        return t2 * num_classes / c2
    (c1, t1) = points[-2]
    slope = (t2 - t1) / (c2 - c1)
    if slope <= 0:  # timing noise at small sizes: fall back to proportional
        return t2 * num_classes / c2
    return t2 + slope * (num_classes - c2)


def measure(
    configs: Mapping[str, DictConfig | Mapping] | None = None,
    classes: Iterable[int] = DEFAULT_CLASSES,
    dim: int = 512,
    batch: int = 128,
    repeats: int = 3,
    warmup: int = 1,
    max_bytes: int = 4 * 2**30,
    max_step_s: float = 10.0,
    device: str = "cpu",
    threads: int | None = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every head at every class count (ascending); see the module docstring for what is what.

    threads: torch intra-op threads while measuring (None: leave as is). One thread by default: on a
    machine shared with other jobs, multi-threaded steps wait for descheduled threads and small sizes
    time 100x slower than they run; the growth in C is the point, not the best absolute time.
    """
    configs = head_configs() if configs is None else configs
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _measure(
            configs, classes, dim, batch, repeats, warmup, max_bytes, max_step_s, device, log
        )
    finally:
        torch.set_num_threads(previous)


def _measure(configs, classes, dim, batch, repeats, warmup, max_bytes, max_step_s, device, log):
    classes = sorted({int(c) for c in classes})
    rows = []
    for name, cfg in configs.items():
        measured: list[tuple[int, float]] = []
        for c in classes:
            size = count(cfg, c, dim)
            row = {"head": name, "classes": c, **size}
            row["memory_bytes"] = step_bytes(size["bytes"], batch, c)
            # the guard leaves room for the softmax and the logits' gradient beside what is held
            needed = row["memory_bytes"] + 2 * batch * c * 4
            too_slow = bool(measured) and measured[-1][1] > max_step_s
            if needed <= max_bytes and not too_slow:
                got = run_steps(cfg, c, dim, batch, repeats, warmup, device)
                row.update(got, measured=True)
                measured.append((c, got["step_s"]))
            else:
                why = "memory" if needed > max_bytes else "time"
                row.update(
                    step_s=_extrapolate(measured, c),
                    step_s_min=None,
                    peak_bytes=None,
                    measured=False,
                    reason=f"over the {why} budget",
                )
            rows.append(row)
            if log:
                state = "measured" if row["measured"] else "extrapolated"
                step = row["step_s"]
                log(
                    f"{name:>11} C={c:>9,}: {row['parameters']:>13,} parameters, "
                    f"step {'n/a' if step is None else f'{step * 1e3:.1f} ms'} ({state})"
                )
    where = (
        torch.cuda.get_device_name(device) if device.startswith("cuda") else platform.processor()
    )
    return {
        "dim": dim,
        "batch": batch,
        "repeats": repeats,
        "device": f"{device} {where or platform.machine()}".strip(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "max_bytes": max_bytes,
        "rows": rows,
        "datasets": dict(DATASETS),
        "at_datasets": at_datasets(configs, rows, dim, batch),
    }


def at_datasets(
    configs: Mapping[str, DictConfig | Mapping], rows: list[dict], dim: int, batch: int
) -> list[dict[str, Any]]:
    """Counts at the identity numbers of public data sets; times from the measured points."""
    out = []
    for name, cfg in configs.items():
        points = [(r["classes"], r["step_s"]) for r in rows if r["head"] == name and r["measured"]]
        for dataset, c in DATASETS.items():
            size = count(cfg, c, dim)
            exact = [t for cc, t in points if cc == c]
            if exact:
                step, how = exact[0], "measured"
            elif points and c < points[-1][0]:
                below = [p for p in points if p[0] < c]
                above = [p for p in points if p[0] > c]
                if below:
                    (c1, t1), (c2, t2) = below[-1], above[0]
                    step = t1 + (t2 - t1) * (c - c1) / (c2 - c1)
                else:
                    step = above[0][1] * c / above[0][0]
                how = "interpolated"
            else:
                step, how = _extrapolate(points, c), "extrapolated"
            out.append(
                {
                    "head": name,
                    "dataset": dataset,
                    "classes": c,
                    **size,
                    "memory_bytes": step_bytes(size["bytes"], batch, c),
                    "step_s": step,
                    "time": how,
                }
            )
    return out


def format_table(data: Mapping[str, Any]) -> str:
    """The measurements as a markdown table (one line per head and class count)."""
    lines = [
        f"D={data['dim']} B={data['batch']}, {data['device']}, {data['threads']} threads, "
        f"torch {data['torch']}; median of {data['repeats']} steps",
        "",
        "| head | classes | parameters | weight MiB | step memory MiB | fwd+bwd ms | time |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in data["rows"]:
        step = r.get("step_s")
        lines.append(
            f"| {r['head']} | {r['classes']:,} | {r['parameters']:,} | {r['bytes'] / 2**20:,.1f} | "
            f"{r['memory_bytes'] / 2**20:,.1f} | {'n/a' if step is None else f'{step * 1e3:,.1f}'} | "
            f"{'measured' if r['measured'] else 'extrapolated (' + r.get('reason', '') + ')'} |"
        )
    return "\n".join(lines)


#: what the report measures for weakness 1 when no head_scaling.json is given: a few minutes at most
REPORT_SCALING = {
    "classes": DEFAULT_CLASSES,
    "dim": 512,
    "batch": 128,
    "repeats": 2,
    "max_bytes": 2 * 2**30,
    "max_step_s": 3.0,
}


def measure_for_report(log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The measurements a report takes when it is given none (REPORT_SCALING; build_report(measure=))."""
    return measure(**REPORT_SCALING, log=log)
