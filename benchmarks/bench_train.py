"""Training-side speed on this machine, ratios measured side by side in one run.

Prints one table: fp32 matmul peak; the default backbone's training step (achieved FLOP/s and its
share of the peak) in eager mode and with the options worth trying (channels_last, bf16 autocast);
a bare PyTorch loop vs Lightning over the same model, data and batch size; step time with
in-memory synthetic batches vs the real ORL loader; the open-set evaluation of ORL; peak RSS.

    .venv/bin/python benchmarks/bench_train.py [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import torch
import torch.nn.functional as F


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 GFLOP/s of an n x n x n torch.matmul."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def build(embedding_dim=128, num_classes=30):
    from marginface.backbones import SmallFaceNet
    from marginface.heads import ArcFaceHead

    torch.manual_seed(0)
    return SmallFaceNet(embedding_dim=embedding_dim), ArcFaceHead(
        embedding_dim, num_classes, scale=32.0, margin=0.5
    )


def step_flops(net, head, x, y) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(head(net(x), y), y).backward()
    net.zero_grad(), head.zero_grad()
    return counter.get_total_flops()


def time_steps(net, head, batches, steps, channels_last=False, autocast=False) -> float:
    """Seconds per optimizer step (median of `steps` after 3 warm-up steps)."""
    params = list(net.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 3):
        x, y = batches[i % len(batches)]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(head(net(x), y).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    net.to(memory_format=torch.contiguous_format)
    return sorted(times)[len(times) // 2]


def bare_vs_lightning(batch_size: int, epochs: int) -> tuple[float, float]:
    """Wall seconds of `epochs` over ORL's training split: plain loop vs lightning.Trainer, same everything."""
    import lightning as L

    from marginface.data import FaceDataModule, load_orl
    from marginface.data.transforms import augment, to_float
    from marginface.module import FaceModule

    data = load_orl()
    dm = FaceDataModule(data, batch_size=batch_size, augment={"flip": True, "shift": 3})
    dm.setup()
    net, head = build(num_classes=dm.num_classes)
    opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
    t = time.perf_counter()
    for _ in range(epochs):
        for x, y in dm.train_dataloader():
            x = augment(to_float(x), flip=True, shift=3)
            loss = F.cross_entropy(head(net(x), y), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    bare = time.perf_counter() - t

    net, head = build(num_classes=dm.num_classes)
    module = FaceModule(net, head, optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9))
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    t = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    return bare, time.perf_counter() - t


def loader_vs_memory(batch_size: int, steps: int) -> tuple[float, float]:
    """Seconds per step: batches already in memory vs drawn through the real ORL DataLoader + augmentation."""
    from marginface.data import FaceDataModule, load_orl
    from marginface.data.transforms import augment, to_float

    dm = FaceDataModule(load_orl(), batch_size=batch_size)
    dm.setup()
    net, head = build(num_classes=dm.num_classes)
    x0, y0 = next(iter(dm.train_dataloader()))
    fixed = [(to_float(x0), y0)]
    memory = time_steps(net, head, fixed, steps)
    t = time.perf_counter()
    batches = []
    for _ in range(3):
        for x, _ in dm.train_dataloader():
            batches.append(augment(to_float(x), flip=True, shift=3, brightness=0.2, contrast=0.2))
    load_per_batch = (time.perf_counter() - t) / len(batches)
    return memory, load_per_batch


def orl_evaluation_seconds() -> float:
    """Embed ORL's 100 open-set images and compute every open-set figure and file (fold 0)."""
    import tempfile
    from pathlib import Path

    from omegaconf import OmegaConf

    from marginface.data import FaceDataModule, load_orl
    from marginface.evaluate import evaluate_embeddings, extract_embeddings

    dm = FaceDataModule(load_orl())
    dm.setup()
    net, _ = build()
    cfg = OmegaConf.create(
        {"seed": 0, "search": {"_target_": "marginface.search.FlatSearch"}, "eval": {}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        images, labels = dm.open_set()
        emb = extract_embeddings(net, images)
        evaluate_embeddings(emb, labels.numpy(), cfg, Path(tmp))
        return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}"
    )
    peak = matmul_peak()
    rows.append(("fp32 matmul peak (2048^3)", f"{peak:.1f} GFLOP/s", ""))
    net, head = build()
    x = torch.randn(args.batch_size, 1, 56, 48)
    y = torch.randint(0, 30, (args.batch_size,))
    flops = step_flops(net, head, x, y)
    batches = [(x, y)]
    variants = [
        ("eager fp32", {}),
        ("channels_last", {"channels_last": True}),
        ("bf16 autocast", {"autocast": True}),
    ]
    best = {name: float("inf") for name, _ in variants}
    for _ in range(2):  # best of two rounds: a process's first steps pay one-off kernel set-up
        for name, kw in variants:
            best[name] = min(best[name], time_steps(net, head, batches, args.steps, **kw))
    for name, _ in variants:
        s = best[name]
        rows.append(
            (
                f"train step, default backbone, B={args.batch_size}, {name}",
                f"{s * 1e3:.1f} ms",
                f"{flops / s / 1e9:.1f} GFLOP/s = {flops / s / 1e9 / peak:.0%} of peak; {args.batch_size / s:.0f} img/s",
            )
        )
    bare_vs_lightning(args.batch_size, 1)  # warm-up of both paths, discarded
    bare, lightning = bare_vs_lightning(args.batch_size, args.epochs)
    rows.append(
        (
            f"{args.epochs} epochs of ORL: bare loop vs Lightning",
            f"{bare:.2f} s vs {lightning:.2f} s",
            f"Lightning overhead {lightning / bare - 1:+.1%}",
        )
    )
    memory, load = loader_vs_memory(args.batch_size, args.steps)
    rows.append(
        (
            "step with in-memory batch vs loading one batch",
            f"{memory * 1e3:.1f} ms vs {load * 1e3:.2f} ms",
            f"loading = {load / memory:.1%} of a step",
        )
    )
    rows.append(
        (
            "ORL open-set evaluation (embed 100 + all metrics + files)",
            f"{orl_evaluation_seconds():.2f} s",
            "target < 10 s",
        )
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS of this benchmark process", f"{rss:.0f} MiB", ""))
    width = max(len(r[0]) for r in rows)
    print(f"| {'what':<{width}} | measured | note |\n|{'-' * (width + 2)}|---|---|")
    for what, value, note in rows:
        print(f"| {what:<{width}} | {value} | {note} |")


if __name__ == "__main__":
    main()
