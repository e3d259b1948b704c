"""init_from (fine-tuning), eval.distractors end to end, and their errors before training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from helpers import TINY, compose_config
from marginface.evaluation.evaluate import evaluate
from marginface.pipeline import train
from marginface.training.checkpoints import init_backbone
from marginface.training.factory import build
from marginface.training.schemas import ConfigError, validate_config


@pytest.fixture
def trained(tiny_train_cfg):
    """A tiny softmax run with 3 distractors: (its config, its results, its last.ckpt)."""
    cfg = tiny_train_cfg("loss=softmax", "eval.distractors=3", "eval.artifacts=false")
    results = train(cfg)
    return cfg, results, Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"


def test_init_from_loads_the_backbone_bit_equal_and_a_new_head(trained, tiny_train_cfg):
    _, _, ckpt = trained
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    cfg = tiny_train_cfg("loss=arcface", f"init_from={ckpt}", "data.num_folds=4")
    validate_config(cfg)
    _, module = build(cfg)
    for key, value in module.backbone.state_dict().items():
        assert torch.equal(value, saved[f"backbone.{key}"]), key
    assert module.head.weight.shape[0] == 6  # 8 identities, 4 folds: a head of its own size


def test_init_from_rejects_another_architecture(trained, tiny_train_cfg):
    _, _, ckpt = trained
    other = instantiate(tiny_train_cfg("backbone.embedding_dim=8").backbone)
    with pytest.raises(
        ValueError, match=r"init_from=.*does not match.*\(16, .*\) in the checkpoint"
    ):
        init_backbone(other, ckpt)
    cfg = tiny_train_cfg("init_from=/no/such.ckpt")
    with pytest.raises(ConfigError, match="init_from=/no/such.ckpt: no such checkpoint"):
        validate_config(cfg)


def test_distractors_are_scored_in_training_and_from_the_checkpoint(trained, tmp_path):
    cfg, results, ckpt = trained
    block = results["open_set"]["identification_distractors"]
    assert block["distractors"] == 3
    assert set(block) == {"distractors", "rank1", "rank5", "dir@fpir=1e-1", "dir@fpir=1e-2"}
    # a bigger gallery can only lose rank-1 hits
    assert block["rank1"] <= results["open_set"]["identification"]["rank1"]
    data = [o for o in TINY if o.startswith("data")]
    again = evaluate(
        compose_config(
            "evaluate",
            [*data, f"ckpt_path={ckpt}", "eval.distractors=3", "eval.artifacts=false"],
            tmp_path / "eval",
        )
    )
    assert again["open_set"]["identification_distractors"] == pytest.approx(block)


def test_distractors_on_a_pair_list_protocol_are_refused(tmp_path):
    cfg = compose_config(
        "evaluate",
        ["data=bin", "data.verification.path=/x.bin", "ckpt_path=/x.ckpt", "eval.distractors=10"],
        tmp_path,
    )
    with pytest.raises(ValueError, match="eval.distractors=10 needs an identification gallery"):
        evaluate(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.train_identities=1", "data.train_identities=1: expected null"),
        ("eval.distractors=-2", "eval.distractors=-2: expected an integer"),
        ("eval.distractor_root=/no/such/dir", "eval.distractor_root=/no/such/dir: no such folder"),
        ("eval.score_norm=tnorm", "eval.score_norm='tnorm': expected null or 'snorm'"),
        ("eval.score_norm_top_k=0", "eval.score_norm_top_k=0: expected null"),
    ],
)
def test_bad_evidence_keys_fail_validation(tiny_train_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_train_cfg(override))


def test_too_few_distractor_folders_fail_validation(tiny_train_cfg, tmp_path):
    for k in range(2):
        (tmp_path / "faces" / f"p{k}").mkdir(parents=True)
    cfg = tiny_train_cfg("eval.distractors=3", f"eval.distractor_root={tmp_path / 'faces'}")
    with pytest.raises(ConfigError, match="holds 2 sub-folders; set eval.distractors <= 2"):
        validate_config(cfg)


def test_distractors_from_a_set_that_generates_none_fail_validation(tmp_path):
    cfg = compose_config("train", ["data=orl", "eval.distractors=5"], tmp_path)
    with pytest.raises(ConfigError, match=r"load_orl\) cannot generate new identities"):
        validate_config(cfg)


def test_freeze_keeps_the_named_parts_and_their_statistics_and_trains_the_rest(
    trained, tiny_train_cfg
):
    _, _, ckpt = trained
    cfg = tiny_train_cfg(
        "loss=arcface", f"init_from={ckpt}", "freeze=[stem,down]", "eval.artifacts=false"
    )
    validate_config(cfg)
    _, module = build(cfg)
    before = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"] if isinstance(configured, dict) else configured
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = [p for n, p in module.backbone.named_parameters() if n.startswith(("stem", "down"))]
    assert frozen and not any(id(p) in optimised for p in frozen)
    module.train()
    assert not module.backbone.stem.training and module.backbone.blocks.training
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        images = torch.randn(8, 1, 28, 24, generator=generator) * 3 + 1
        labels = torch.arange(8) % module.head.weight.shape[0]
        optimizer.zero_grad()
        module.training_step((images, labels), 0).backward()
        optimizer.step()
    after = module.backbone.state_dict()
    for key, value in after.items():
        if key.startswith(("stem", "down")):  # weights and BN running statistics alike
            assert torch.equal(value, before[key]), key
    moved = [k for k in after if k.startswith("blocks") and not torch.equal(after[k], before[k])]
    assert any(k.endswith("running_mean") for k in moved) and any(
        k.endswith("weight") for k in moved
    )


def test_freeze_refuses_unknown_parts_and_random_weights(trained, tiny_train_cfg):
    _, _, ckpt = trained
    with pytest.raises(ValueError, match=r"freeze='trunk': SmallFaceNet has no such.*stem, down"):
        build(tiny_train_cfg(f"init_from={ckpt}", "freeze=[trunk]"))
    with pytest.raises(ConfigError, match=r"freeze=\['stem'\]: without init_from"):
        validate_config(tiny_train_cfg("freeze=[stem]"))


def test_a_frozen_fine_tune_runs_end_to_end_and_keeps_the_pretrained_parts(trained, tiny_train_cfg):
    _, _, ckpt = trained
    cfg = tiny_train_cfg(
        f"init_from={ckpt}",
        "freeze=[stem,down,blocks]",
        "trainer.max_epochs=3",
        "eval.artifacts=false",
    )
    # read first: the fine-tuning run writes its own last.ckpt into the same tmp run folder
    pretrained = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    results = train(cfg)
    assert 0.0 <= results["open_set"]["verification"]["eer"] <= 1.0
    tuned = torch.load(
        Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt",
        map_location="cpu",
        weights_only=False,
    )["state_dict"]
    for key, value in tuned.items():
        if key.startswith(("backbone.stem", "backbone.down", "backbone.blocks")):
            assert torch.equal(value, pretrained[key]), key
    assert not torch.equal(
        tuned["backbone.output.fc.weight"], pretrained["backbone.output.fc.weight"]
    )
