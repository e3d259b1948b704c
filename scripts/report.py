"""Write the ablation report: `python scripts/report.py PATH_TO_MULTIRUN [--out DIR] [--toy DIR]`.

`python scripts/report.py --toy DIR` alone trains the toy models (2-D / 3-D embeddings, 8 identities)
into DIR and draws their figures there; with PATH as well, they join the report.
"""

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "path", nargs="?", type=Path, help="folder above the runs' results.json files"
    )
    parser.add_argument(
        "--out", type=Path, help="where report.md and the figures go (default PATH/report)"
    )
    parser.add_argument(
        "--toy", type=Path, help="folder of the toy models (trained there when missing)"
    )
    parser.add_argument(
        "--scaling",
        type=Path,
        help="head_scaling.json from benchmarks/bench_head_scaling.py --json",
    )
    parser.add_argument(
        "--no-measure", action="store_true", help="do not time the heads when no --scaling is given"
    )
    args = parser.parse_args()
    if args.path is None and args.toy is None:
        parser.error("give PATH (a multirun folder) and/or --toy DIR")
    if args.path is not None and not args.path.is_dir():
        parser.error(
            f"no such folder: {args.path} (pass a multirun folder, e.g. multirun/ablation_quick)"
        )

    from marginface.experiments.scaling import measure_for_report
    from marginface.experiments.toy import train_toy
    from marginface.report.build import build_report
    from marginface.report.toy import toy_figures

    if args.toy is not None:
        runs = train_toy(args.toy)
        if args.path is None:
            for path in toy_figures(runs, args.out or args.toy):
                print(path)
            return
    measure = None if args.no_measure else measure_for_report  # times the heads (a few minutes)
    report = build_report(args.path, args.out, args.scaling, measure, args.toy)
    print(report)


if __name__ == "__main__":
    main()
