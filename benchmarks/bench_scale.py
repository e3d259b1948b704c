"""Evaluation at scale and memory: embedding-extraction throughput, and no data set held twice.

Prints one table:
- extraction throughput of the default backbone (56x48 gray, flip TTA = two forwards per image) at
  eval batch 256 vs 32, NCHW vs channels_last, side by side in one run; IResNet-18 at 112x112 RGB
  (the GPU configs' family) for scale;
- the default backbone plain vs with its BatchNorms folded into the convolutions (what the Embedder
  and the export serve, marginface.inference.fold), batch 32, channels_last, timed in interleaved
  rounds of the same run: images/s of each and the ratio (median of the rounds' ratios);
- memory of an in-memory data set taken through FaceDataModule set-up, one training epoch of the
  loader and the open-set embedding: resident set growth, and a census of the large tensors alive
  (storages of >= 1 MiB) against the bytes of the resized data set. "Held once" means exactly one
  storage of that size is alive and every split is an index view into it.

    .venv/bin/python benchmarks/bench_scale.py [--images 10000] [--memory-images 40000]
    .venv/bin/python benchmarks/bench_scale.py --fold-only --threads 1   # the folding rows alone
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import warnings

import torch

import summary


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def large_storages(min_bytes: int = 1 << 20) -> dict[int, int]:
    """data_ptr -> bytes of every distinct tensor storage of at least `min_bytes` alive in Python."""
    gc.collect()
    found: dict[int, int] = {}
    warnings.simplefilter("ignore", FutureWarning)  # isinstance() on torch's deprecated aliases
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and not obj.is_meta:
                storage = obj.untyped_storage()
                if storage.nbytes() >= min_bytes:
                    found[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, ReferenceError):  # tensors without storage (e.g. functional wrappers)
            continue
    return found


def throughput(
    net, images, batch_size: int, channels_last: bool, repeats: int = 2, bf16: bool = False
) -> float:
    """Best images/s of extract_embeddings (flip on) over `repeats` passes."""
    from marginface.inference.embed import extract_embeddings

    net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        extract_embeddings(net, images[: 4 * batch_size], batch_size=batch_size, progress=False)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            extract_embeddings(net, images, batch_size=batch_size, progress=False)
            best = min(best, time.perf_counter() - t)
    return len(images) / best


def fold_rows(n_images: int, rounds: int = 5, batch_size: int = 32) -> list[tuple[str, str, str]]:
    """The default backbone (channels_last, flip TTA) plain and BN-folded, one pass of each per round,
    the order swapped every round so that load from other processes hits both alike."""
    import numpy as np

    from marginface.backbones import SmallFaceNet
    from marginface.inference.embed import extract_embeddings
    from marginface.inference.fold import conv_batchnorm_pairs, fold_batchnorm

    torch.manual_seed(0)
    images = torch.randint(0, 256, (n_images, 1, 56, 48), dtype=torch.uint8)
    plain = SmallFaceNet(embedding_dim=128).eval().to(memory_format=torch.channels_last)
    nets = {"plain": plain, "folded BN": fold_batchnorm(plain)}
    pairs = len(conv_batchnorm_pairs(plain))
    check = images[: 4 * batch_size]
    outputs = {
        name: extract_embeddings(net, check, batch_size=batch_size, progress=False)
        for name, net in nets.items()
    }  # also the warm-up
    diff = float(np.abs(outputs["plain"] - outputs["folded BN"]).max())
    wall: dict[str, list[float]] = {name: [] for name in nets}
    cpu: dict[str, list[float]] = {name: [] for name in nets}
    for round_ in range(rounds):
        for name in list(nets)[:: 1 if round_ % 2 == 0 else -1]:
            t, c = time.perf_counter(), time.process_time()
            extract_embeddings(nets[name], images, batch_size=batch_size, progress=False)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    ratio = {
        kind: statistics.median(p / f for p, f in zip(t["plain"], t["folded BN"], strict=True))
        for kind, t in (("wall", wall), ("CPU", cpu))
    }
    rows = []
    for name in nets:
        rate = n_images / min(wall[name])
        note = (
            f"{pairs} conv-BN pairs, as trained"
            if name == "plain"
            else f"{ratio['wall']:.2f}x plain (wall; CPU time {ratio['CPU']:.2f}x), median of "
            f"{rounds} interleaved rounds; max abs embedding difference {diff:.1e}"
        )
        rows.append(
            (
                f"extract {n_images:,} x 56x48 gray, default backbone, batch {batch_size}, "
                f"channels_last, {name}",
                f"{rate:,.0f} img/s",
                note,
            )
        )
    return rows


def flops_per_image(net, shape: tuple[int, ...]) -> float:
    """Forward FLOPs of one image, flip TTA included (two forwards), by torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.randn(8, *shape))
    return 2 * counter.get_total_flops() / 8


