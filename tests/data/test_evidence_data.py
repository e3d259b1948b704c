"""data.train_identities (nested subsets, open set fixed) and the distractor sources."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from marginface.data import FaceDataModule, make_synthetic
from marginface.data.base import DataError
from marginface.data.distractors import folder_distractors, generated_distractors
from marginface.data.splits import nested_identities


def make_dm(**kw):
    args = dict(
        dataset=make_synthetic(num_identities=40, images_per_identity=4, seed=0),
        num_folds=4,
        val_per_identity=1,
        split_seed=3,
    )
    args.update(kw)
    dm = FaceDataModule(**args)
    dm.setup()
    return dm


def ids_of(dm, index):
    return set(dm.data.labels[index].tolist())


def test_train_identities_are_nested_and_the_open_set_is_unchanged():
    full = make_dm()
    subsets = {n: make_dm(train_identities=n) for n in (5, 12, 30)}
    for n, dm in subsets.items():
        trained = ids_of(dm, torch.cat([dm.train_index, dm.val_index]))
        assert dm.num_classes == len(trained) == n
        assert trained <= set(full.train_ids.tolist())
        assert torch.equal(dm.open_index, full.open_index)  # same images, same order
        assert ids_of(dm, dm.open_index).isdisjoint(trained)
    assert set(subsets[5].train_ids.tolist()) <= set(subsets[12].train_ids.tolist())
    assert set(subsets[12].train_ids.tolist()) <= set(subsets[30].train_ids.tolist())
    assert torch.equal(subsets[30].train_ids, full.train_ids)  # all 30 of fold 0's training ids
    # labels of the subset are classes 0..N-1
    labels = torch.cat([y for _, y in subsets[12].train_dataloader()])
    assert labels.min() == 0 and labels.max() == 11


def test_train_identities_follow_split_seed():
    a = nested_identities(torch.arange(100), 10, seed=0)
    assert torch.equal(a, nested_identities(torch.arange(100), 10, seed=0))
    assert not torch.equal(a, nested_identities(torch.arange(100), 10, seed=1))
    assert torch.equal(nested_identities(torch.arange(7), None), torch.arange(7))


@pytest.mark.parametrize("count", [31, 1])
def test_too_many_or_too_few_train_identities_name_the_range(count):
    with pytest.raises(DataError, match=rf"train_identities={count}.*\[2, 30\]"):
        make_dm(train_identities=count)


def test_generated_distractors_are_new_identities_of_the_same_generator():
    import functools

    make = functools.partial(make_synthetic, image_size=(28, 24), noise=0.0, max_shift=0, seed=4)
    distractors = generated_distractors(make, num_identities=6, count=5)
    assert distractors.shape == (5, 1, 28, 24) and distractors.dtype == torch.uint8
    # identities 6..10 of the same generator (noise and shift off: image = template, brightness aside)
    bigger = make(num_identities=11, images_per_identity=1)
    assert torch.equal(distractors, bigger.images[6:])
    own = make(num_identities=6, images_per_identity=1).images
    templates = own.float().flatten(1)
    for image in distractors.float().flatten(1):  # not a re-draw of one of the data set's own
        assert (templates - image).abs().mean(1).min() > 5


def test_generated_distractors_need_a_generator():
    with pytest.raises(DataError, match="distractor_root"):
        generated_distractors(lambda root=None: None, 10, 3)


def test_folder_distractors_take_one_image_per_folder(tmp_path):
    for k in range(4):
        (tmp_path / f"p{k}").mkdir()
        for j in range(2):
            Image.new("L", (20, 24), color=40 * k + j).save(tmp_path / f"p{k}" / f"{j}.png")
    images = folder_distractors(tmp_path, 3, channels=1, size=(12, 10))
    assert images.shape == (3, 1, 12, 10)
    assert images[:, 0, 0, 0].tolist() == [0, 40, 80]  # p0/0.png, p1/0.png, p2/0.png
    with pytest.raises(DataError, match="eval.distractors=5.*holds 4"):
        folder_distractors(tmp_path, 5, channels=1, size=(12, 10))
