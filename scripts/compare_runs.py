"""Paired comparison of arms: `python scripts/compare_runs.py REFERENCE ARM [ARM ...] [--out FILE]`.

Each argument is a folder of finished runs (a multirun folder). Runs are paired on head (an
ensemble of checkpoints: its members' head), fold, seed and data.train_identities; for each arm the table gives both means (95% t-interval), the paired
difference arm minus reference with its 95% interval, and "not shown" when it includes zero.
    python scripts/compare_runs.py multirun/finetune_orl/scratch multirun/finetune_orl/pretrained_softmax
`--plot FILE.png` also draws the differences as a forest plot (`--plot-metrics`, `--labels`).
"""

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="the reference arm's folder of runs")
    parser.add_argument("arms", type=Path, nargs="+", help="folders of the arms compared with it")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--plot", type=Path, help="also draw the paired differences (PNG)")
    parser.add_argument(
        "--plot-metrics", nargs="+", default=["EER"], help="panels of the plot (default: EER)"
    )
    parser.add_argument("--labels", nargs="+", help="row labels of the plot, one per arm")
    args = parser.parse_args()
    for path in [args.reference, *args.arms]:
        if not path.is_dir():
            parser.error(f"no such folder: {path} (pass folders of finished runs, e.g. multirun/x)")
    if args.labels and len(args.labels) != len(args.arms):
        parser.error(f"{len(args.labels)} --labels for {len(args.arms)} arms: give one per arm")

    from marginface.report.arms import arms_figure, arms_markdown, compare_arms

    try:
        _, arms = compare_arms(args.reference, args.arms)
    except ValueError as err:
        parser.error(str(err))
    text = arms_markdown(args.reference, arms)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    if args.plot:
        try:
            arms_figure(args.reference, arms, args.plot, args.plot_metrics, args.labels)
        except ValueError as err:
            parser.error(str(err))
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
