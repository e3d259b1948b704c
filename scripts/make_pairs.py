"""Write a pairs file (LFW's pairs.txt format) for a face folder: `python scripts/make_pairs.py ROOT OUT`.

The protocol is fixed by --seed, so it can be shared and rerun: `python scripts/evaluate.py
ckpt_path=... data=folder data.dataset.root=ROOT data.split=unseen eval.pairs=OUT`.
"""

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the folder holding <identity>/<image> files")
    parser.add_argument("out", type=Path, help="the pairs file to write")
    parser.add_argument("--folds", type=int, default=10, help="identity-disjoint folds (10)")
    parser.add_argument(
        "--pairs-per-fold", type=int, default=300, help="matched pairs per fold, as many mismatched"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from marginface.data.images import require_path
    from marginface.data.pairs_protocol import folder_counts, make_pairs, write_pairs_file

    counts = folder_counts(require_path(args.root, "face folder", "Pairs files"))
    protocol = make_pairs(counts, args.folds, args.pairs_per_fold, args.seed)
    path = write_pairs_file(args.out, protocol)
    print(
        f"{path}: {args.folds} folds x ({args.pairs_per_fold} matched + {args.pairs_per_fold} "
        f"mismatched) pairs of {len(counts)} identities, seed {args.seed}"
    )


if __name__ == "__main__":
    main()
