"""Evaluating trained checkpoints on a folder of people they never saw (issue 16): every identity
scored, the checkpoint's own input, fixed pairs protocols, and every bad input refused cleanly."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image
from sklearn.metrics import roc_auc_score

from helpers import TINY, compose_config
from marginface.data import DataError
from marginface.evaluation.evaluate import evaluate
from marginface.inference.checkpoint import load_model
from marginface.inference.embed import extract_embeddings
from marginface.pipeline import train

IDENTITIES, PER_IDENTITY = 12, 4


def write_colour_crops(root: Path, identities: int = IDENTITIES, per_identity: int = PER_IDENTITY):
    """ORL faces turned into colour 150x150 PNG crops, root/<sNN>/<k>.png; returns the paths."""
    from marginface.data.orl import load_orl

    faces = load_orl()
    paths = []
    for identity in range(identities):
        folder = root / f"s{identity:02d}"
        folder.mkdir(parents=True)
        index = torch.nonzero(faces.labels == identity).flatten()[:per_identity]
        for k, i in enumerate(index.tolist()):
            gray = faces.images[i, 0].numpy().astype(np.float32)
            tint = np.stack([gray, 0.85 * gray + 20, 0.7 * gray + 10], axis=-1)  # a colour face
            image = Image.fromarray(tint.clip(0, 255).astype(np.uint8)).resize((150, 150))
            image.save(folder / f"{k}.png")
            paths.append(folder / f"{k}.png")
    return paths


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("faces")
    return root, write_colour_crops(root)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Two tiny checkpoints (28x24 grayscale input) and one that stores a WCCN whitening."""
    out = {}
    for name, overrides in {
        "softmax": ["loss=softmax", "seed=0"],
        "arcface": ["loss=arcface", "seed=1"],
        "wccn": ["loss=cosface", "eval.wccn=true"],
    }.items():
        run = tmp_path_factory.mktemp(f"train_{name}")
        train(compose_config("train", [*TINY, *overrides], run))
        out[name] = run / "checkpoints" / "last.ckpt"
    GlobalHydra.instance().clear()
    return out


def unseen(root: Path, ckpt: Path, *extra: str) -> list[str]:
    return [
        "data=folder",
        f"data.dataset.root={root}",
        "data.split=unseen",
        f"ckpt_path={ckpt}",
        *extra,
    ]


def reference_embeddings(paths, ckpt: Path, size=(28, 24)) -> np.ndarray:
    """Decode as data/README.md says (grayscale, then resize), independently of the data module."""
    images = []
    for path in paths:
        gray = Image.open(path).convert("L").resize((size[1], size[0]), Image.Resampling.BILINEAR)
        images.append(torch.from_numpy(np.array(gray))[None])
    backbone, _, _ = load_model(ckpt)
    return extract_embeddings(backbone, torch.stack(images))


def test_unseen_folder_scores_every_identity_at_the_checkpoint_input(
    colour_folder, checkpoints, tmp_path
):
    root, paths = colour_folder
    results = evaluate(compose_config("evaluate", unseen(root, checkpoints["softmax"]), tmp_path))
    n = IDENTITIES * PER_IDENTITY
    with np.load(tmp_path / "scores.npz") as saved:
        scores, issame = saved["scores"], saved["issame"]
    assert len(scores) == n * (n - 1) // 2 == results["pairs"]["count"]
    assert issame.sum() == IDENTITIES * PER_IDENTITY * (PER_IDENTITY - 1) // 2
    assert results["closed_set"]["accuracy"] is None
    data = results["config"]["data"]
    assert data["image_size"] == [28, 24] and data["channels"] == 1  # the checkpoint's input
    assert results["checkpoint"]["loss"] == "softmax" and results["checkpoint"]["seed"] == 0
    # independent recomputation: every pair's cosine from images decoded by PIL here
    emb = reference_embeddings(paths, checkpoints["softmax"])
    i, j = np.triu_indices(n, k=1)
    labels = np.repeat(np.arange(IDENTITIES), PER_IDENTITY)
    expected = roc_auc_score(labels[i] == labels[j], (emb[i] * emb[j]).sum(1))
    assert math.isclose(results["open_set"]["verification"]["auc"], expected, abs_tol=2e-3)


