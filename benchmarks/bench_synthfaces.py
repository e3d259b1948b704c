"""Speed of the synthfaces generator: images per second, one thread, by size, channels and chunk.

Prints one table: wall-clock and CPU-time rates (CPU time counts only this process, so it moves
less when other jobs share the machine) for 56x48 gray (the issue's target: >= 5,000 images/s),
the study's 32x32 and 112x96 RGB, at a few chunk sizes (images rendered at once).

    .venv/bin/python benchmarks/bench_synthfaces.py [--identities 300] [--images 10]
"""

from __future__ import annotations

import argparse
import time

import torch

import summary

CASES = [((56, 48), 1, 64), ((56, 48), 1, 128), ((56, 48), 1, 256), ((32, 32), 1, 128)]
CASES += [((112, 96), 3, 128)]


def rate(identities: int, images: int, size, channels: int, chunk: int, rounds: int):
    """Best (wall, CPU) images per second over `rounds` generations of the same set."""
    from marginface.data.synthfaces import make_synthfaces

    make_synthfaces(4, images, size, channels, chunk=chunk)  # warm-up: allocator, first-call costs
    best_wall = best_cpu = 0.0
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        faces = make_synthfaces(identities, images, size, channels, chunk=chunk)
        n = len(faces)
        best_wall = max(best_wall, n / (time.perf_counter() - wall))
        best_cpu = max(best_cpu, n / (time.process_time() - cpu))
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=300)
    parser.add_argument("--images", type=int, default=10, help="images per identity")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--summary", help="add the headline figure to this JSON file (run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(summary.header())
    print(f"{args.identities} identities x {args.images} images per set, best of {args.rounds}\n")
    rows, headline = [], None
    for size, channels, chunk in CASES:
        wall, cpu = rate(args.identities, args.images, size, channels, chunk, args.rounds)
        kind = "gray" if channels == 1 else "RGB"
        rows.append((f"{size[0]}x{size[1]} {kind}", chunk, f"{wall:,.0f}", f"{cpu:,.0f}"))
        if size == (56, 48) and channels == 1 and (headline is None or wall > headline[0]):
            headline = (wall, cpu, chunk)
    print(summary.markdown(["size", "chunk", "images/s (wall)", "images/s (CPU time)"], rows))
    wall, cpu, chunk = headline
    summary.add(
        args.summary,
        [
            (
                "synthfaces 56x48 gray, 1 thread (wall; CPU time)",
                f"{wall:,.0f}; {cpu:,.0f} images/s (chunk {chunk})",
                ">= 5,000 images/s",
                wall >= 5000,
            )
        ],
    )


if __name__ == "__main__":
    main()