def extraction_rows(
    n_images: int, n_large: int, peak: float, bf16: bool = True, skipped: str = ""
) -> list[tuple[str, str, str]]:
    from marginface.backbones import IResNet, SmallFaceNet

    torch.manual_seed(0)
    images = torch.randint(0, 256, (n_images, 1, 56, 48), dtype=torch.uint8)
    net = SmallFaceNet(embedding_dim=128).eval()
    per_image = flops_per_image(net, (1, 56, 48))
    rows = []
    base = None
    for batch_size, channels_last in ((256, False), (256, True), (32, False), (32, True)):
        rate = throughput(net, images, batch_size, channels_last)
        base = base or rate
        layout = "channels_last" if channels_last else "NCHW"
        rows.append(
            (
                f"extract {n_images:,} x 56x48 gray, default backbone, batch {batch_size}, {layout}",
                f"{rate:,.0f} img/s",
                f"{rate / base:.2f}x the first row; {rate * per_image / 1e9 / peak:.0%} of the fp32 "
                f"matmul peak; 1M images in {1e6 / rate / 60:.0f} min",
            )
        )
    big = IResNet(num_layers=18).eval()
    big_flops = flops_per_image(big, (3, 112, 112))
    large = torch.randint(0, 256, (n_large, 3, 112, 112), dtype=torch.uint8)
    for autocast in (False, True) if bf16 else (False,):
        rate = throughput(big, large, 32, channels_last=True, repeats=1, bf16=autocast)
        rows.append(
            (
                f"extract {n_large:,} x 112x112 RGB, IResNet-18, batch 32, channels_last"
                + (", bf16 autocast" if autocast else ", fp32"),
                f"{rate:,.1f} img/s",
                f"{rate * big_flops / 1e9:.0f} GFLOP/s = {rate * big_flops / 1e9 / peak:.0%} of "
                "the fp32 matmul peak (flip TTA: two forwards an image)",
            )
        )
    if not bf16:
        rows.append(
            (
                f"extract {n_large:,} x 112x112 RGB, IResNet-18, batch 32, channels_last, bf16 autocast",
                "skipped",
                skipped,
            )
        )
    return rows


