"""conf/data/{folder,lfw,rec,bin}.yaml build working data from the fixture sets."""

from pathlib import Path

import pytest
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from helpers import compose_config

SMALL = ["data.image_size=[28,24]", "data.num_folds=2", "data.val_per_identity=1"]
SMALL += ["data.batch_size=4", "data.num_workers=0"]


@pytest.fixture
def compose(tmp_path: Path):
    yield lambda name, overrides: compose_config(name, overrides, tmp_path / "run")
    GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("data", "extra"),
    [
        ("folder", []),
        ("folder", ["data.dataset._target_=marginface.data.folder.FolderDataset"]),
        ("lfw", ["data.dataset.min_images=2", "data.dataset.crop=null"]),
        ("rec", []),
    ],
)
def test_training_data_configs_set_up(compose, request, data, extra):
    path = {
        "folder": lambda: f"data.dataset.root={request.getfixturevalue('face_folder')}",
        "lfw": lambda: f"data.dataset.root={request.getfixturevalue('lfw_root').root}",
        "rec": lambda: f"data.dataset.path_rec={request.getfixturevalue('rec_fixture').rec}",
    }[data]()
    cfg = compose("train", [f"data={data}", path, *SMALL, *extra])
    module = instantiate(cfg.data)
    module.setup()
    images, labels = next(iter(module.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 28, 24)
    assert module.num_classes in (2, 3) and labels.max() < module.num_classes


def test_bin_config_builds_the_verification_set(compose, bin_fixture):
    overrides = ["data=bin", f"data.verification.path={bin_fixture.path}", "ckpt_path=x"]
    cfg = compose("evaluate", [*overrides, "data.image_size=[28,24]"])
    pairs = instantiate(cfg.data.verification)
    assert pairs.images.shape == (24, 3, 28, 24) and len(pairs.issame) == 12
