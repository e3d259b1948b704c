import torch
from hypothesis import given
from hypothesis import strategies as st

from marginface.data import DataError
from marginface.data.splits import holdout_per_identity, identity_folds


@given(n=st.integers(4, 200), k=st.integers(2, 8), seed=st.integers(0, 3))
def test_folds_partition_the_identities(n, k, seed):
    if n < 2 * k:
        return
    seen = []
    for fold in range(k):
        train, open_ids = identity_folds(n, k, fold, seed)
        assert set(train.tolist()).isdisjoint(open_ids.tolist())
        assert sorted(train.tolist() + open_ids.tolist()) == list(range(n))
        assert len(open_ids) in (n // k, n // k + 1)
        seen += open_ids.tolist()
    assert sorted(seen) == list(range(n))  # every identity is open-set exactly once


def test_folds_are_fixed_by_the_split_seed():
    assert torch.equal(identity_folds(40, 4, 1, seed=0)[1], identity_folds(40, 4, 1, seed=0)[1])
    assert not torch.equal(identity_folds(40, 4, 1, seed=0)[1], identity_folds(40, 4, 1, seed=1)[1])


def test_bad_fold_arguments_are_explained():
    for args, message in [
        ((40, 1, 0), "num_folds"),
        ((40, 4, 4), "fold must be"),
        ((5, 4, 0), "cannot make"),
    ]:
        try:
            identity_folds(*args)
        except DataError as err:
            assert message in str(err)
        else:  # pragma: no cover
            raise AssertionError(f"{args} accepted")


def test_holdout_keeps_one_training_image_per_identity():
    labels = torch.tensor([0] * 10 + [1] * 2 + [2])
    train, held = holdout_per_identity(labels, per_identity=2, seed=0)
    assert sorted(train.tolist() + held.tolist()) == list(range(13))
    held_counts = torch.bincount(labels[held], minlength=3).tolist()
    assert held_counts == [2, 1, 0]  # 2 of 10; 1 of 2 (one must train); 0 of 1


def test_random_splits_are_identity_disjoint_reproducible_and_many():
    from marginface.data.splits import random_split

    splits = []
    for k in range(25):  # any number of splits, not bounded by a fold count
        train, open_ids = random_split(40, 10, k, seed=3)
        assert len(open_ids) == 10 and len(train) == 30
        assert set(train.tolist()).isdisjoint(open_ids.tolist())
        assert sorted(train.tolist() + open_ids.tolist()) == list(range(40))
        again = random_split(40, 10, k, seed=3)
        assert torch.equal(again[0], train) and torch.equal(again[1], open_ids)
        splits.append(tuple(open_ids.tolist()))
    assert len(set(splits)) == 25  # each k draws its own split
    assert not torch.equal(random_split(40, 10, 0, seed=4)[1], random_split(40, 10, 0, seed=3)[1])


def test_the_random_split_is_the_seeded_permutation():
    import numpy as np

    from marginface.data.splits import random_split

    expected = sorted(np.random.default_rng([7, 2]).permutation(20)[:5].tolist())
    assert random_split(20, 5, 2, seed=7)[1].tolist() == expected


def test_split_identities_dispatches_and_keeps_folds_identical():
    from marginface.data.splits import split_identities

    for fold in range(4):
        ref = identity_folds(40, 4, fold, 0)
        got = split_identities("folds", 40, fold, 4, 10, 0)
        assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
    train, open_ids = split_identities("unseen", 7)
    assert train.tolist() == [] and open_ids.tolist() == list(range(7))


def test_bad_split_values_are_explained():
    import pytest

    from marginface.data.splits import split_identities

    for args, message in [
        (("random", 40, 0, 4, 1), "at least 2 open-set"),
        (("random", 10, 0, 4, 10), "leaves 0 to train on"),
        (("random", 40, -1, 4, 10), "fold must be >= 0"),
        (("unseen", 1), "at least 2 identities"),
        (("kfold", 40), "expected one of folds, random, unseen"),
    ]:
        with pytest.raises(DataError, match=message):
            split_identities(*args)
