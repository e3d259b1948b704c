"""Fixed verification protocols for any face folder: pairs files in LFW's pairs.txt format.

In such a file an image is named by its identity folder and a number n: the n-th image file of
that folder, counting from 1 in sorted file-name order (for LFW, `Name_000n.jpg`). `make_pairs`
draws a protocol from a folder with a seed (identity-disjoint folds, as LFW's), `write_pairs_file`
writes it, `resolve_pairs` turns a file into index pairs of the images a data set loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from marginface.data.base import DataError
from marginface.data.folder import scan_tree
from marginface.data.lfw import PairsFile, read_pairs_file
from marginface.io import atomic_write_bytes

# below this many candidate pairs in a fold, draw from the full list; above it, by rejection
_ENUMERATE_LIMIT = 1 << 20


def folder_counts(root: str | os.PathLike) -> dict[str, int]:
    """Number of image files of each identity folder of `root` (the listing make_pairs numbers)."""
    counts: dict[str, int] = {}
    for identity, _ in scan_tree(root):
        counts[identity] = counts.get(identity, 0) + 1
    return counts


def _draw(candidates: int, want: int, sample, rng: np.random.Generator) -> list[tuple]:
    """`want` distinct items of `sample(rng)` (a generator of random candidates), none twice."""
    seen: dict[tuple, None] = {}
    for _ in range(100 * want + 1000):
        if len(seen) == want:
            break
        seen.setdefault(sample(rng))
    if len(seen) < want:  # pragma: no cover - only when want is close to candidates
        raise DataError(f"drew only {len(seen)} distinct pairs of {candidates}; ask for fewer")
    return sorted(seen)


def _matched(counts: Sequence[tuple[str, int]], want: int, rng: np.random.Generator) -> list:
    both = [(name, c) for name, c in counts if c >= 2]
    total = sum(c * (c - 1) // 2 for _, c in both)
    if total <= _ENUMERATE_LIMIT:
        every = [(n, a, b) for n, c in both for a in range(1, c + 1) for b in range(a + 1, c + 1)]
        pick = rng.choice(len(every), size=want, replace=False)
        return sorted(every[k] for k in pick)

    def sample(rng):
        name, c = both[rng.integers(len(both))]
        a, b = sorted(rng.choice(c, size=2, replace=False) + 1)
        return (name, int(a), int(b))

    return _draw(total, want, sample, rng)


def _mismatched(counts: Sequence[tuple[str, int]], want: int, rng: np.random.Generator) -> list:
    total = (sum(c for _, c in counts) ** 2 - sum(c * c for _, c in counts)) // 2
    if total <= _ENUMERATE_LIMIT:
        every = [
            (n1, a, n2, b)
            for x, (n1, c1) in enumerate(counts)
            for n2, c2 in counts[x + 1 :]
            for a in range(1, c1 + 1)
            for b in range(1, c2 + 1)
        ]
        pick = rng.choice(len(every), size=want, replace=False)
        return sorted(every[k] for k in pick)

    def sample(rng):
        x, y = sorted(rng.choice(len(counts), size=2, replace=False))
        (n1, c1), (n2, c2) = counts[x], counts[y]
        return (n1, int(rng.integers(c1)) + 1, n2, int(rng.integers(c2)) + 1)

    return _draw(total, want, sample, rng)


def make_pairs(
    counts: Mapping[str, int], num_folds: int = 10, pairs_per_fold: int = 300, seed: int = 0
) -> PairsFile:
    """A protocol of `num_folds` identity-disjoint folds of `pairs_per_fold` matched and as many
    mismatched pairs, drawn without repeats from identities with `counts` images; fixed by `seed`.

    Identities are dealt to the folds round-robin after a seeded shuffle, so no person is in two
    folds (LFW's View 2 rule) and the 10-fold accuracy never picks a threshold on a test person.
    """
    if num_folds < 1 or pairs_per_fold < 1:
        raise DataError(
            f"num_folds={num_folds}, pairs_per_fold={pairs_per_fold}: expected both >= 1"
        )
    if len(counts) < 2 * num_folds:
        raise DataError(
            f"{len(counts)} identities cannot make {num_folds} identity-disjoint folds of at least "
            "2 identities each; lower num_folds"
        )
    rng = np.random.default_rng(seed)
    names = sorted(counts)
    order = [names[k] for k in rng.permutation(len(names))]
    pairs, issame, folds = [], [], []
    for fold in range(num_folds):
        members = sorted((name, int(counts[name])) for name in order[fold::num_folds])
        matched_total = sum(c * (c - 1) // 2 for _, c in members)
        if matched_total < pairs_per_fold:
            raise DataError(
                f"fold {fold + 1} of {num_folds} has {len(members)} identities and only "
                f"{matched_total} distinct matched pairs, fewer than pairs_per_fold={pairs_per_fold}; "
                "lower pairs_per_fold or num_folds"
            )
        sizes = [c for _, c in members]
        if (sum(sizes) ** 2 - sum(c * c for c in sizes)) // 2 < pairs_per_fold:
            raise DataError(
                f"fold {fold + 1} of {num_folds} has too few images for {pairs_per_fold} distinct "
                "mismatched pairs; lower pairs_per_fold or num_folds"
            )
        for name, a, b in _matched(members, pairs_per_fold, rng):
            pairs.append((name, a, name, b))
        pairs += _mismatched(members, pairs_per_fold, rng)
        issame += [True] * pairs_per_fold + [False] * pairs_per_fold
        folds += [fold] * (2 * pairs_per_fold)
    return PairsFile(pairs, issame, folds, num_folds, pairs_per_fold)


def format_pairs_file(protocol: PairsFile) -> str:
    """The text of a pairs file: header "F N", then per fold N matched and N mismatched lines."""
    lines = [f"{protocol.num_folds}\t{protocol.pairs_per_class}"]
    for (n1, a, n2, b), same in zip(protocol.pairs, protocol.issame, strict=True):
        lines.append(f"{n1}\t{a}\t{b}" if same else f"{n1}\t{a}\t{n2}\t{b}")
    return "\n".join(lines) + "\n"


def write_pairs_file(path: str | os.PathLike, protocol: PairsFile) -> Path:
    """Write `protocol` to `path` atomically (a crash leaves no half-written protocol)."""
    for name, _, other, _ in protocol.pairs:
        if any(ch.isspace() for ch in name + other):
            raise DataError(
                f"identity {name if any(c.isspace() for c in name) else other!r} has white space "
                "in its name, which the pairs file format cannot hold; rename the folder"
            )
    return atomic_write_bytes(path, format_pairs_file(protocol).encode())


def resolve_pairs(
    pairs_path: str | os.PathLike, paths: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(i, j, fold per pair or None): the pairs of a pairs file as indices into `paths`.

    `paths` are the loaded images (`root/<identity>/<file>`, one root); the file's (name, n) is the
    n-th file of `root/name` in sorted order. A pair naming an image that is not there, or that
    was not loaded (unreadable, or its identity dropped), is a DataError with the line number.
    """
    parsed = read_pairs_file(pairs_path)
    roots = sorted({str(Path(p).parent.parent) for p in paths})
    if len(roots) != 1:
        raise DataError(
            f"a pairs file refers to images of one folder root/<identity>/<file>; the data set's "
            f"images lie under {len(roots)} roots ({', '.join(roots[:3])})"
        )
    root = Path(roots[0])
    files: dict[str, list[str]] = {}
    for identity, name in scan_tree(root):
        files.setdefault(identity, []).append(name)
    position = {os.path.normpath(p): k for k, p in enumerate(paths)}
    lines = parsed.line_numbers or [0] * len(parsed.pairs)
    index = np.empty((len(parsed.pairs), 2), dtype=np.int64)
    for row, ((n1, a, n2, b), line) in enumerate(zip(parsed.pairs, lines, strict=True)):
        for col, (name, number) in enumerate(((n1, a), (n2, b))):
            listed = files.get(name, [])
            if number > len(listed):
                raise DataError(
                    f"{pairs_path}, line {line}: {name} image {number} does not exist: "
                    f"{root / name} holds {len(listed)} image file(s) (images are numbered from 1 "
                    "in sorted file-name order; see data/README.md, section 'Pairs files')"
                )
            path = os.path.normpath(root / name / listed[number - 1])
            if path not in position:
                raise DataError(
                    f"{pairs_path}, line {line}: {path} ({name} image {number}) was not loaded: "
                    "unreadable, or its identity was left out (data.dataset.min_images)"
                )
            index[row, col] = position[path]
    folds = None if parsed.folds is None else np.asarray(parsed.folds, dtype=np.int64)
    return index[:, 0], index[:, 1], folds
