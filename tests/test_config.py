"""Every option of every config group composes and instantiates (a new option is tested once it exists)."""

from pathlib import Path

import pytest
from hydra.utils import instantiate

from helpers import compose_config
from marginface.data import FaceDataModule

CONF = Path(__file__).resolve().parents[1] / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_builds_a_head_with_the_training_classes(tiny_train_cfg, loss):
    import torch

    from marginface.training.factory import build

    cfg = tiny_train_cfg(f"loss={loss}")
    dm, module = build(cfg)
    dim = cfg.backbone.embedding_dim
    # one weight row per class, or K per class (sub-center ArcFace); logits one per class
    rows, columns = module.head.weight.shape
    assert columns == dim and rows % dm.num_classes == 0
    assert module.head(torch.randn(2, dim)).shape == (2, dm.num_classes)


@pytest.mark.parametrize("backbone", options("backbone"))
def test_every_backbone_composes(tiny_train_cfg, backbone):
    cfg = tiny_train_cfg(f"backbone={backbone}")
    if backbone == "small":
        assert instantiate(cfg.backbone).embedding_dim == cfg.backbone.embedding_dim
    else:  # GPU-sized: compose only, with the sizes interpolated from the data group
        assert cfg.backbone.input_size == cfg.data.image_size
        assert cfg.backbone.in_channels == cfg.data.channels


@pytest.mark.parametrize("group", ["optimizer", "scheduler", "trainer", "search"])
def test_every_option_of_the_small_groups_instantiates(tiny_train_cfg, group):
    import torch

    for option in options(group):
        cfg = tiny_train_cfg(f"{group}={option}")
        if (
            group == "trainer"
            and cfg.trainer.accelerator == "gpu"
            and not torch.cuda.is_available()
        ):
            continue  # GPU trainers compose above; they instantiate only where a GPU is
        obj = instantiate(cfg[group])
        if group == "optimizer":
            obj([torch.nn.Parameter(torch.zeros(1))])
        elif group == "scheduler":
            obj(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), total_steps=10)


@pytest.mark.parametrize("data", ["orl", "synthetic"])
def test_embedded_data_sets_set_up(tmp_path, data):
    cfg = compose_config("train", [f"data={data}"], tmp_path)
    dm = instantiate(cfg.data)
    assert isinstance(dm, FaceDataModule)
    dm.setup()
    assert dm.num_classes >= 2


def test_fold_and_seed_reach_the_data_module(tiny_train_cfg):
    cfg = tiny_train_cfg("fold=1", "seed=7")
    assert cfg.data.fold == 1 and cfg.data.seed == 7


@pytest.mark.parametrize("group", ["loss", "data", "backbone"])
def test_unknown_choice_lists_the_options(group):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException

    GlobalHydra.instance().clear()
    with (
        initialize_config_dir(config_dir=str(CONF), version_base="1.3"),
        pytest.raises(MissingConfigException) as err,
    ):
        compose(config_name="train", overrides=[f"{group}=nosuch"])
    GlobalHydra.instance().clear()
    for option in options(group):
        assert option in str(err.value)
