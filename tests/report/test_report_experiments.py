"""The ablation experiments compose, sweep real heads (no alias twice), and stay CPU-friendly."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

CONF = Path(__file__).resolve().parents[2] / "conf"
MODERN_HEADS = {
    "subcenter_arcface",
    "curricularface",
    "magface",
    "adaface",
    "elasticface",
    "elasticface_cos",
    "adacos",
}
EVERY_HEAD = {
    "softmax",
    "lsoftmax",
    "sphereface",
    "amsoftmax",
    "arcface",
    "combined",
} | MODERN_HEADS


def sweep(name: str):
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=[f"experiment={name}"], return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("name", "data", "heads", "runs"),
    [
        ("ablation_orl", "load_orl", EVERY_HEAD, 13 * 4 * 3),
        ("ablation_quick", "load_orl", {"softmax", "amsoftmax", "arcface"}, 3 * 2 * 2),
        (
            "ablation_synthetic",
            "make_synthetic",
            {"softmax", "sphereface", "amsoftmax", "arcface"} | MODERN_HEADS,
            11 * 3 * 2,
        ),
    ],
)
def test_ablation_sweeps(name, data, heads, runs):
    cfg = sweep(name)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert set(params["loss"]) == heads and len(params["loss"]) == len(heads)
    assert all((CONF / "loss" / f"{h}.yaml").is_file() for h in heads)
    # amsoftmax under another name: it would count the same head twice
    assert "cosface" not in params["loss"]
    assert list(params) == ["fold", "seed", "loss"]  # loss varies fastest
    total = len(params["fold"]) * len(params["seed"]) * len(params["loss"])
    assert total == runs
    assert all(int(f) < cfg.data.num_folds for f in params["fold"])
    assert cfg.data.dataset._target_.endswith(data)
    assert cfg.threads == 1
    assert str(cfg.hydra.sweep.dir).startswith(f"multirun/{name}/")


def test_synthetic_study_has_many_identities():
    cfg = sweep("ablation_synthetic")
    ids, folds = cfg.data.dataset.num_identities, cfg.data.num_folds
    assert ids - ids // folds == 1000 and ids // folds == 200


@pytest.mark.parametrize(
    ("name", "ns", "heads", "seeds", "open_ids"),
    [
        (
            "identity_scaling",
            [30, 100, 300, 1000, 3000],
            ["softmax", "amsoftmax", "arcface", "adaface", "curricularface"],
            3,
            500,
        ),
        ("identity_scaling_quick", [30, 300, 1000], ["softmax", "amsoftmax", "arcface"], 2, 200),
    ],
)
def test_identity_scaling_sweeps(name, ns, heads, seeds, open_ids):
    cfg = sweep(name)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert [int(n) for n in params["data.train_identities"]] == ns
    assert params["loss"] == heads and len(params["seed"]) == seeds
    assert list(params)[-1] == "loss"  # loss varies fastest
    ids, folds = cfg.data.dataset.num_identities, cfg.data.num_folds
    assert ids // folds == open_ids and ids - ids // folds >= max(
        ns
    )  # every N fits beside the open set
    assert cfg.fold == 0 and cfg.threads == 1 and cfg.eval.distractors > 0
    assert str(cfg.hydra.sweep.dir).startswith(f"multirun/{name}/")
    # the same optimizer steps at every N: epochs do not cut the small N short
    assert cfg.trainer.max_epochs == -1 and cfg.trainer.max_steps > 0


def test_the_second_identity_scaling_config_adds_every_other_modern_head_on_one_protocol():
    main, rest = sweep("identity_scaling"), sweep("identity_scaling_all_heads")
    heads = {
        name: str(cfg.hydra.sweeper.params.loss).split(",")
        for name, cfg in (("main", main), ("rest", rest))
    }
    assert not set(heads["main"]) & set(heads["rest"])  # no head trained twice
    assert set(heads["main"]) | set(heads["rest"]) >= MODERN_HEADS
    assert "cosface" not in heads["rest"]
    for key in ("seed", "data.train_identities"):
        assert rest.hydra.sweeper.params[key] == main.hydra.sweeper.params[key]
    # the same protocol, so that the report pairs these runs with the main study's softmax runs
    for key in ("data", "backbone", "trainer", "eval", "optimizer", "scheduler", "fold", "threads"):
        assert rest[key] == main[key], key
    assert str(rest.hydra.sweep.dir).startswith("multirun/identity_scaling/")


def test_finetune_experiments_share_the_orl_input():
    pre, fine = sweep("pretrain_synthfaces"), sweep("finetune_orl")
    assert list(pre.data.image_size) == list(fine.data.image_size) == [56, 48]
    assert pre.data.channels == fine.data.channels == 1
    assert pre.backbone == fine.backbone  # init_from needs the same architecture
    assert (
        pre.data.dataset.num_identities - pre.data.dataset.num_identities // pre.data.num_folds
        >= 3000
    )
    assert fine.data.dataset._target_.endswith("load_orl")


def test_the_batch_128_identity_scaling_config_changes_only_the_batch_and_the_width():
    main, wide = sweep("identity_scaling"), sweep("identity_scaling_b128")
    capacity = sweep("identity_scaling_capacity")
    assert main.data.batch_size == 32 and wide.data.batch_size == 128
    assert wide.backbone == capacity.backbone and wide.backbone != main.backbone
    # the same steps, protocol and heads: the report reads its runs as the study's
    assert wide.trainer.max_steps == main.trainer.max_steps
    assert wide.hydra.sweeper.params == main.hydra.sweeper.params
    for key in ("eval", "optimizer", "scheduler", "fold", "threads", "loss"):
        assert wide[key] == main[key], key
    for key in set(main.data) - {"batch_size"}:
        assert wide.data[key] == main.data[key], key
    assert str(wide.hydra.sweep.dir).startswith("multirun/identity_scaling_b128/")
