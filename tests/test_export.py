"""Export of the embedding network: ONNX (onnxruntime) and TorchScript reproduce PyTorch's embeddings."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from helpers import TINY, compose_config
from marginface.data.orl import load_orl
from marginface.data.transforms import resize_uint8, to_float
from marginface.inference.embed import extract_embeddings
from marginface.inference.embedder import Embedder
from marginface.inference.export import (
    ParityError,
    check_parity,
    default_out,
    run_export,
    run_exported,
)
from marginface.pipeline import train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of the tests' tiny model (1 epoch on synthetic 28x24 faces)."""
    run_dir = tmp_path_factory.mktemp("export_run")
    cfg = compose_config("train", [*TINY, "loss=arcface", "eval.artifacts=false"], run_dir)
    train(cfg)
    GlobalHydra.instance().clear()
    return run_dir / "checkpoints" / "last.ckpt"


def orl_batch(count: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 faces prepared as the DataModule prepares ORL (not through the export's own loader)."""
    picks = load_orl().images[torch.arange(count) * 10 + 4]  # image 5 of s1, s2, ...
    return resize_uint8(picks, size)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_matches_pytorch(checkpoint, tmp_path, fmt):
    out = tmp_path / f"model.{fmt}"
    meta = run_export(str(checkpoint), fmt, out=str(out))
    assert out.is_file() and Path(f"{out}.json").is_file()
    assert meta["parity"]["max_abs_diff"] <= 1e-4
    embedder = Embedder.from_checkpoint(checkpoint)
    assert meta["model_hash"] == embedder.model_hash
    # independent check on other faces and another batch size than the export's
    images = orl_batch(5, embedder.image_size)
    got = run_exported(out, fmt, to_float(images))
    expected = extract_embeddings(embedder.backbone, images, flip=True)
    assert got.shape == (5, 16)  # the embedding, not the 4 logits of the head
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    if fmt == "onnx":
        import onnx

        graph = onnx.load(str(out)).graph
        assert [i.name for i in graph.input] == ["images"]
        assert (4, 16) not in {tuple(t.dims) for t in graph.initializer}  # the head's weight matrix


def test_parity_check_rejects_a_mismatch():
    reference = np.zeros((3, 4), np.float32)
    assert check_parity(reference, reference + 5e-5, 1e-4, "x") == pytest.approx(5e-5)
    with pytest.raises(ParityError, match="differs from PyTorch by up to 0.001"):
        check_parity(reference, reference + 1e-3, 1e-4, "x")
    with pytest.raises(ParityError):
        check_parity(reference, reference * np.nan, 1e-4, "x")


def test_default_out_sits_beside_the_checkpoint_and_format_is_checked(checkpoint):
    assert default_out("runs/a/checkpoints/last.ckpt", "onnx") == Path(
        "runs/a/checkpoints/last.onnx"
    )
    assert default_out("last.ckpt", "torchscript") == Path("last.torchscript.pt")
    with pytest.raises(ValueError, match="format must be one of"):
        run_export(str(checkpoint), "tflite")


@pytest.mark.slow
def test_export_script_writes_beside_the_checkpoint(checkpoint, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    command = [
        sys.executable,
        "scripts/export.py",
        f"ckpt_path={checkpoint}",
        "format=onnx",
        f"hydra.run.dir={tmp_path}",
    ]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parity: max |embedding difference|" in done.stdout
    assert checkpoint.with_suffix(".onnx").is_file()