def test_a_given_size_that_contradicts_the_checkpoint_is_refused(
    colour_folder, checkpoints, tmp_path
):
    root, _ = colour_folder
    cfg = compose_config(
        "evaluate", unseen(root, checkpoints["softmax"], "data.image_size=[56,48]"), tmp_path
    )
    with pytest.raises(ValueError, match=r"trained on 1x\(28, 24\).*data.image_size=\[56, 48\]"):
        evaluate(cfg)
    assert not (tmp_path / "results.json").exists()


def test_a_centre_crop_is_taken_before_resizing(colour_folder, checkpoints, tmp_path):
    root, paths = colour_folder
    cfg = compose_config(
        "evaluate", unseen(root, checkpoints["softmax"], "data.dataset.crop=[120,100]"), tmp_path
    )
    evaluate(cfg)
    with np.load(tmp_path / "scores.npz") as saved:
        scores = saved["scores"]
    cropped = [p.parent / f"crop_{p.name}" for p in paths]
    for path, out in zip(paths, cropped, strict=True):  # crop offsets: round((150 - 120) / 2) = 15
        Image.open(path).crop((25, 15, 125, 135)).save(out)
    emb = reference_embeddings(cropped, checkpoints["softmax"])
    for out in cropped:
        out.unlink()
    i, j = np.triu_indices(len(paths), k=1)
    np.testing.assert_allclose(scores, (emb[i] * emb[j]).sum(1), atol=0.05)


def test_pairs_file_round_trip_and_evaluation(colour_folder, checkpoints, tmp_path):
    from marginface.data.lfw import read_pairs_file
    from marginface.data.pairs_protocol import folder_counts, make_pairs, write_pairs_file

    root, paths = colour_folder
    counts = folder_counts(root)
    assert counts == {f"s{k:02d}": PER_IDENTITY for k in range(IDENTITIES)}
    protocol = make_pairs(counts, num_folds=3, pairs_per_fold=5, seed=4)
    path = write_pairs_file(tmp_path / "pairs.txt", protocol)
    again = read_pairs_file(path)
    assert (again.pairs, again.issame, again.folds) == (
        protocol.pairs,
        protocol.issame,
        protocol.folds,
    )
    assert (again.num_folds, again.pairs_per_class) == (3, 5)
    assert (
        path.read_text()
        == write_pairs_file(tmp_path / "again.txt", make_pairs(counts, 3, 5, 4)).read_text()
    )
    assert (
        path.read_text()
        != write_pairs_file(tmp_path / "other.txt", make_pairs(counts, 3, 5, 5)).read_text()
    )
    # folds are identity-disjoint, pairs distinct
    people = [
        {p[0] for p, f in zip(protocol.pairs, protocol.folds, strict=True) if f == k}
        for k in range(3)
    ]
    assert all(a.isdisjoint(b) for x, a in enumerate(people) for b in people[x + 1 :])
    assert len(set(protocol.pairs)) == 30
    run = tmp_path / "run"
    results = evaluate(
        compose_config("evaluate", unseen(root, checkpoints["softmax"], f"eval.pairs={path}"), run)
    )
    assert results["pairs"]["count"] == 30
    with np.load(run / "scores.npz") as saved:
        scores, issame = saved["scores"], saved["issame"]
    emb = reference_embeddings(paths, checkpoints["softmax"])
    position = {(p.parent.name, int(p.stem) + 1): k for k, p in enumerate(paths)}
    i = [position[(a, m)] for a, m, _, _ in protocol.pairs]
    j = [position[(b, m)] for _, _, b, m in protocol.pairs]
    assert issame.tolist() == protocol.issame
    np.testing.assert_allclose(scores, (emb[i] * emb[j]).sum(1), atol=0.05)


