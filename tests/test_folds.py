"""k-fold cross-validation (issue #19.1): ``data.num_folds`` / ``data.fold`` in every DataModule that splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from lit_vision.data.digits import DigitsDataModule
from lit_vision.data.image_folder import ImageFolderDataModule
from lit_vision.data.segmentation import SegmentationFolderDataModule
from lit_vision.data.splits import check_folds, fold_indices
from lit_vision.data.tabular import TabularDataModule
from lit_vision.errors import UserError
from tests.fakes.datasets import make_image_folder
from tests.fakes.segmentation import make_labelme_dataset, make_oxford_pets
from tests.helpers import compose_cfg

K = 4


def assert_partition(vals: list[set], pool: set) -> None:
    """The validation parts are pairwise disjoint and together are the pool."""
    assert sum(len(v) for v in vals) == len(pool)
    assert set().union(*vals) == pool


# ----------------------------------------------------------------------------- the shared helper
def test_fold_indices_disjoint_cover_and_train_is_the_rest():
    vals = []
    for fold in range(5):
        train, val = fold_indices(23, 5, fold, seed=3)
        assert set(train).isdisjoint(val) and len(train) + len(val) == 23
        vals.append(set(val.tolist()))
    assert_partition(vals, set(range(23)))
    # seeded: the same partition every call, another seed another one
    assert np.array_equal(fold_indices(23, 5, 2, seed=3)[1], fold_indices(23, 5, 2, seed=3)[1])
    assert not np.array_equal(fold_indices(23, 5, 2, seed=3)[1], fold_indices(23, 5, 2, seed=4)[1])


def test_fold_indices_stratified_keeps_class_proportions():
    labels = np.repeat([0, 1, 2], [10, 30, 60])  # 10 % / 30 % / 60 %
    for fold in range(5):
        _, val = fold_indices(100, 5, fold, seed=0, labels=labels)
        assert np.bincount(labels[val]).tolist() == [2, 6, 12]
    # without labels a fold of the same data is free to drift from the proportions
    drift = [np.bincount(labels[fold_indices(100, 5, f, seed=0)[1]], minlength=3).tolist() for f in range(5)]
    assert any(counts != [2, 6, 12] for counts in drift)


def test_fold_indices_grouped_keeps_groups_together():
    groups = np.arange(40) // 4  # 10 groups of 4 rows
    vals = []
    for fold in range(5):
        train, val = fold_indices(40, 5, fold, seed=0, groups=groups)
        assert set(groups[train]).isdisjoint(groups[val])
        vals.append(set(val.tolist()))
    assert_partition(vals, set(range(40)))


@pytest.mark.parametrize(
    ("num_folds", "fold", "match"),
    [
        (5, 5, r"data\.fold=5 is not a fold of data\.num_folds=5: use 0\.\.4"),
        (5, -1, r"data\.fold=-1 is not a fold of data\.num_folds=5"),
        (None, 2, r"data\.fold=2 needs data\.num_folds"),
        (1.5, 0, r"data\.num_folds=1\.5 must be a whole number >= 2"),
        ("3", 0, r"data\.num_folds='3' must be a whole number"),
    ],
)
def test_bad_fold_keys_are_user_errors(num_folds, fold, match):
    with pytest.raises(UserError, match=match):
        check_folds(num_folds, fold)


def test_too_few_samples_for_the_folds_is_a_user_error():
    with pytest.raises(
        UserError, match=r"data\.num_folds=5 needs at least 5 train\+val rows, but there are 3"
    ):
        fold_indices(3, 5, 0, seed=0, what="rows")
    with pytest.raises(UserError, match=r"smallest class has only 2"):
        fold_indices(12, 5, 0, seed=0, labels=[0, 0] + [1] * 10)
    with pytest.raises(UserError, match=r"at least 5 groups in data\.fold_group"):
        fold_indices(12, 5, 0, seed=0, groups=[0, 1, 2] * 4)


# ----------------------------------------------------------------------------- DataModules
def _in_memory_ids(split) -> set[bytes]:
    return {image.numpy().tobytes() for image in split.images}


def test_in_memory_folds_cover_train_val_stratified_and_keep_test():
    base = DigitsDataModule(split_seed=0)
    base.setup()
    pool = _in_memory_ids(base.splits["train"]) | _in_memory_ids(base.splits["val"])
    test = _in_memory_ids(base.splits["test"])
    vals = []
    for fold in range(K):
        dm = DigitsDataModule(split_seed=0, num_folds=K, fold=fold)
        dm.setup()
        train_ids, val_ids = _in_memory_ids(dm.splits["train"]), _in_memory_ids(dm.splits["val"])
        assert train_ids | val_ids == pool and train_ids.isdisjoint(val_ids)
        assert _in_memory_ids(dm.splits["test"]) == test  # the test split is the same for every fold
        share = np.bincount(dm.splits["val"].labels.numpy(), minlength=10) / len(dm.splits["val"])
        everything = torch_labels(dm)
        assert np.abs(share - np.bincount(everything, minlength=10) / len(everything)).max() < 0.02
        vals.append(val_ids)
    assert_partition(vals, pool)


def torch_labels(dm: DigitsDataModule) -> np.ndarray:
    return np.concatenate([dm.splits[s].labels.numpy() for s in ("train", "val")])


def test_image_folder_folds_merge_train_and_valid_folders(tmp_path):
    root = make_image_folder(
        tmp_path / "flowers", per_class={"train": 6, "valid": 2, "test": 2}, size=(16, 16), formats=("png",)
    )

    def paths(dm, stage):
        return {s.path for s in dm.samples[stage]}

    vals, tests = [], []
    for fold in range(K):
        dm = ImageFolderDataModule(root=str(root), num_folds=K, fold=fold, image_size=16, check_images="off")
        dm.setup()
        vals.append(paths(dm, "val"))
        tests.append(paths(dm, "test"))
        assert paths(dm, "train").isdisjoint(paths(dm, "val"))
        labels = [s.label for s in dm.samples["val"]]
        assert np.bincount(labels).tolist() == [2, 2, 2]  # (6 train + 2 valid) per class / 4 folds
    pool = {str(p) for p in (root / "train").rglob("*.png")} | {
        str(p) for p in (root / "valid").rglob("*.png")
    }
    assert_partition(vals, pool)
    assert all(t == tests[0] for t in tests) and tests[0] == {str(p) for p in (root / "test").rglob("*.png")}


def test_segmentation_folder_folds_keep_the_test_split(tmp_path):
    root = make_labelme_dataset(tmp_path / "seg", n=12, size=(16, 16))
    vals, tests = [], []
    for fold in range(3):
        dm = SegmentationFolderDataModule(
            root=root, image_size=16, test_fraction=0.25, val_fraction=0.25, num_folds=3, fold=fold
        )
        dm.setup()
        names = {stage: set(dm.datasets[stage].names) for stage in ("train", "val", "test")}
        assert names["train"].isdisjoint(names["val"]) and names["test"].isdisjoint(
            names["train"] | names["val"]
        )
        assert len(names["train"]) + len(names["val"]) == 9
        vals.append(names["val"])
        tests.append(names["test"])
    assert_partition(vals, {f"img_{i:03d}" for i in range(12)} - tests[0])
    assert tests[0] == tests[1] == tests[2]


def test_oxford_pets_folds_cut_trainval_and_keep_the_official_test_list(tmp_path):
    from lit_vision.data.segmentation import OxfordPetsDataModule

    root = make_oxford_pets(tmp_path, n_cats=5, n_dogs=4, n_test=2)
    vals, tests = [], []
    for fold in range(3):
        dm = OxfordPetsDataModule(
            root=root, image_size=16, num_workers=0, cache=False, num_folds=3, fold=fold
        )
        dm.setup()
        names = {stage: set(dm.datasets[stage].names) for stage in ("train", "val", "test")}
        assert names["train"].isdisjoint(names["val"]) and len(names["val"]) == 3
        vals.append(names["val"])
        tests.append(names["test"])
    trainval = (tmp_path / "oxford-iiit-pet" / "annotations" / "trainval.txt").read_text().split("\n")
    assert_partition(vals, {line.split()[0] for line in trainval if line.strip()})
    assert tests[0] == tests[1] == tests[2] and len(tests[0]) == 4


def test_image_regression_folds_are_plain_and_cover_train_val(tmp_path):
    from tests.test_regression_experiments import image_dm, write_brightness_set

    write_brightness_set(tmp_path, count=20)
    vals, tests = [], []
    for fold in range(K):
        dm = image_dm(tmp_path, val_fraction=0.2, test_fraction=0.2, num_folds=K, fold=fold)
        samples = dm._find()  # the listing only: no decoding needed to check the split
        vals.append({s.path for s in samples["val"]})
        tests.append({s.path for s in samples["test"]})
        assert vals[-1].isdisjoint(s.path for s in samples["train"])
    assert all(t == tests[0] for t in tests) and len(tests[0]) == 4
    assert_partition(vals, {str(p) for p in (tmp_path / "img").glob("*.png")} - tests[0])


def _table(tmp_path, n: int = 60):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n), "site": np.arange(n) % 12, "row": np.arange(n)})
    frame["target"] = 2 * frame["x"] + rng.normal(scale=0.1, size=n)
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("group", [None, "site"])
def test_tabular_folds_cover_rows_keep_test_and_groups(tmp_path, group):
    path = _table(tmp_path)
    vals, tests = [], []
    for fold in range(K):
        dm = TabularDataModule(
            path=str(path), target="target", features=["x"], num_folds=K, fold=fold, fold_group=group
        )
        dm.setup()
        rows = {stage: set(dm.frames[stage]["row"]) for stage in ("train", "val", "test")}
        assert rows["train"].isdisjoint(rows["val"])
        if group:
            assert set(dm.frames["train"]["site"]).isdisjoint(dm.frames["val"]["site"])
        vals.append(rows["val"])
        tests.append(rows["test"])
    assert all(t == tests[0] for t in tests)
    assert_partition(vals, set(range(60)) - tests[0])


def test_tabular_fold_group_errors(tmp_path):
    path = _table(tmp_path)
    with pytest.raises(UserError, match=r"data\.fold_group='sitee' is not a column"):
        TabularDataModule(path=str(path), target="target", num_folds=3, fold_group="sitee").setup()
    with pytest.raises(UserError, match=r"data\.fold_group='site' .* data\.num_folds is null"):
        TabularDataModule(path=str(path), target="target", fold_group="site")


@pytest.mark.parametrize(
    "data",
    [
        "cats",
        "linear_toy",
        "cifar10",
        "digits",
        "image_folder",
        "image_list",
        "image_regression",
        "mnist",
        "oxford_pets",
        "segmentation_folder",
        "tabular",
        "temps",
    ],
)
def test_every_splitting_data_config_has_the_fold_keys(data):
    cfg = compose_cfg([f"data={data}", "data.num_folds=5", "data.fold=4"])
    assert cfg.data.num_folds == 5 and cfg.data.fold == 4


def test_bad_fold_from_the_command_line_names_the_keys():
    cfg = compose_cfg(["data=digits", "data.num_folds=5", "data.fold=5"])
    with pytest.raises(Exception) as info:
        instantiate(cfg.data)
    error = info.value if isinstance(info.value, UserError) else info.value.__cause__
    assert isinstance(error, UserError) and "data.fold=5" in str(error) and "data.num_folds=5" in str(error)
