"""List the noisy-label candidates of a sub-center ArcFace checkpoint: `python scripts/subcenter_drop.py CKPT OUT_DIR [--max-angle 75]`.

Writes OUT_DIR/subcenter_drop.csv: every image of the checkpoint's training identities farther
than --max-angle degrees from its class's dominant sub-centre (Deng et al. 2020 drop these and
retrain), largest angle first. Trailing KEY=VALUE entries change the stored training config, e.g.
data.dataset.root=/new/place for a data set that moved (docs/heads.md).
"""

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt", type=Path, help="a checkpoint trained with loss=subcenter_arcface")
    parser.add_argument("out", type=Path, help="the folder that receives subcenter_drop.csv")
    parser.add_argument(
        "--max-angle", type=float, default=75.0, help="degrees from the dominant sub-centre (75)"
    )
    parser.add_argument("--device", default="cpu", help="where to embed the images (cpu)")
    parser.add_argument(
        "overrides",
        nargs="*",
        help="KEY=VALUE changes to the stored config (data.dataset.root=...)",
    )
    args = parser.parse_args()

    from marginface.evaluation.subcenter_drop import subcenter_drop

    summary = subcenter_drop(args.ckpt, args.out, args.max_angle, args.overrides, args.device)
    print(
        f"{summary['csv']}: {summary['listed']} of {summary['images']} training-identity images "
        f"lie farther than {summary['max_angle']:g} degrees from their dominant sub-centre"
    )


if __name__ == "__main__":
    main()