def test_make_pairs_script_writes_the_protocol(colour_folder, tmp_path, monkeypatch, capsys):
    import runpy
    import sys

    from marginface.data.lfw import read_pairs_file

    root, _ = colour_folder
    out = tmp_path / "p.txt"
    argv = ["make_pairs.py", str(root), str(out), "--folds", "2", "--pairs-per-fold", "4"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(
        str(Path(__file__).parents[1] / "scripts" / "make_pairs.py"), run_name="__main__"
    )
    assert len(read_pairs_file(out).pairs) == 16 and "2 folds" in capsys.readouterr().out


def test_wccn_under_unseen_uses_the_stored_whitening_or_fails(
    colour_folder, checkpoints, tmp_path, caplog
):
    root, _ = colour_folder
    with caplog.at_level(logging.INFO, logger="marginface.evaluation.evaluate"):
        evaluate(
            compose_config(
                "evaluate", unseen(root, checkpoints["wccn"], "eval.wccn=true"), tmp_path
            )
        )
    assert "WCCN stored in the checkpoint" in caplog.text
    bare = tmp_path / "bare"
    cfg = compose_config("evaluate", unseen(root, checkpoints["softmax"], "eval.wccn=true"), bare)
    with pytest.raises(ValueError, match="needs a checkpoint trained with eval.wccn=true"):
        evaluate(cfg)
    assert not (bare / "results.json").exists() and not (bare / "scores.npz").exists()


# -- bad input: a clear message, nothing half-written ----------------------------------------------
def nothing_written(run: Path) -> bool:
    """Only error.txt (the failure record, written whole) in the run folder: no results, no scores."""
    written = (
        [] if not run.exists() else [p.name for p in run.iterdir() if not p.name.startswith(".")]
    )
    return written in ([], ["error.txt"])


def test_an_empty_folder_or_one_identity_is_refused(checkpoints, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "run"
    with pytest.raises(DataError, match="no images found"):
        evaluate(compose_config("evaluate", unseen(empty, checkpoints["softmax"]), run))
    one = tmp_path / "one"
    write_colour_crops(one, identities=1)
    with pytest.raises(DataError, match="need at least 2"):
        evaluate(compose_config("evaluate", unseen(one, checkpoints["softmax"]), run))
    assert nothing_written(run)


def test_single_image_identities_are_impostors_only_with_one_warning(checkpoints, tmp_path):
    root = tmp_path / "faces"
    paths = write_colour_crops(root, identities=5, per_identity=3)
    for path in paths[3:9]:  # s01 and s02 keep one image each
        if path.name != "0.png":
            path.unlink()
    with pytest.warns(UserWarning, match="2 of 5 open-set identities have a single image"):
        results = evaluate(
            compose_config("evaluate", unseen(root, checkpoints["softmax"]), tmp_path / "run")
        )
    assert results["pairs"]["count"] == 11 * 10 // 2  # 3 x 3 + 2 images: all scored


def test_unreadable_images_are_skipped_with_a_count_or_raise(checkpoints, tmp_path):
    root = tmp_path / "faces"
    write_colour_crops(root, identities=4, per_identity=3)
    (root / "s00" / "9.png").write_bytes(b"not an image")
    (root / "s01" / "9.png").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        results = evaluate(
            compose_config("evaluate", unseen(root, checkpoints["softmax"]), tmp_path / "run")
        )
    assert results["pairs"]["count"] == 12 * 11 // 2
    run = tmp_path / "raise"
    cfg = compose_config(
        "evaluate", unseen(root, checkpoints["softmax"], "data.dataset.on_error=raise"), run
    )
    with pytest.raises(DataError, match="cannot read image .*9.png"):
        evaluate(cfg)
    assert nothing_written(run)


def test_a_pairs_file_naming_a_missing_image_gives_the_line(colour_folder, checkpoints, tmp_path):
    root, _ = colour_folder
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("s00\t1\t2\ns01\t1\ts02\t3\ns03\t1\t9\n")
    run = tmp_path / "run"
    cfg = compose_config(
        "evaluate", unseen(root, checkpoints["softmax"], f"eval.pairs={pairs}"), run
    )
    with pytest.raises(DataError, match=r"pairs.txt, line 3: s03 image 9 does not exist.*holds 4"):
        evaluate(cfg)
    assert nothing_written(run)
    assert "line 3: s03 image 9" in (run / "error.txt").read_text().splitlines()[0]


def test_a_checkpoint_without_input_metadata_says_what_to_pass(
    colour_folder, checkpoints, tmp_path
):
    root, _ = colour_folder
    ckpt = torch.load(checkpoints["softmax"], map_location="cpu", weights_only=False)
    del ckpt["marginface_config"]["data"]["image_size"]
    bare = tmp_path / "bare.ckpt"
    torch.save(ckpt, bare)
    run = tmp_path / "run"
    with pytest.raises(
        ValueError, match=r"does not record its input.*pass data.image_size=\[H,W\]"
    ):
        evaluate(compose_config("evaluate", unseen(root, bare), run))
    assert nothing_written(run)
    given = ["data.image_size=[28,24]", "data.channels=1"]
    results = evaluate(compose_config("evaluate", unseen(root, bare, *given), tmp_path / "ok"))
    assert results["pairs"]["count"] == 48 * 47 // 2


# -- many models on one set -------------------------------------------------------------------------
@pytest.mark.slow  # a Hydra multirun in a subprocess: about 30 s on the 2-core machine
def test_a_two_checkpoint_multirun_gives_two_rows_in_the_report(
    colour_folder, checkpoints, tmp_path
):
    import json
    import os
    import shutil
    import subprocess
    import sys

    from marginface.metrics.verification import eer
    from marginface.report.build import build_report
    from marginface.report.runs import collect

    root, _ = colour_folder
    repo = Path(__file__).parents[1]
    sweep = tmp_path / "sweep"
    command = [
        sys.executable,
        "scripts/evaluate.py",
        "-m",
        f"ckpt_path={checkpoints['softmax']},{checkpoints['arcface']}",
        "data=folder",
        f"data.dataset.root={root}",
        "data.split=unseen",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "faiss.loader" not in done.stderr and "Loading faiss" not in done.stderr
    # an in-domain training run beside them is kept in its own group, never averaged with them
    shutil.copy(checkpoints["softmax"].parents[1] / "results.json", tmp_path / "results.json")
    collection = collect(tmp_path)
    assert sorted(g.checkpoints for g in collection.groups) == [False, True]
    group = next(g for g in collection.groups if g.checkpoints)
    rows = list(group.rows())
    assert len(rows) == 2 and rows[0] == "softmax, trained on SYNTHETIC identities fold 0, seed 0"
    assert rows[1] == "arcface, trained on SYNTHETIC identities fold 0, seed 1"
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert names == ["0_data.split=unseen,data=folder", "1_data.split=unseen,data=folder"]
    text = build_report(tmp_path, tmp_path / "report", measure=False, log=None).read_text()
    section = text.split("### trained checkpoints on")[1].split("##")[0]
    table = [
        ln
        for ln in section.splitlines()
        if ln.startswith("| softmax") or ln.startswith("| arcface")
    ]
    assert len(table) == 3  # two rows in the table, one in the paired table
    # the paired EER difference is the difference of the two runs' EERs on the same pairs
    runs = {r.loss: r for r in group.runs}
    assert runs["softmax"].get("pairs", "sha1") == runs["arcface"].get("pairs", "sha1")
    with (
        np.load(runs["softmax"].path / "scores.npz") as a,
        np.load(runs["arcface"].path / "scores.npz") as b,
    ):
        expected = eer(b["scores"], b["issame"]) - eer(a["scores"], a["issame"])
    assert f"{expected:+.4f}" in table[2]
    assert (
        json.loads((runs["arcface"].path / "results.json").read_text())["closed_set"]["accuracy"]
        is None
    )


def test_enroll_takes_the_same_input_handling(colour_folder, checkpoints, tmp_path):
    from marginface.inference.embedder import Embedder
    from marginface.inference.gallery import run_enroll

    root, paths = colour_folder
    embedder = Embedder.from_checkpoint(checkpoints["softmax"], crop=[120, 100])
    assert (embedder.image_size, embedder.channels, embedder.crop) == ((28, 24), 1, (120, 100))
    meta = run_enroll(
        str(checkpoints["softmax"]), str(root), str(tmp_path / "g.faiss"), crop=[120, 100]
    )
    assert meta["crop"] == [120, 100] and len(meta["labels"]) == len(paths)
    with pytest.raises(ValueError, match=r"data.image_size=\[56, 48\] was given"):
        Embedder.from_checkpoint(checkpoints["softmax"], image_size=[56, 48])
    ckpt = torch.load(checkpoints["softmax"], map_location="cpu", weights_only=False)
    del ckpt["marginface_config"]["data"]["channels"]
    torch.save(ckpt, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="does not record its input"):
        Embedder.from_checkpoint(tmp_path / "bare.ckpt")


def test_sampled_pairs_need_and_take_max_pairs(colour_folder, checkpoints, tmp_path):
    from marginface.metrics.pairs import sampled_pairs

    root, _ = colour_folder
    extra = ["eval.pairs=sampled", "eval.max_pairs=100"]
    run = tmp_path / "run"
    results = evaluate(
        compose_config("evaluate", unseen(root, checkpoints["softmax"], *extra), run)
    )
    labels = np.repeat(np.arange(IDENTITIES), PER_IDENTITY)
    i, j, same = sampled_pairs(labels, 100, seed=0)
    with np.load(run / "scores.npz") as saved:
        assert len(saved["scores"]) == 100 == results["pairs"]["count"]
        assert saved["issame"].tolist() == same.tolist()
    bare = tmp_path / "bare"
    cfg = compose_config(
        "evaluate", unseen(root, checkpoints["softmax"], "eval.pairs=sampled"), bare
    )
    with pytest.raises(ValueError, match="eval.pairs=sampled draws eval.max_pairs pairs"):
        evaluate(cfg)
    assert nothing_written(bare)


# -- ensembles: several checkpoints scored as one model -------------------------------------------
def ensemble(*paths: Path) -> list[str]:
    return ["model=ensemble", f"model.ckpt_paths=[{','.join(str(p) for p in paths)}]"]


def saved_scores(run: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(run / "scores.npz") as saved:
        return saved["scores"], saved["issame"]


def test_an_ensemble_scores_a_pair_by_the_mean_of_its_members_cosines(
    colour_folder, checkpoints, tmp_path
):
    root, _ = colour_folder
    folder = ["data=folder", f"data.dataset.root={root}", "data.split=unseen"]
    a, b = checkpoints["softmax"], checkpoints["arcface"]
    single = {}
    for name, ckpt in (("a", a), ("b", b)):
        single[name] = evaluate(
            compose_config("evaluate", [*folder, f"ckpt_path={ckpt}"], tmp_path / name)
        )
    joined = evaluate(compose_config("evaluate", [*folder, *ensemble(a, b)], tmp_path / "ab"))
    # the same pairs in the same order, each scored by the mean of the two members' cosines
    assert joined["pairs"]["sha1"] == single["a"]["pairs"]["sha1"] == single["b"]["pairs"]["sha1"]
    (sa, same), (sb, _), (sab, same_ab) = (saved_scores(tmp_path / n) for n in ("a", "b", "ab"))
    np.testing.assert_array_equal(same, same_ab)
    np.testing.assert_allclose(sab, (sa + sb) / 2, atol=1e-6)
    expected = roc_auc_score(same, (sa + sb) / 2)
    assert math.isclose(joined["open_set"]["verification"]["auc"], expected, abs_tol=1e-6)
    assert joined["loss"] == "ensemble(arcface+softmax)"
    assert [m["path"] for m in joined["ensemble"]] == [str(a), str(b)]
    assert joined["config"]["data"]["image_size"] == [28, 24]  # the members' input
    assert joined["closed_set"]["accuracy"] is None and joined["open_set"]["quality"] is None


def test_an_ensemble_whitens_each_member_by_its_own_wccn(checkpoints, tmp_path):
    data = [o for o in TINY if o.startswith("data")]  # the members' training data, fold 0
    a, b = checkpoints["softmax"], checkpoints["arcface"]
    wccn = "eval.wccn=true"
    for name, ckpt in (("a", a), ("b", b)):
        evaluate(compose_config("evaluate", [*data, wccn, f"ckpt_path={ckpt}"], tmp_path / name))
    evaluate(compose_config("evaluate", [*data, wccn, *ensemble(a, b)], tmp_path / "ab"))
    (sa, _), (sb, _), (sab, _) = (saved_scores(tmp_path / n) for n in ("a", "b", "ab"))
    np.testing.assert_allclose(sab, (sa + sb) / 2, atol=1e-6)
    raw = evaluate(compose_config("evaluate", [*data, *ensemble(a, b)], tmp_path / "raw"))
    assert not np.allclose(saved_scores(tmp_path / "raw")[0], sab)  # whitening did change them
    assert raw["ensemble"][0]["fold"] == 0


def test_an_ensemble_of_one_checkpoint_twice_is_that_checkpoint(checkpoints, tmp_path):
    data = [o for o in TINY if o.startswith("data")]
    ckpt = checkpoints["arcface"]
    extra = ["eval.distractors=6"]  # distractors from the generator, embedded by every member
    one = evaluate(compose_config("evaluate", [*data, *extra, f"ckpt_path={ckpt}"], tmp_path / "1"))
    two = evaluate(
        compose_config("evaluate", [*data, *extra, *ensemble(ckpt, ckpt)], tmp_path / "2")
    )
    np.testing.assert_allclose(
        saved_scores(tmp_path / "2")[0], saved_scores(tmp_path / "1")[0], atol=1e-6
    )
    with_distractors = [r["open_set"]["identification_distractors"] for r in (one, two)]
    assert with_distractors[0]["distractors"] == with_distractors[1]["distractors"] == 6
    assert with_distractors[0]["rank1"] == with_distractors[1]["rank1"]


def test_an_ensemble_needs_two_members_of_one_input(checkpoints, tmp_path):
    data = [o for o in TINY if o.startswith("data")]
    one = tmp_path / "one"
    with pytest.raises(ValueError, match="at least 2 checkpoints in model.ckpt_paths"):
        evaluate(compose_config("evaluate", [*data, *ensemble(checkpoints["softmax"])], one))
    assert nothing_written(one)
    ckpt = torch.load(checkpoints["arcface"], map_location="cpu", weights_only=False)
    ckpt["marginface_config"]["data"]["image_size"] = [32, 24]
    wider = tmp_path / "wider.ckpt"
    torch.save(ckpt, wider)
    run = tmp_path / "mixed"
    cfg = compose_config("evaluate", [*data, *ensemble(checkpoints["softmax"], wider)], run)
    with pytest.raises(ValueError, match=r"must share their input, but .*wider.ckpt"):
        evaluate(cfg)
    assert nothing_written(run)


# -- score normalisation (eval.score_norm) ----------------------------------------------------------
def by_hand_snorm(ckpt: Path, cfg, top_k: int | None = None):
    """(pair scores, cosines, issame) of S-norm computed here from the data module's own split:
    each open-set image's cosines against every image of the training identities."""
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.setup()
    backbone, _, _ = load_model(ckpt)
    images, labels = dm.open_set()
    e = extract_embeddings(backbone, images).astype(np.float64)
    t = extract_embeddings(backbone, dm.training_identities()[0]).astype(np.float64)
    z = np.sort(e @ t.T, axis=1)[:, -(top_k or t.shape[0]) :]
    mean, std = z.mean(1), z.std(1)
    i, j = np.triu_indices(len(e), 1)
    cos = (e[i] * e[j]).sum(1)
    snorm = 0.5 * ((cos - mean[i]) / std[i] + (cos - mean[j]) / std[j])
    labels = labels.numpy()
    return snorm, cos, labels[i] == labels[j]


@pytest.mark.parametrize("top_k", [None, 5])
def test_score_norm_rescales_each_pair_by_the_training_identities(checkpoints, tmp_path, top_k):
    from marginface.metrics.verification import eer

    data = [o for o in TINY if o.startswith("data")]
    ckpt = checkpoints["arcface"]
    extra = ["eval.score_norm=snorm", f"eval.score_norm_top_k={'null' if top_k is None else top_k}"]
    cfg = compose_config("evaluate", [*data, f"ckpt_path={ckpt}", *extra], tmp_path / "sn")
    normed = evaluate(cfg)
    raw = evaluate(compose_config("evaluate", [*data, f"ckpt_path={ckpt}"], tmp_path / "raw"))
    expected, cos, issame = by_hand_snorm(ckpt, cfg, top_k)
    with np.load(tmp_path / "sn" / "scores.npz") as saved:
        np.testing.assert_array_equal(saved["issame"], issame)
        np.testing.assert_allclose(saved["scores"], expected, atol=1e-4)
        np.testing.assert_allclose(saved["cosines"], cos, atol=1e-5)
    verification = normed["open_set"]["verification"]
    assert verification["eer"] == pytest.approx(eer(expected, issame), abs=1e-9)
    assert normed["config"]["eval"]["score_norm"] == "snorm"
    # identification and the angles stay on cosines
    for key in ("identification", "angles"):
        assert normed["open_set"][key] == raw["open_set"][key]


def test_score_norm_of_an_ensemble_of_one_checkpoint_twice_is_that_checkpoint(
    checkpoints, tmp_path
):
    data = [o for o in TINY if o.startswith("data")]
    ckpt = checkpoints["arcface"]
    extra = ["eval.score_norm=snorm", "eval.wccn=true"]  # each member's cohort whitened as it is
    one = evaluate(compose_config("evaluate", [*data, *extra, f"ckpt_path={ckpt}"], tmp_path / "1"))
    two = evaluate(
        compose_config("evaluate", [*data, *extra, *ensemble(ckpt, ckpt)], tmp_path / "2")
    )
    np.testing.assert_allclose(
        saved_scores(tmp_path / "2")[0], saved_scores(tmp_path / "1")[0], atol=1e-4
    )
    assert two["open_set"]["verification"]["eer"] == pytest.approx(
        one["open_set"]["verification"]["eer"]
    )


def test_score_norm_needs_training_identities_and_a_known_method(
    colour_folder, checkpoints, tmp_path
):
    from marginface.inference.gallery import load_impostor_scores

    root, _ = colour_folder
    ckpt = checkpoints["softmax"]
    with pytest.raises(ValueError, match="data.split=unseen has none"):
        evaluate(compose_config("evaluate", unseen(root, ckpt, "eval.score_norm=snorm"), tmp_path))
    data = [o for o in TINY if o.startswith("data")]
    for bad, message in (
        ("eval.score_norm=znorm", "expected null or 'snorm'"),
        ("eval.score_norm_top_k=1", "integer >= 2"),
    ):
        run = tmp_path / bad.replace("=", "_")
        cfg = compose_config("evaluate", [*data, f"ckpt_path={ckpt}", bad], run)
        with pytest.raises(ValueError, match=message):
            evaluate(cfg)
    cfg = compose_config("evaluate", [*data, "model=eigenfaces", "eval.score_norm=snorm"], tmp_path)
    with pytest.raises(ValueError, match="model=checkpoint and model=ensemble"):
        evaluate(cfg)
    # a gallery threshold is a cosine: an S-normalised run cannot calibrate one
    run = tmp_path / "normed"
    evaluate(compose_config("evaluate", [*data, f"ckpt_path={ckpt}", "eval.score_norm=snorm"], run))
    with pytest.raises(ValueError, match="S-normalised"):
        load_impostor_scores(run)


def test_training_with_score_norm_scores_the_normalised_pairs(tmp_path):
    from marginface.metrics.verification import eer

    cfg = compose_config(
        "train",
        [*TINY, "loss=softmax", "eval.score_norm=snorm", "eval.score_norm_top_k=4"],
        tmp_path,
    )
    results = train(cfg)
    GlobalHydra.instance().clear()
    expected, cos, issame = by_hand_snorm(tmp_path / "checkpoints" / "last.ckpt", cfg, top_k=4)
    with np.load(tmp_path / "scores.npz") as saved:
        # float32 cosines over a small cohort std (4 members): relative rounding of about 1e-4
        np.testing.assert_allclose(saved["scores"], expected, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(saved["cosines"], cos, atol=1e-5)
    assert results["open_set"]["verification"]["eer"] == pytest.approx(eer(expected, issame))
