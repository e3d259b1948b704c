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
