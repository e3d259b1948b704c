"""Crash safety: atomic writes, resuming equal to an uninterrupted run, the NaN guard, failures on
disk, bad data counted and reported, and property tests of the heads and the metrics."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.core.global_hydra import GlobalHydra
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

import marginface.pipeline
import marginface.training.fit
from helpers import TINY, compose_config
from marginface.data.base import DataError
from marginface.data.folder import load_folder
from marginface.data.samplers import EpochShuffleSampler
from marginface.heads import (
    AdaCosHead,
    AMSoftmaxHead,
    ArcFaceHead,
    CombinedMarginHead,
    LSoftmaxHead,
    SoftmaxHead,
    SphereFaceHead,
)
from marginface.io import write_json
from marginface.metrics.identification import identification_metrics
from marginface.metrics.retrieval import retrieval_metrics
from marginface.metrics.verification import verification_metrics
from marginface.search import FlatSearch
from marginface.training.callbacks import NonFiniteError, NonFiniteGuard, SeedEachEpoch
from marginface.training.checkpoints import AtomicCheckpointIO, resume_path
from marginface.training.failures import records_failure

ROOT = Path(__file__).resolve().parents[1]
# tiny, deterministic, three epochs of two batches, no figures, one thread (fast on a busy machine)
QUICK = [*TINY, "trainer.deterministic=true", "trainer.max_epochs=3", "eval.artifacts=false"]
QUICK += ["threads=1"]


@pytest.fixture
def compose_run():
    """compose(run_dir, *overrides) -> the train config of a tiny run writing into run_dir."""
    threads = torch.get_num_threads()
    yield lambda run_dir, *overrides: compose_config("train", [*QUICK, *overrides], run_dir)
    GlobalHydra.instance().clear()
    torch.set_num_threads(threads)  # train() applied threads=1 to the whole process


def add_callback(monkeypatch: pytest.MonkeyPatch, callback: L.Callback) -> None:
    """Give the next train() calls one more callback (a simulated crash or corruption)."""
    original = marginface.training.fit.training_callbacks
    monkeypatch.setattr(
        marginface.training.fit,
        "training_callbacks",
        lambda seed, run_dir: [*original(seed, run_dir), callback],
    )


class CrashAt(L.Callback):
    """Raise at the start of batch `batch` of epoch `epoch`: a crash mid-epoch."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.at = (epoch, batch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == self.at:
            raise RuntimeError("simulated crash")


class PoisonAt(CrashAt):
    """Set the first backbone weight to NaN at the start of a batch: the loss goes NaN."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == self.at:
            with torch.no_grad():
                next(pl_module.backbone.parameters()).fill_(float("nan"))


class StallMidEpoch(L.Callback):
    """For subprocess runs: after the first batch of `epoch`, write `marker` and wait to be killed."""

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, Path(marker)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == 0:
            self.marker.write_text(str(trainer.global_step))
            time.sleep(600)


def kill_when_written(path: Path, process: subprocess.Popen, seconds: float) -> None:
    """SIGKILL `process` as soon as it has written `path` (it must neither end nor dawdle first)."""
    deadline = time.monotonic() + seconds
    try:
        while not path.exists():
            assert process.poll() is None, f"it ended (rc {process.returncode}) before {path.name}"
            assert time.monotonic() < deadline, f"no {path.name} after {seconds} s"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL


# -- atomic writes ------------------------------------------------------------------------------
class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot serialise this")


@pytest.mark.parametrize("failure", ["rename", "serialise"])
def test_a_failed_checkpoint_write_leaves_the_old_checkpoint(tmp_path, monkeypatch, failure):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weight": torch.ones(3)}, path)
    new = {"step": 2, "weight": torch.zeros(3)}
    if failure == "rename":

        def full_disk(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", full_disk)
    else:
        new["extra"] = Unpicklable()
    with pytest.raises((OSError, RuntimeError)):
        io.save_checkpoint(new, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"] == 1
    assert list(path.parent.iterdir()) == [path]  # the temporary file went with the failure


def test_a_results_write_killed_midway_leaves_the_old_results(tmp_path):
    results, marker = tmp_path / "results.json", tmp_path / "writing"
    write_json(results, {"loss": "old"})
    child = textwrap.dedent(
        """
        import os, sys, time
        from pathlib import Path
        from marginface.io import write_json

        def stall(fd):  # the kill lands after the new bytes are written, before the rename
            Path(sys.argv[2]).write_text("now")
            time.sleep(600)

        os.fsync = stall
        write_json(sys.argv[1], {"loss": "new", "payload": "x" * 5_000_000})
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child, str(results), str(marker)])
    kill_when_written(marker, process, 60)
    assert json.loads(results.read_text()) == {"loss": "old"}
    left = [p.name for p in tmp_path.iterdir() if p.name not in ("results.json", "writing")]
    # the unfinished write is a hidden temporary file that no reader mistakes for results.json
    assert len(left) == 1 and left[0].startswith(".results.json.")


