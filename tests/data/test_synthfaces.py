"""make_synthfaces: deterministic bytes, batching-free, nested identities, knobs, errors, config."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from helpers import compose_config
from marginface.data import DataError, make_synthfaces
from marginface.report.runs import describe

SMALL = dict(image_size=(28, 24))
KNOBS = ["yaw", "pitch", "roll", "light", "expression", "glasses", "occlusion", "jitter", "blur"]
KNOBS += ["noise", "background"]
OFF = {k: 0.0 for k in KNOBS}


def test_same_seed_same_bytes_other_seed_other_faces():
    a = make_synthfaces(4, 3, seed=7, **SMALL)
    b = make_synthfaces(4, 3, seed=7, **SMALL)
    c = make_synthfaces(4, 3, seed=8, **SMALL)
    assert torch.equal(a.images, b.images)
    assert (a.images.float() - c.images.float()).abs().mean() > 5


@pytest.mark.parametrize("channels", [1, 3])
def test_chunking_changes_no_byte(channels):
    whole = make_synthfaces(5, 4, channels=channels, chunk=256, **SMALL)
    pieces = make_synthfaces(5, 4, channels=channels, chunk=3, **SMALL)
    assert torch.equal(whole.images, pieces.images)


def test_shapes_dtype_labels_names():
    faces = make_synthfaces(3, 4, image_size=(40, 32), channels=3)
    assert faces.images.shape == (12, 3, 40, 32) and faces.images.dtype == torch.uint8
    assert faces.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert faces.identities == ["face00000", "face00001", "face00002"]
    # colour: the skin is tinted (red above blue), gray images have one channel
    image = faces.images.float()
    assert image[:, 0].mean() > image[:, 2].mean()
    assert make_synthfaces(2, 1, **SMALL).images.shape == (2, 1, 28, 24)


def test_identities_are_nested_whatever_the_set_size():
    small = make_synthfaces(3, 2, **SMALL)
    large = make_synthfaces(7, 5, **SMALL)
    # identity k's first two images are the same in both sets
    first_two = large.images.view(7, 5, 1, 28, 24)[:3, :2].reshape(6, 1, 28, 24)
    assert torch.equal(small.images, first_two)


def test_knobs_at_zero_give_identical_images_of_each_identity():
    faces = make_synthfaces(3, 4, **SMALL, **OFF)
    per_identity = faces.images.view(3, 4, -1).float()
    assert torch.equal(per_identity, per_identity[:, :1].expand_as(per_identity))
    assert (per_identity[0, 0] - per_identity[1, 0]).abs().mean() > 1
    # the corner is plain background: level 0.45 of the [0, 1] range, nothing else added
    assert faces.images[0, 0, 0, 0] == round(0.45 * 255)


@pytest.mark.parametrize("knob", KNOBS)
def test_each_knob_alone_varies_the_images(knob):
    value = {"glasses": 0.5, "occlusion": 0.5, "noise": 0.05}.get(knob, 1.0)
    if knob in ("yaw", "pitch", "roll"):
        value = 30.0
    faces = make_synthfaces(2, 6, **SMALL, **{**OFF, knob: value})
    per_identity = faces.images.view(2, 6, -1)
    differs = [(per_identity[0, 0] != per_identity[0, j]).any().item() for j in range(1, 6)]
    assert any(differs), f"knob {knob}={value} left every image of identity 0 the same"


def test_look_alikes_are_closer_than_strangers():
    faces = make_synthfaces(16, 1, **SMALL, **OFF, family_size=4, family_spread=0.3)
    x = faces.images.view(16, -1).numpy().astype(np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    family = np.arange(16)[:, None] // 4 == np.arange(16)[None] // 4
    off_diagonal = ~np.eye(16, dtype=bool)
    assert d[family & off_diagonal].mean() < 0.7 * d[~family].mean()


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        (dict(num_identities=1), "num_identities >= 2"),
        (dict(images_per_identity=0), "images_per_identity >= 1"),
        (dict(image_size=(4, 4)), "image_size"),
        (dict(channels=2), "channels must be 1 (gray) or 3 (RGB), got 2"),
        (dict(family_size=0), "family_size"),
        (dict(yaw=-1.0), "knob yaw must be >= 0, got -1.0"),
        (dict(noise=float("nan")), "knob noise"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs, says):
    args = dict(num_identities=3, images_per_identity=2, image_size=(28, 24)) | kwargs
    with pytest.raises(DataError, match=says.replace("(", r"\(").replace(")", r"\)")):
        make_synthfaces(**args)


@pytest.mark.parametrize("zoom", [None, 1.45])
def test_the_config_builds_a_datamodule(tmp_path: Path, zoom):
    overrides = ["data=synthfaces", "data.dataset.num_identities=8"]
    overrides += [f"data.dataset.zoom={'null' if zoom is None else zoom}"]
    overrides += ["data.dataset.images_per_identity=3", "data.image_size=[28,24]"]
    overrides += ["data.num_folds=2", "data.val_per_identity=1", "data.batch_size=4"]
    cfg = compose_config("train", overrides, tmp_path / "run")
    GlobalHydra.instance().clear()
    module = instantiate(cfg.data)
    module.setup()
    images, labels = next(iter(module.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (4, 1, 28, 24)
    assert module.num_classes == 4 and labels.max() < 4
    expected = make_synthfaces(8, 3, image_size=(28, 24), zoom=zoom or 1.0)
    assert torch.equal(module.data.images, expected.images)


def test_report_titles_say_synthetic():
    protocol = {
        "data": {
            "dataset": {
                "_target_": "marginface.data.synthfaces.make_synthfaces",
                "num_identities": 1500,
            },
            "num_folds": 3,
            "image_size": [32, 32],
        },
        "eval": {},
    }
    title, synthetic = describe(protocol)
    assert synthetic and title.startswith("SYNTHETIC faces")
    assert "1500 identities in 3 identity folds (~500 open-set each)" in title


def test_the_study_recipe_composes_and_builds(tmp_path: Path):
    small = ["data.dataset.num_identities=9", "data.dataset.images_per_identity=3"]
    cfg = compose_config("train", ["experiment=synthfaces_recipe", *small], tmp_path / "run")
    GlobalHydra.instance().clear()
    assert cfg.data.dataset._target_.endswith("make_synthfaces") and cfg.threads == 1
    assert list(cfg.data.image_size) == [32, 32] and cfg.data.num_folds == 3
    module = instantiate(cfg.data)
    module.setup()
    assert module.num_classes == 6 and module.data.images.shape[1:] == (1, 32, 32)


def test_identities_painted_in_different_blocks_stay_the_same():
    # identities are painted 256 at a time: the second block holds 2 identities in one set, 44 in the other
    few = make_synthfaces(258, 1, **SMALL)
    many = make_synthfaces(300, 1, **SMALL)
    assert torch.equal(few.images, many.images[:258])


def _widest_row(images: torch.Tensor) -> int:
    """Pixels in the widest run of non-background columns of one gray image (background 0.45 * 255)."""
    foreground = images[0, 0] != round(0.45 * 255)
    return int(foreground.sum(1).max())


def test_zoom_scales_the_face_and_none_is_the_default_framing():
    default = make_synthfaces(2, 1, image_size=(56, 48), **OFF)
    assert torch.equal(
        make_synthfaces(2, 1, image_size=(56, 48), **OFF, zoom=None).images, default.images
    )
    assert torch.equal(
        make_synthfaces(2, 1, image_size=(56, 48), **OFF, zoom=1.0).images, default.images
    )
    # the head (hair volume included) is the widest thing in the frame: its width grows with zoom
    zoomed = make_synthfaces(2, 1, image_size=(56, 48), **OFF, zoom=1.25)
    for k in range(2):
        plain, big = _widest_row(default.images[k : k + 1]), _widest_row(zoomed.images[k : k + 1])
        assert big < 48 and abs(big - 1.25 * plain) <= 2, (plain, big)


@pytest.mark.parametrize("zoom", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_zoom_says_what_is_allowed(zoom):
    with pytest.raises(
        DataError, match=r"zoom must be a finite number > 0 \(1 = the default framing\)"
    ):
        make_synthfaces(3, 2, image_size=(28, 24), zoom=zoom)
