"""Training-side speed on this machine, ratios measured side by side in one run.

Prints one table: fp32 matmul peak; the default backbone's training step (achieved FLOP/s and its
share of the peak) in eager mode and with the options worth trying (channels_last, bf16 autocast,
torch.compile);
a bare PyTorch loop vs Lightning over the same model, data and batch size; step time with
in-memory synthetic batches vs the real ORL loader; the open-set evaluation of ORL; peak RSS.
Freed memory is kept in the process as training's default `malloc_keep: true` does
(`--malloc-keep off`: glibc's own behaviour; the header says which).

    .venv/bin/python benchmarks/bench_train.py [--steps 20]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
import torch.nn.functional as F

import summary


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


class _Linear(torch.nn.Module):
    """A backbone with almost no compute: what is left of a step is the loop around it."""

    def __init__(self, embedding_dim: int = 128) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(56 * 48, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def bare_vs_lightning(batch_size: int, epochs: int, tiny: bool = False) -> dict[str, float]:
    """Per-step period of a plain loop vs lightning.Trainer over ORL's training split, same everything.

    The period of a step is the time between the starts of consecutive steps of one epoch: it holds
    the batch fetch, augmentation, forward, backward, optimizer and every hook and log call. The two
    loops take turns epoch by epoch (a callback runs one bare epoch, on its own model and optimizer,
    after each Lightning epoch), so both see the same state of a shared machine, and the medians over
    all steps are compared, so one slow step does not decide the ratio. The whole-run figure adds
    `Trainer.fit`'s set-up and teardown. With `tiny`, the backbone is one linear layer: the
    difference of the two loops is then the framework's own cost per step.
    """
    import lightning as L

    from marginface.data import FaceDataModule, load_orl
    from marginface.data.transforms import augment, to_float
    from marginface.training.module import FaceModule

    aug = {"flip": True, "shift": 3}
    dm = FaceDataModule(load_orl(), batch_size=batch_size, augment=aug)
    dm.setup()

    def model():
        net, head = build(num_classes=dm.num_classes)
        return (_Linear(), head) if tiny else (net, head)

    net, head = model()
    opt = torch.optim.SGD(list(net.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
    bare_periods: list[float] = []
    bare_seconds = [0.0]

    def bare_epoch() -> None:
        start = last = None
        for x, y in dm.train_dataloader():
            now = time.perf_counter()
            if last is not None:
                bare_periods.append(now - last)
            start, last = start or now, now
            x = augment(to_float(x), **aug)
            loss = F.cross_entropy(head(net(x), y), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        bare_seconds[0] += time.perf_counter() - start

    class Turns(L.Callback):
        def __init__(self) -> None:
            self.periods: list[float] = []
            self.last: float | None = None
            self.bare_wall = 0.0  # time spent in the bare epochs, inside fit()

        def on_train_epoch_start(self, *args) -> None:
            self.last = None

        def on_train_batch_start(self, *args) -> None:
            now = time.perf_counter()
            if self.last is not None:
                self.periods.append(now - self.last)
            self.last = now

        def on_train_epoch_end(self, *args) -> None:
            t = time.perf_counter()
            bare_epoch()
            self.bare_wall += time.perf_counter() - t

    module = FaceModule(*model(), optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9))
    turns = Turns()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[turns],
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=dm)
    lightning_total = time.perf_counter() - t0 - turns.bare_wall

    return {
        "bare_step": statistics.median_high(bare_periods),
        "lightning_step": statistics.median_high(turns.periods),
        "bare_total": bare_seconds[0],  # the bare loop's epochs (it has no set-up to speak of)
        "lightning_total": lightning_total,  # fit() with its set-up and teardown, bare epochs taken out
    }


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
    count = 0
    for _ in range(3):
        for x, _ in dm.train_dataloader():
            augment(to_float(x), flip=True, shift=3, brightness=0.2, contrast=0.2)
            count += 1
    load_per_batch = (time.perf_counter() - t) / count
    return memory, load_per_batch


def orl_evaluation_seconds() -> float:
    """Embed ORL's 100 open-set images and compute every open-set figure and file (fold 0)."""
    import tempfile
    from pathlib import Path

    from omegaconf import OmegaConf

    from marginface.data import FaceDataModule, load_orl
    from marginface.evaluation.evaluate import evaluate_embeddings
    from marginface.inference.embed import extract_embeddings

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
    parser.add_argument("--epochs", type=int, default=6, help="epochs per bare/Lightning round")
    parser.add_argument("--rounds", type=int, default=5, help="bare/Lightning rounds")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    summary.add_bf16_option(parser, "the bf16 autocast rows")
    parser.add_argument("--summary", help="add the headline figures to this JSON file (run_all.py)")
    summary.add_malloc_keep_option(parser)
    args = parser.parse_args()
    summary.apply_malloc_keep(args.malloc_keep)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    print(summary.header())
    peak = summary.matmul_peak()
    rows.append(("fp32 matmul peak (2048^3)", f"{peak:.1f} GFLOP/s", ""))
    net, head = build()
    x = torch.randn(args.batch_size, 1, 56, 48)
    y = torch.randint(0, 30, (args.batch_size,))
    flops = step_flops(net, head, x, y)
    batches = [(x, y)]
    variants = [
        ("eager fp32", net, {}),
        ("channels_last", net, {"channels_last": True}),
    ]
    bf16 = summary.bf16_wanted(args.bf16)
    if bf16:
        variants += [
            ("bf16 autocast", net, {"autocast": True}),
            ("channels_last + bf16 autocast", net, {"channels_last": True, "autocast": True}),
        ]
    compile_s = None
    if not args.no_compile:
        # the first call compiles (or loads inductor's on-disk cache: much faster the second time)
        compiled = torch.compile(net, dynamic=False)
        t = time.perf_counter()
        time_steps(compiled, head, batches, 1, channels_last=True)
        compile_s = time.perf_counter() - t
        variants.append(("channels_last + torch.compile", compiled, {"channels_last": True}))
    best = {name: float("inf") for name, _, _ in variants}
    for _ in range(2):  # best of two rounds: a process's first steps pay one-off kernel set-up
        for name, model, kw in variants:
            best[name] = min(best[name], time_steps(model, head, batches, args.steps, **kw))
    for name, _, _ in variants:
        s = best[name]
        note = f"{flops / s / 1e9:.1f} GFLOP/s = {flops / s / 1e9 / peak:.0%} of peak; {args.batch_size / s:.0f} img/s"
        if "compile" in name:
            note += f"; first call {compile_s:.1f} s (compile or cache load)"
        rows.append(
            (
                f"train step, default backbone, B={args.batch_size}, {name}",
                f"{s * 1e3:.1f} ms",
                note,
            )
        )
    if not bf16:
        rows.append(
            (
                f"train step, default backbone, B={args.batch_size}, bf16 autocast",
                "skipped",
                summary.bf16_skipped(args.bf16),
            )
        )
    # batch size as a lever: its own FLOP count, the default's memory format
    big_x, big_y = (
        torch.randn(4 * args.batch_size, 1, 56, 48),
        torch.randint(0, 30, (4 * args.batch_size,)),
    )
    big_flops = step_flops(net, head, big_x, big_y)
    big_s = min(
        time_steps(net, head, [(big_x, big_y)], max(3, args.steps // 4), channels_last=True)
        for _ in range(2)
    )
    rows.append(
        (
            f"train step, default backbone, B={4 * args.batch_size}, channels_last",
            f"{big_s * 1e3:.1f} ms",
            f"{big_flops / big_s / 1e9:.1f} GFLOP/s = {big_flops / big_s / 1e9 / peak:.0%} of peak; "
            f"{4 * args.batch_size / big_s:.0f} img/s",
        )
    )
    shares = {name: flops / best[name] / 1e9 / peak for name in best}
    shares[f"B={4 * args.batch_size}, channels_last"] = big_flops / big_s / 1e9 / peak
    bare_vs_lightning(args.batch_size, 1)  # warm-up of both paths, discarded
    loops = [bare_vs_lightning(args.batch_size, args.epochs) for _ in range(args.rounds)]
    bare = statistics.median(r["bare_step"] for r in loops)
    lightning = statistics.median(r["lightning_step"] for r in loops)
    # each round's ratio compares steps taken at the same time; its median over rounds is reported
    overhead = statistics.median(r["lightning_step"] / r["bare_step"] - 1 for r in loops)
    whole = statistics.median(r["lightning_total"] / r["bare_total"] - 1 for r in loops)
    rows.append(
        (
            f"ORL step period, bare loop vs Lightning, taking turns ({args.rounds} x {args.epochs} epochs)",
            f"{bare * 1e3:.1f} ms vs {lightning * 1e3:.1f} ms",
            f"Lightning overhead {overhead:+.1%} per step (median of the rounds' ratios; target < 5%); "
            f"{whole:+.1%} over a whole {args.epochs}-epoch run with fit() set-up",
        )
    )
    tiny = [
        bare_vs_lightning(args.batch_size, 4 * args.epochs, tiny=True) for _ in range(args.rounds)
    ]
    cost = statistics.median(r["lightning_step"] - r["bare_step"] for r in tiny)
    rows.append(
        (
            "framework cost per step (same loops, 1-layer backbone)",
            f"{cost * 1e3:.2f} ms",
            f"= {cost / bare:.1%} of the default step (target < 5%)",
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
    orl_s = orl_evaluation_seconds()
    rows.append(
        (
            "ORL open-set evaluation (embed 100 + all metrics + files)",
            f"{orl_s:.2f} s",
            "target < 10 s",
        )
    )
    default = best["channels_last"]  # the default run's configuration
    summary.add(
        args.summary,
        [
            (
                "training step: share of fp32 matmul peak (default: channels_last)",
                f"{flops / default / 1e9 / peak:.0%} of {peak:.0f} GFLOP/s",
                ">= 50%",
                flops / default / 1e9 / peak >= 0.5,
            ),
            (
                "training step, best lever measured (opt-in)",
                "{} {:.0%}".format(*max(shares.items(), key=lambda kv: kv[1])),
                "reported",
                None,
            ),
            (
                "Lightning vs bare loop, per step",
                f"{overhead:+.1%} (framework alone {cost / bare:.1%})",
                "< 5%",
                overhead < 0.05,
            ),
            (
                "loading a batch, share of a step",
                f"{load / memory:.1%}",
                "not the bottleneck",
                load < memory,
            ),
            (
                "ORL open-set evaluation (embed + metrics + figures)",
                f"{orl_s:.2f} s",
                "< 10 s",
                orl_s < 10,
            ),
        ],
    )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows.append(("peak RSS of this benchmark process", f"{rss:.0f} MiB", ""))
    print(summary.markdown(["what", "measured", "note"], rows))


if __name__ == "__main__":
    main()
