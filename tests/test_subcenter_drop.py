"""The sub-center drop step: angles to the dominant sub-centre of a tiny trained checkpoint, by hand."""

from __future__ import annotations

import csv
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from marginface.data.transforms import to_float
from marginface.evaluation.subcenter_drop import COLUMNS, subcenter_drop
from marginface.inference.checkpoint import load_model
from marginface.pipeline import train

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "subcenter_drop.py"


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


def by_hand(cfg, ckpt: Path):
    """(data-set index, class, identity, held out, dominant sub-centre, angle) per image, in numpy."""
    backbone, head, _ = load_model(ckpt)
    dm = instantiate(cfg.data)
    dm.setup()
    images, labels = dm.training_identities()
    backbone.eval()
    with torch.no_grad():
        x = backbone(to_float(images)).double().numpy()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    k = head.subcenters
    w = head.weight.detach().double().numpy().reshape(head.num_classes, k, -1)
    w /= np.linalg.norm(w, axis=2, keepdims=True)
    labels = labels.numpy()
    cos = np.einsum("nkd,nd->nk", w[labels], x)  # each image against its class's sub-centres
    votes = np.zeros((head.num_classes, k), dtype=int)
    np.add.at(votes, (labels, cos.argmax(1)), 1)
    dominant = votes.argmax(1)[labels]  # the sub-centre nearest to most of the class
    angle = np.degrees(np.arccos(np.clip(cos[np.arange(len(x)), dominant], -1, 1)))
    index = torch.cat([dm.train_index, dm.val_index]).numpy()
    held_out = np.arange(len(x)) >= len(dm.train_index)
    names = [dm.data.identities[int(dm.data.labels[i])] for i in index]
    return index, labels, names, held_out, dominant, angle


def test_drop_lists_the_images_beyond_the_angle_as_computed_by_hand(tiny_train_cfg, tmp_path):
    cfg = tiny_train_cfg("loss=subcenter_arcface", "loss.subcenters=2")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    index, labels, names, held_out, dominant, angle = by_hand(cfg, ckpt)

    # max_angle 0: every image, largest angle first, each row as computed by hand
    summary = subcenter_drop(ckpt, tmp_path / "all", max_angle=0.0)
    rows = read_rows(tmp_path / "all" / "subcenter_drop.csv")
    # 8 identities in 2 folds: 4 training identities x 4 images (3 trained on, 1 held out)
    assert summary["images"] == summary["listed"] == len(rows) == len(index) == 4 * 4
    got = {int(r["index"]): r for r in rows}
    for n, i in enumerate(index):
        r = got[int(i)]
        assert float(r["angle_deg"]) == pytest.approx(angle[n], abs=1e-3)
        assert (int(r["class"]), int(r["subcentre"]), r["identity"]) == (
            labels[n],
            dominant[n],
            names[n],
        )
        assert r["held_out"] == str(bool(held_out[n])) and r["path"] == ""  # synthetic: no files
    listed = [float(r["angle_deg"]) for r in rows]
    assert listed == sorted(listed, reverse=True)

    # the paper's 75 degrees, through the script: exactly the images beyond it
    argv = sys.argv
    try:
        sys.argv = [str(SCRIPT), str(ckpt), str(tmp_path / "75")]
        runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = argv
    beyond = read_rows(tmp_path / "75" / "subcenter_drop.csv")
    assert sorted(int(r["index"]) for r in beyond) == sorted(index[angle > 75].tolist())


def test_a_head_that_is_not_subcenter_is_refused(tiny_train_cfg, tmp_path):
    cfg = tiny_train_cfg("loss=arcface")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    with pytest.raises(
        ValueError, match=r"ArcFaceHead head \(loss=arcface\).*loss=subcenter_arcface"
    ):
        subcenter_drop(ckpt, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match=r"max_angle must be .* \[0, 180\]"):
        subcenter_drop(ckpt, tmp_path / "out", max_angle=200)