# -- resuming -----------------------------------------------------------------------------------
def test_resume_path_finds_last_cleans_up_and_keeps_the_curves(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    assert resume_path(None, tmp_path) is None and resume_path("", tmp_path) is None
    with caplog.at_level(logging.WARNING, logger="marginface.training.checkpoints"):
        assert resume_path("last", tmp_path) is None
    assert "training from scratch" in caplog.text and "hydra.run.dir" in caplog.text
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(b"ckpt")
    (folder / ".last.ckpt.k2j3.partial").write_bytes(b"half a checkpoint")
    (tmp_path / "csv").mkdir()
    for k in (1, 2):
        (tmp_path / "csv" / "metrics.csv").write_text(f"attempt {k}")
        assert resume_path("last", tmp_path) == str(folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt"]
    assert (tmp_path / "csv" / "metrics.before-resume-2.csv").read_text() == "attempt 2"
    assert resume_path(folder / "last.ckpt", tmp_path) == str(folder / "last.ckpt")
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        resume_path(tmp_path / "nope.ckpt", tmp_path)


def test_the_epoch_order_depends_on_seed_and_epoch_only():
    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochShuffleSampler(50, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert sorted(order(0, 0)) == list(range(50))
    assert order(0, 3) == order(0, 3)
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)


def test_the_draws_of_an_epoch_do_not_depend_on_what_ran_before():
    callback = SeedEachEpoch(seed=5)
    trainer = SimpleNamespace(current_epoch=3)
    callback.on_train_epoch_start(trainer, None)
    first = torch.rand(4), np.random.rand(2)  # noqa: NPY002 - the generator being re-seeded
    torch.rand(100)  # a run that drew more before this epoch
    callback.on_train_epoch_start(trainer, None)
    assert torch.equal(torch.rand(4), first[0]) and np.array_equal(np.random.rand(2), first[1])  # noqa: NPY002


def test_a_crashed_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, compose_run):
    straight = marginface.pipeline.train(compose_run(tmp_path / "straight", "loss=arcface"))
    run = tmp_path / "crashed"
    with monkeypatch.context() as patch:
        add_callback(patch, CrashAt(epoch=2, batch=1))
        with pytest.raises(RuntimeError, match="simulated crash"):
            marginface.pipeline.train(compose_run(run, "loss=arcface"))
    assert (run / "error.txt").read_text().startswith("RuntimeError: simulated crash")
    assert not (run / "results.json").exists()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    resumed = marginface.pipeline.train(compose_run(run, "loss=arcface", "ckpt_path=last"))
    assert resumed["open_set"] == straight["open_set"]
    assert resumed["closed_set"] == straight["closed_set"]
    assert not (run / "error.txt").exists()
    timing = resumed["timing"]  # the resumed run trained one epoch of 12 images itself
    assert timing["images_per_s"] * timing["train_s"] == pytest.approx(12)


def train_script(tmp_path: Path, name: str, *overrides: str) -> subprocess.Popen:
    """Start scripts/train.py on the tiny set (tests/ importable, for StallMidEpoch); log to <name>.log."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        *QUICK,
        "loss=arcface",
        *overrides,
    ]
    with open(tmp_path / f"{name}.log", "w") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def finished(process: subprocess.Popen, tmp_path: Path, name: str) -> None:
    assert process.wait(timeout=300) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]


@pytest.mark.slow
def test_a_sigkilled_run_resumes_to_the_uninterrupted_metrics(tmp_path):
    """scripts/train.py killed mid-epoch, then resumed with ckpt_path=last in the same run dir."""
    run, marker = tmp_path / "killed", tmp_path / "stalled"
    straight = train_script(tmp_path, "straight", f"hydra.run.dir={tmp_path / 'straight'}")
    killed = train_script(
        tmp_path,
        "killed",
        f"hydra.run.dir={run}",
        "+callbacks.stall._target_=test_reliability.StallMidEpoch",
        "+callbacks.stall.epoch=1",
        f"+callbacks.stall.marker={marker}",
    )
    kill_when_written(marker, killed, 300)
    assert not (run / "results.json").exists()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    finished(straight, tmp_path, "straight")
    finished(
        train_script(tmp_path, "resumed", f"hydra.run.dir={run}", "ckpt_path=last"),
        tmp_path,
        "resumed",
    )
    expected = json.loads((tmp_path / "straight" / "results.json").read_text())
    got = json.loads((run / "results.json").read_text())
    assert got["open_set"] == expected["open_set"] and got["closed_set"] == expected["closed_set"]


# -- non-finite values --------------------------------------------------------------------------
def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, monkeypatch, compose_run
):
    add_callback(monkeypatch, PoisonAt(epoch=1, batch=0))
    with pytest.raises(NonFiniteError) as err:
        marginface.pipeline.train(compose_run(tmp_path, "loss=arcface", "trainer.max_epochs=2"))
    message = str(err.value)
    assert "non-finite loss at global step 2 (epoch 1), loss nan, head ArcFaceHead(" in message
    assert "scale=32" in message and "last.ckpt (end of epoch 0), untouched" in message
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())
    assert (tmp_path / "error.txt").read_text().startswith("NonFiniteError: non-finite loss")
    assert not (tmp_path / "results.json").exists()


class TwoLayers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(2, 4)
        self.head = ArcFaceHead(4, 3, scale=16.0, margin=0.3)


def test_a_non_finite_gradient_is_caught_before_the_optimizer_step():
    module, guard = TwoLayers(), NonFiniteGuard()
    trainer = SimpleNamespace(
        global_step=7, current_epoch=3, callbacks=[], precision_plugin=SimpleNamespace()
    )
    for p in module.parameters():
        p.grad = torch.ones_like(p)
    guard.on_before_backward(trainer, module, torch.tensor(1.5))
    guard.on_before_optimizer_step(trainer, module, None)  # finite: nothing happens
    module.backbone.weight.grad[0, 0] = float("inf")
    with pytest.raises(NonFiniteError) as err:
        guard.on_before_optimizer_step(trainer, module, None)
    assert str(err.value).startswith(
        "non-finite gradient (in backbone.weight) at global step 7 (epoch 3), loss 1.5, "
        "head ArcFaceHead(embedding_dim=4, num_classes=3, scale=16"
    )
    assert "no checkpoint was written before it" in str(err.value)
    trainer.precision_plugin.scaler = object()  # fp16 loss scaling skips Inf steps by itself
    guard.on_before_optimizer_step(trainer, module, None)
    # a head without a divergence_hint adds nothing between the checkpoint and the general hints
    assert "(the first epoch did not finish). Try a lower optimizer.lr" in str(err.value)


@pytest.mark.parametrize("dynamic", [True, False])
def test_a_divergence_of_adacos_names_its_scale_and_the_fixed_scale_option(dynamic):
    module, guard = TwoLayers(), NonFiniteGuard()
    module.head = AdaCosHead(4, 3, dynamic=dynamic)
    module.head.adaptive_scale.fill_(4.5e12)
    trainer = SimpleNamespace(
        global_step=7, current_epoch=3, callbacks=[], precision_plugin=SimpleNamespace()
    )
    with pytest.raises(NonFiniteError) as err:
        guard.on_before_backward(trainer, module, torch.tensor(float("nan")))
    message = str(err.value)
    assert ("AdaCos's dynamic scale is now s=4.5e+12" in message) == dynamic
    assert ("try loss.dynamic=false" in message) == dynamic
    assert message.endswith("then resume with ckpt_path=last (docs/reliability.md)")
    assert "loss.scale" not in message  # AdaCos takes no scale argument: no advice to lower one


# -- failures on disk ---------------------------------------------------------------------------
def test_a_failure_is_written_to_the_run_dir_and_cleared_by_a_later_success(tmp_path):
    cfg = OmegaConf.create({"paths": {"output_dir": str(tmp_path)}})

    @records_failure
    def job(cfg, fail: bool) -> int:
        if fail:
            raise ValueError("the margin is too large\nsecond line")
        return 1

    with pytest.raises(ValueError, match="too large"):
        job(cfg, True)
    text = (tmp_path / "error.txt").read_text()
    assert text.splitlines()[0] == "ValueError: the margin is too large"
    assert "Traceback (most recent call last)" in text and "raise ValueError" in text
    assert job(cfg, False) == 1
    assert not (tmp_path / "error.txt").exists()


@pytest.mark.slow
def test_a_failing_job_of_a_multirun_is_recorded_and_the_others_finish(tmp_path):
    from marginface.report.runs import collect

    sweep = tmp_path / "sweep"
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", *QUICK]
    command += [
        "trainer.max_epochs=1",
        "loss=arcface",
        "loss.scale=-1,32",
        f"hydra.sweep.dir={sweep}",
    ]
    command += ["hydra.sweep.subdir=${hydra.job.num}"]  # the overrides would make too long a name
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0  # the sweep reports the failure once every job has run
    failed, finished = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert (failed / "error.txt").read_text().startswith("ConfigError: invalid config")
    assert "scale must be a finite number" in (failed / "error.txt").read_text()
    assert not (failed / "results.json").exists()
    assert (finished / "results.json").is_file() and not (finished / "error.txt").exists()
    assert [p.path for p in collect(sweep).problems] == [failed]  # the report lists it


# -- bad data -----------------------------------------------------------------------------------
def write_faces(root: Path, identities: int = 3, images: int = 3, size=(30, 24)) -> Path:
    rng = np.random.default_rng(0)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True, exist_ok=True)
        for k in range(images):
            Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(
                root / f"id{i}" / f"{k}.png"
            )
    return root


def test_an_image_of_another_size_is_counted_and_kept_left_out_or_refused(tmp_path):
    root = write_faces(tmp_path / "faces")
    Image.fromarray(np.zeros((50, 40), np.uint8)).save(root / "id1" / "odd.png")
    said = r"1 of 10 images in .* are unlike the rest \(30x24 grayscale\): 1 of another size"
    with pytest.warns(UserWarning, match=said + r".*kept, resized"):
        assert len(load_folder(root, size=(30, 24))) == 10
    with pytest.warns(UserWarning, match=said + r".*left out"):
        faces = load_folder(root, on_mismatch="skip")  # no size needed: the odd one is gone
    assert faces.images.shape == (9, 1, 30, 24)
    with pytest.raises(DataError, match=r"on_mismatch='raise'.*\n.*odd\.png: 50x40 grayscale"):
        load_folder(root, on_mismatch="raise")


def test_a_colour_image_in_a_grayscale_set_is_counted(tmp_path):
    root = write_faces(tmp_path / "faces")
    Image.fromarray(np.zeros((30, 24, 3), np.uint8)).save(root / "id2" / "rgb.png")
    with pytest.warns(UserWarning, match=r"1 of 10 images .*: 0 of another size, 1 not grayscale"):
        assert len(load_folder(root)) == 10
    with pytest.warns(UserWarning, match="left out"):
        assert len(load_folder(root, on_mismatch="skip")) == 9
    with pytest.raises(ValueError, match="on_mismatch must be one of"):
        load_folder(root, on_mismatch="ignore")


def test_an_empty_identity_folder_is_reported(tmp_path):
    root = write_faces(tmp_path / "faces")
    (root / "nobody").mkdir()
    with pytest.warns(UserWarning, match=r"1 identity folder\(s\) in .* hold no images .*: nobody"):
        assert load_folder(root).identities == ["id0", "id1", "id2"]


def test_an_identity_with_one_image_is_dropped_below_min_images(tmp_path, caplog):
    root = write_faces(tmp_path / "faces")
    write_faces(tmp_path / "single", identities=1, images=1)
    (tmp_path / "single" / "id0").rename(root / "solo")
    with caplog.at_level(logging.INFO, logger="marginface.data.folder"):
        assert load_folder(root, min_images=2).identities == ["id0", "id1", "id2"]
    assert "dropped 1 of 4 identities with fewer than 2 images" in caplog.text
    assert load_folder(root, min_images=1).num_identities == 4


def test_corrupt_and_truncated_images_are_counted_and_skipped_or_refused(tmp_path):
    root = write_faces(tmp_path / "faces")
    (root / "id0" / "text.jpg").write_bytes(b"not an image")
    (root / "id1" / "cut.png").write_bytes((root / "id1" / "0.png").read_bytes()[:200])
    with pytest.warns(UserWarning, match=r"skipped 2 unreadable image\(s\)"):
        assert len(load_folder(root)) == 9
    with pytest.raises(DataError, match="cannot read image"):
        load_folder(root, on_error="raise")


# -- property tests: heads ----------------------------------------------------------------------
HEADS = {
    "softmax": lambda d, c, s, m: SoftmaxHead(d, c, bias=True),
    "amsoftmax": lambda d, c, s, m: AMSoftmaxHead(d, c, scale=s, margin=m),
    "arcface": lambda d, c, s, m: ArcFaceHead(d, c, scale=s, margin=m),
    "combined": lambda d, c, s, m: CombinedMarginHead(d, c, scale=s, m1=1 + m, m2=m, m3=m / 2),
    "lsoftmax": lambda d, c, s, m: LSoftmaxHead(
        d, c, margin=1 + round(3 * m), base=s, gamma=0.0, lambda_min=0.0
    ),
    "sphereface": lambda d, c, s, m: SphereFaceHead(
        d, c, margin=1 + round(3 * m), base=s, gamma=0.0, lambda_min=0.0
    ),
}


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(sorted(HEADS)),
    scale=st.floats(0.01, 128.0),
    margin=st.floats(0.0, 1.5),
    log_norm=st.floats(-8.0, 4.0),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 6),
    zero_row=st.booleans(),
)
def test_heads_give_finite_logits_and_gradients(
    name, scale, margin, log_norm, seed, batch, zero_row
):
    gen = torch.Generator().manual_seed(seed)
    head = HEADS[name](8, 5, scale, margin)
    x = torch.randn(batch, 8, generator=gen) * 10.0**log_norm
    if zero_row:
        x[0] = 0.0
    x.requires_grad_(True)
    labels = torch.randint(0, 5, (batch,), generator=gen)
    logits = head(x, labels)
    assert torch.isfinite(logits).all() and torch.isfinite(head(x)).all()
    F.cross_entropy(logits, labels).backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters())


# -- property tests: metrics --------------------------------------------------------------------
def scores_and_pairs(seed: int, n: int, levels: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    issame = rng.random(n) < 0.4
    issame[:2] = [True, False]
    scores = rng.random(n) if levels is None else rng.integers(0, levels, n) / levels
    return scores, issame


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(4, 120), levels=st.sampled_from([None, 2, 5]))
def test_verification_ignores_pair_order_and_monotone_rescaling_and_stays_in_bounds(
    seed, n, levels
):
    scores, issame = scores_and_pairs(seed, n, levels)
    folds = np.arange(n) * 10 // n
    base = verification_metrics(scores, issame, folds=folds)
    order = np.random.default_rng(seed + 1).permutation(n)
    assert verification_metrics(scores[order], issame[order], folds=folds[order]) == base
    assert verification_metrics(4.0 * scores, issame, folds=folds) == base
    # any increasing map keeps every figure but the k-fold accuracy, whose thresholds sit midway
    # between two scores: a midpoint is preserved by affine maps only
    rescaled = verification_metrics(np.exp(3.0 * scores) - 7.0, issame, folds=folds)
    for key in ("auc", "eer", "tar@far=1e-1", "tar@far=1e-2"):
        assert rescaled[key] == pytest.approx(base[key]), key
    for key, value in base.items():
        assert value is None or 0.0 <= value <= 1.0, key
    assert base["accuracy_10fold_std"] <= 0.5


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), identities=st.integers(2, 8), per_identity=st.integers(2, 5))
def test_retrieval_ignores_image_order_and_identification_stays_in_bounds(
    seed, identities, per_identity
):
    rng = np.random.default_rng(seed)
    n = identities * per_identity
    labels = np.arange(n) % identities
    embeddings = rng.standard_normal((n, 4)).astype(np.float32)
    base = retrieval_metrics(embeddings, labels, FlatSearch(num_threads=1))
    order = rng.permutation(n)
    again = retrieval_metrics(embeddings[order], labels[order], FlatSearch(num_threads=1))
    assert again == pytest.approx(base)
    assert all(0.0 <= v <= 1.0 for v in base.values())
    found = identification_metrics(embeddings, labels, FlatSearch(num_threads=1), seed=seed)
    assert 0.0 <= found["rank1"] <= found["rank5"] <= 1.0
    for key in ("dir@fpir=1e-1", "dir@fpir=1e-2"):
        assert found[key] is None or 0.0 <= found[key] <= found["rank1"]
