"""End to end: train(cfg) on tiny data writes results.json in the schema of marginface.results; evaluate(cfg) re-reads it."""

import json
import math
from pathlib import Path

import pytest

from helpers import TINY, compose_config
from marginface.evaluation.evaluate import evaluate
from marginface.pipeline import train
from marginface.results import OPEN_SET_KEYS, TOP_LEVEL_KEYS, schema_problems


def check_schema(results: dict) -> None:
    assert schema_problems(results) == []
    assert list(results) == list(TOP_LEVEL_KEYS)
    for block, keys in OPEN_SET_KEYS.items():
        assert results["open_set"][block] is None or list(results["open_set"][block]) == list(keys)
    assert 0.0 <= results["open_set"]["verification"]["auc"] <= 1.0


def test_train_on_synthetic_writes_results_and_checkpoints(tiny_train_cfg):
    cfg = tiny_train_cfg("loss=softmax", "seed=3", "fold=1")
    results = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    on_disk = json.loads((run_dir / "results.json").read_text())
    check_schema(on_disk)
    assert on_disk["loss"] == "softmax" and on_disk["seed"] == 3 and on_disk["fold"] == 1
    head = results["head"]
    # 4 training identities (8 ids, 2 folds) x 16-d embeddings, float32, no bias
    assert head == {"parameters": 4 * 16, "bytes": 4 * 16 * 4}
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    for name in ("scores.npz", "roc.csv", "roc.png"):
        assert (run_dir / name).is_file(), name
    assert on_disk["timing"]["train_s"] > 0
    metrics = (run_dir / "csv" / "metrics.csv").read_text().splitlines()[0]
    for key in ("train/loss", "train/accuracy", "val/accuracy", "open_set/eer"):
        assert key in metrics


@pytest.mark.parametrize("wccn", [False, True])
def test_evaluate_script_reproduces_the_figures_from_the_checkpoint(tiny_train_cfg, tmp_path, wccn):
    cfg = tiny_train_cfg("loss=arcface", f"eval.wccn={wccn}")
    trained = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    data_overrides = [o for o in TINY if o.startswith("data")]
    ecfg = compose_config(
        "evaluate", [*data_overrides, f"ckpt_path={ckpt}", f"eval.wccn={wccn}"], tmp_path / "eval"
    )
    again = evaluate(ecfg)
    assert again["loss"] == "arcface"
    for key in ("auc", "eer"):
        assert math.isclose(
            again["open_set"]["verification"][key],
            trained["open_set"]["verification"][key],
            rel_tol=1e-5,
            abs_tol=1e-6,
        )


def test_eigenfaces_baseline_runs_the_same_protocol(tmp_path):
    data_overrides = [o for o in TINY if o.startswith("data")]
    cfg = compose_config(
        "evaluate", [*data_overrides, "model=eigenfaces", "model.n_components=5"], tmp_path
    )
    results = evaluate(cfg)
    check_schema(results)
    assert results["loss"] == "eigenfaces" and results["head"] is None


def test_missing_checkpoint_names_the_path(tmp_path):
    cfg = compose_config(
        "evaluate",
        [*[o for o in TINY if o.startswith("data")], "ckpt_path=/no/such.ckpt"],
        tmp_path,
    )
    with pytest.raises(FileNotFoundError, match="/no/such.ckpt"):
        evaluate(cfg)


