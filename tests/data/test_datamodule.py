import torch

from marginface.data import FaceDataModule, make_synthetic


def make_dm(**kw):
    args = dict(
        dataset=make_synthetic(num_identities=12, images_per_identity=5, seed=0),
        num_folds=3,
        val_per_identity=1,
        batch_size=8,
    )
    args.update(kw)
    dm = FaceDataModule(**args)
    dm.setup()
    return dm


def test_split_is_identity_disjoint_and_complete():
    dm = make_dm(fold=1)
    labels = dm.data.labels
    train_ids = set(labels[dm.train_index].tolist()) | set(labels[dm.val_index].tolist())
    open_ids = set(labels[dm.open_index].tolist())
    assert train_ids.isdisjoint(open_ids)
    assert len(open_ids) == 4 and dm.num_classes == 8
    everything = torch.cat([dm.train_index, dm.val_index, dm.open_index]).sort().values
    assert torch.equal(everything, torch.arange(60))


def test_training_labels_are_classes_and_open_labels_are_distinct():
    dm = make_dm()
    labels = torch.cat([y for _, y in dm.train_dataloader()])
    assert labels.min() == 0 and labels.max() == dm.num_classes - 1
    _, open_labels = dm.open_set()
    assert open_labels.min() >= dm.num_classes
    assert len(torch.unique(open_labels)) == len(dm.open_ids)


def test_images_are_resized_once_and_stay_uint8():
    dm = make_dm(image_size=(28, 24))
    images, _ = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape[1:] == (1, 28, 24)
    assert dm.data.images.shape[1:] == (1, 28, 24)


def test_callable_dataset_is_loaded_in_setup():
    calls = []

    def load():
        calls.append(1)
        return make_synthetic(num_identities=8, images_per_identity=3)

    dm = FaceDataModule(load, num_folds=2)
    assert not calls
    dm.setup()
    dm.setup()
    assert calls == [1]


def test_the_data_set_as_given_is_freed_after_setup():
    import gc
    import weakref

    given = make_synthetic(num_identities=8, images_per_identity=3, image_size=(56, 48))
    dm = FaceDataModule(given, num_folds=2, image_size=(28, 24))
    alive = weakref.ref(given.images)
    del given
    dm.setup()
    gc.collect()
    assert alive() is None  # only the resized copy is kept
    assert dm.data.images.shape[1:] == (1, 28, 24)
    subsets = [dm.train_dataloader().dataset, *(dl.dataset for dl in dm.val_dataloader())]
    assert all(s.source.images is dm.data.images for s in subsets)  # index views, no copies


def test_unseen_split_makes_every_identity_open_set_and_trains_nothing():
    dm = make_dm(split="unseen")
    assert dm.num_classes == 0 and len(dm.train_index) == 0 and len(dm.val_index) == 0
    assert torch.equal(dm.open_index, torch.arange(60))
    images, labels = dm.open_set()
    assert len(images) == 60 and sorted(set(labels.tolist())) == list(range(12))
    assert len(dm.closed_set()[1]) == 0


def test_random_split_holds_out_num_open_identities():
    dm = make_dm(split="random", num_open=3, fold=17)
    open_ids = set(dm.data.labels[dm.open_index].tolist())
    assert len(open_ids) == 3 and dm.num_classes == 9
    assert open_ids == set(make_dm(split="random", num_open=3, fold=17).open_ids.tolist())
