"""Weakness-1 measurement on a few small class counts: exact sizes, a real timing, flagged extrapolation."""

import pytest

from marginface.experiments import scaling

DIM, BATCH = 12, 4


@pytest.fixture(scope="module")
def measured():
    heads = scaling.head_configs(names=["softmax", "arcface", "sphereface"])
    # 400 classes need 3*4*400*12 + 3*4*4*400 bytes = 76,800: over the cap, so extrapolated
    return scaling.measure(
        heads,
        classes=(10, 50, 200, 400),
        dim=DIM,
        batch=BATCH,
        repeats=1,
        warmup=0,
        max_bytes=60_000,
        log=None,
    )


def test_parameters_and_bytes_are_c_times_d(measured):
    for row in measured["rows"]:
        c = row["classes"]
        assert row["parameters"] == c * DIM
        assert row["bytes"] == 4 * c * DIM  # float32
        # weight + gradient + momentum + (B, C) logits, all float32
        assert row["memory_bytes"] == 3 * 4 * c * DIM + 4 * BATCH * c


def test_small_sizes_are_timed_and_large_ones_extrapolated(measured):
    rows = {(r["head"], r["classes"]): r for r in measured["rows"]}
    for head in ("softmax", "arcface", "sphereface"):
        for c in (10, 50, 200):
            assert rows[head, c]["measured"] and rows[head, c]["step_s"] > 0
        big = rows[head, 400]
        assert not big["measured"] and "memory" in big["reason"] and big["step_s"] > 0


def test_counts_at_public_data_sets_need_no_memory():
    size = scaling.count(scaling.head_configs(names=["softmax"])["softmax"], 2_059_906, 512)
    assert size == {"parameters": 2_059_906 * 512, "bytes": 4 * 2_059_906 * 512}


def test_a_bias_adds_one_parameter_per_class():
    cfg = scaling.head_configs(names=["softmax"])["softmax"].copy()
    cfg.bias = True
    assert scaling.count(cfg, 100, DIM)["parameters"] == 100 * DIM + 100


def test_measured_memory_counts_the_tensors_of_a_real_step():
    cfg = scaling.head_configs(names=["arcface"])["arcface"]
    got = scaling.run_steps(cfg, 30, DIM, BATCH, repeats=1, warmup=0)
    assert got["memory_bytes"] == scaling.step_bytes(4 * 30 * DIM, BATCH, 30)


def test_table_and_file_round_trip(measured, tmp_path):
    path = scaling.save(measured, tmp_path / "h.json")
    assert scaling.load(path)["rows"] == measured["rows"]
    table = scaling.format_table(measured)
    assert "| softmax | 400 | 4,800 |" in table and "extrapolated" in table
    with pytest.raises(ValueError, match="head-scaling"):
        (tmp_path / "bad.json").write_text("{}")
        scaling.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="unknown head"):
        scaling.head_configs(names=["nosuch"])