def test_quality_block_is_the_error_versus_reject_of_the_saved_scores_and_norms(tiny_train_cfg):
    """open_set.quality: error_versus_reject by hand on scores.npz (pairs) and the norms of the
    flip-summed embeddings, recomputed from last.ckpt; quality.png beside it."""
    import numpy as np
    import torch
    from hydra.utils import instantiate

    from marginface.data.transforms import to_float
    from marginface.inference.checkpoint import load_model
    from marginface.metrics.quality import DEFAULT_REJECT, error_versus_reject

    # 20 open-set identities x 4 images: 3040 impostor pairs, so FAR 1e-3 is measurable
    cfg = tiny_train_cfg("loss=arcface", "data.dataset.num_identities=40")
    results = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    check_schema(json.loads((run_dir / "results.json").read_text()))
    dm = instantiate(cfg.data)
    dm.setup()
    images, _ = dm.open_set()
    backbone, _, _ = load_model(run_dir / "checkpoints" / "last.ckpt")
    backbone.eval()
    with torch.no_grad():
        x = to_float(images)
        norms = torch.linalg.vector_norm(backbone(x) + backbone(x.flip(-1)), dim=1).numpy()
    with np.load(run_dir / "scores.npz") as saved:
        np.testing.assert_allclose(saved["norms"], norms, rtol=1e-5)
        expected = error_versus_reject(
            saved["scores"], saved["issame"], saved["i"], saved["j"], saved["norms"], far=1e-3
        )
    quality = results["open_set"]["quality"]
    assert quality == expected and quality["reject"] == list(DEFAULT_REJECT)
    assert quality["threshold"] is not None and quality["fnmr"][0] is not None
    assert (run_dir / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_orl_fast_dev_run(tmp_path):
    cfg = compose_config(
        "train", ["trainer=debug", "loss=softmax", "trainer.enable_progress_bar=false"], tmp_path
    )
    results = train(cfg)
    check_schema(results)
    assert results["config"]["data"]["dataset"]["_target_"].endswith("load_orl")


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["softmax", "arcface"])
def test_orl_default_recipe_learns(tmp_path, loss):
    """The default recipe on fold 0: far better than chance on unseen faces (eigenfaces gets ~13% EER)."""
    cfg = compose_config("train", [f"loss={loss}", "trainer.enable_progress_bar=false"], tmp_path)
    results = train(cfg)
    assert results["open_set"]["verification"]["eer"] < 0.12  # eigenfaces: about 0.13
    assert results["closed_set"]["accuracy"] > 0.9


def test_a_fixed_pairs_protocol_is_evaluated_from_a_checkpoint(tiny_train_cfg, tmp_path):
    """data=bin: embed the .bin images with the trained backbone, score its pairs, 10-fold protocol."""
    import io

    import numpy as np
    from PIL import Image

    from marginface.data import make_synthetic
    from marginface.data.insightface_bin import write_bin
    from marginface.inference.checkpoint import load_model
    from marginface.inference.embed import extract_embeddings

    cfg = tiny_train_cfg("loss=cosface")
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    faces = make_synthetic(num_identities=6, images_per_identity=4, image_size=(28, 24), seed=5)
    order = [
        0,
        1,
        0,
        4,
        4,
        5,
        4,
        9,
        8,
        9,
        8,
        13,
        12,
        13,
        12,
        17,
        16,
        17,
        16,
        21,
    ]  # (same, different) x 5
    blobs = []
    for k in order:
        buffer = io.BytesIO()
        Image.fromarray(faces.images[k, 0].numpy()).save(buffer, format="PNG")
        blobs.append(buffer.getvalue())
    issame = [bool(faces.labels[order[i]] == faces.labels[order[i + 1]]) for i in range(0, 20, 2)]
    assert issame == [True, False] * 5
    path = tmp_path / "tiny.bin"
    write_bin(path, blobs, issame)
    ecfg = compose_config(
        "evaluate",
        [
            "data=bin",
            f"data.verification.path={path}",
            "data.image_size=[28,24]",
            "data.channels=1",
            f"ckpt_path={ckpt}",
        ],
        tmp_path / "eval",
    )
    results = evaluate(ecfg)
    assert (
        results["open_set"]["identification"] is None and results["open_set"]["retrieval"] is None
    )
    assert schema_problems(results) == []
    # 5 impostor pairs cannot measure FAR 1e-3: the quality curve is there, its FNMRs null
    assert results["open_set"]["quality"]["fnmr"] == [None] * 7
    # independent recomputation: cosine of the flip-summed embeddings of each pair
    backbone, _, _ = load_model(ckpt)
    emb = extract_embeddings(backbone, faces.images[order])
    scores = (emb[0::2] * emb[1::2]).sum(1)
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(np.array(issame), scores)
    assert math.isclose(results["open_set"]["verification"]["auc"], expected, abs_tol=1e-6)
    # whitening needs a checkpoint that carries one: a pairs protocol has nothing to fit it on
    ecfg.eval.wccn = True
    with pytest.raises(ValueError, match="needs a checkpoint trained with eval.wccn=true"):
        evaluate(ecfg)
