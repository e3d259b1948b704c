"""Weakness 1 of softmax loss: head parameters, memory and fwd+bwd time per step against the number of classes.

    .venv/bin/python benchmarks/bench_head_scaling.py                      # 100 .. 1,000,000 classes, D=512, B=128
    .venv/bin/python benchmarks/bench_head_scaling.py --classes 100 1000 10000 --json head_scaling.json --plot h.png

Every head of conf/loss (cosface left out: it is amsoftmax) on random embeddings. Parameters and
memory are exact counts at every size; the step time is measured where a step fits --max-gib and the
previous size took under --max-step-s, and extrapolated linearly in C beyond (marked in the table).
`scripts/report.py PATH --scaling head_scaling.json` puts the saved measurements in the report.
"""

from __future__ import annotations

import argparse

from marginface.experiments import scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=list(scaling.DEFAULT_CLASSES))
    parser.add_argument("--heads", nargs="+", help="conf/loss names (default: all but aliases)")
    parser.add_argument("--dim", type=int, default=512, help="embedding size D (ArcFace: 512)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--max-gib", type=float, default=4.0, help="largest step to run, GiB")
    parser.add_argument(
        "--max-step-s", type=float, default=10.0, help="stop timing a head past this step time"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (0: leave torch's default)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--json", help="save the measurements here (for scripts/report.py --scaling)"
    )
    parser.add_argument("--plot", help="save the log-log figure here")
    args = parser.parse_args()

    data = scaling.measure(
        scaling.head_configs(names=args.heads),
        classes=args.classes,
        dim=args.dim,
        batch=args.batch,
        repeats=args.repeats,
        warmup=args.warmup,
        max_bytes=int(args.max_gib * 2**30),
        max_step_s=args.max_step_s,
        device=args.device,
        threads=args.threads or None,
        log=print,
    )
    print()
    print(scaling.format_table(data))
    if args.json:
        print(f"\nsaved {scaling.save(data, args.json)}")
    if args.plot:
        from marginface.report.figures import plot_head_scaling

        print(f"saved {plot_head_scaling(data, args.plot)}")


if __name__ == "__main__":
    main()