def memory_rows(n_images: int, batch_size: int) -> list[tuple[str, str, str]]:
    from marginface.data import FaceDataModule, FaceSet
    from marginface.data.transforms import augment, to_float
    from marginface.inference.embed import extract_embeddings

    ids = n_images // 10
    start = rss_mib()
    # built inline and handed over, as Hydra does: the caller keeps no reference to the original
    dm = FaceDataModule(
        FaceSet(
            torch.randint(0, 256, (n_images, 1, 112, 96), dtype=torch.uint8),
            torch.arange(ids).repeat_interleave(10),
            [f"id{i}" for i in range(ids)],
        ),
        image_size=(56, 48),
        batch_size=batch_size,
        val_per_identity=1,
    )
    dm.setup()
    after_setup = rss_mib()
    resized = dm.data.images.untyped_storage().nbytes()
    alive = large_storages()
    splits = [dm.train_dataloader().dataset, *(loader.dataset for loader in dm.val_dataloader())]
    views = all(s.source.images.untyped_storage().data_ptr() in alive for s in splits)
    once = list(alive.values()).count(resized) == 1 and sum(alive.values()) < 1.5 * resized
    rows = [
        (
            f"in-memory set of {n_images:,} images, 112x96 given, 56x48 kept",
            f"{resized / 2**20:.0f} MiB resized",
            f"given set {n_images * 112 * 96 / 2**20:.0f} MiB, freed after set-up",
        ),
        (
            "large tensors alive after set-up (>= 1 MiB storages)",
            f"{len(alive)} storage(s), {sum(alive.values()) / 2**20:.0f} MiB",
            f"held once: {'yes' if once else 'NO'}; splits are index views: {'yes' if views else 'NO'}",
        ),
        (
            "RSS growth: set-up",
            f"{after_setup - start:+.0f} MiB",
            "the resized set plus the freed original's pages the allocator kept",
        ),
    ]
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(56 * 48, 128))
    before = rss_mib()
    for x, _ in dm.train_dataloader():
        augment(to_float(x), flip=True, shift=3)
    rows.append(
        ("RSS growth: one training epoch of the loader", f"{rss_mib() - before:+.0f} MiB", "")
    )
    before = rss_mib()
    images, _ = dm.open_set()
    extract_embeddings(net, images, progress=False)
    rows.append(
        (
            "RSS growth: open-set gather + embedding",
            f"{rss_mib() - before:+.0f} MiB",
            f"the open-set images ({images.untyped_storage().nbytes() / 2**20:.0f} MiB) are gathered "
            "for the evaluation only",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=10_000, help="images for the default backbone"
    )
    parser.add_argument("--large-images", type=int, default=128, help="images for IResNet-18")
    parser.add_argument("--memory-images", type=int, default=40_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--fold-rounds", type=int, default=5, help="rounds of plain vs folded BN")
    parser.add_argument("--fold-only", action="store_true", help="only the plain vs folded BN rows")
    summary.add_bf16_option(parser, "the IResNet bf16 row")
    parser.add_argument("--summary", help="add the headline figures to this JSON file (run_all.py)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(summary.header())
    peak = summary.matmul_peak()
    print(f"fp32 matmul peak (2048^3): {peak:.1f} GFLOP/s, {torch.get_num_threads()} thread(s)")
    if args.fold_only:
        print(
            summary.markdown(["what", "measured", "note"], fold_rows(args.images, args.fold_rounds))
        )
        return
    rows = memory_rows(args.memory_images, args.batch_size)  # first: before other allocations
    rows += extraction_rows(
        args.images,
        args.large_images,
        peak,
        bf16=summary.bf16_wanted(args.bf16),
        skipped=summary.bf16_skipped(args.bf16),
    )
    folding = fold_rows(args.images, args.fold_rounds)
    rows += folding
    print(summary.markdown(["what", "measured", "note"], rows))
    held = next(r for r in rows if r[0].startswith("large tensors alive"))
    # batch 32, channels_last: what evaluation uses on the CPU
    extract = next(r for r in rows if "batch 32, channels_last" in r[0] and "default" in r[0])
    iresnet = [r for r in rows if "IResNet-18" in r[0] and r[1] != "skipped"]
    best_big = max(iresnet, key=lambda r: float(r[1].split()[0].replace(",", "")))
    summary.add(
        args.summary,
        [
            (
                "embedding extraction, default backbone, flip TTA (batch 32, channels_last)",
                f"{extract[1]}, {extract[2].split('; ')[1].split(' of')[0]} of peak",
                ">= 50% of peak in FLOPs",
                float(extract[2].split("; ")[1].split("%")[0]) >= 50,
            ),
            (
                "IResNet-18 112x112 inference, best setting measured",
                f"{best_big[0].rsplit(', ', 1)[1]}: {best_big[1]} ({best_big[2].split(' (')[0]})",
                "reported",
                None,
            ),
            (
                "BN folded into the convs vs plain, default backbone extraction (same run)",
                f"{folding[1][1]} vs {folding[0][1]}: {folding[1][2].split(' (')[0]}",
                "reported",
                None,
            ),
            (
                "no data set held twice (census of large tensors)",
                held[2],
                "held once, splits are views",
                "NO" not in held[2],
            ),
        ],
    )


if __name__ == "__main__":
    main()
