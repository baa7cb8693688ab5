"""The typed data contract (lit_vision.data.contract): DataInfo, its checkpoint form, and the protocols."""

from __future__ import annotations

import io

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from lit_vision.data.contract import DataInfo, DescribesData, DiscoversData
from lit_vision.data.image_folder import ImageFolderDataModule
from lit_vision.data.segmentation.folder_datamodule import SegmentationFolderDataModule
from lit_vision.data.tabular import TabularDataModule
from lit_vision.data.torchvision_sets import MNISTDataModule
from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import check_data_fits_task, load_model
from lit_vision.runs.run import fill_discovered_data_keys
from lit_vision.tasks.classification import ClassificationTask
from tests.fakes.datasets import make_image_folder

# data_info dicts as checkpoints written before DataInfo hold them (one per data family)
OLD_DICTS = {
    "classification": {
        "num_classes": 3,
        "in_channels": 3,
        "image_size": 32,
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.2, 0.2],
        "class_names": ["daisy", "rose", "tulip"],
        "eval_transforms": [{"Resize": {"size": 36}}, {"CenterCrop": {"size": 32}}],
        "folder_names": ["daisy", "rose", "tulip"],
    },
    "segmentation": {
        "task": "segmentation",
        "num_classes": 2,
        "in_channels": 3,
        "image_size": [64, 48],
        "eval_transforms": [],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "class_names": ["background", "cat"],
        "ignore_index": 255,
        "palette": [[0, 0, 0], [128, 0, 0]],
    },
    "image_regression": {
        "in_channels": 1,
        "image_size": 28,
        "mean": [0.1],
        "std": [0.3],
        "eval_transforms": [],
        "kind": "image_regression",
        "target_names": ["age"],
        "target_mean": [40.0],
        "target_std": [12.0],
    },
    "tabular": {
        "kind": "tabular",
        "feature_names": ["x", "kind=a", "kind=b"],
        "numeric_columns": ["x"],
        "categorical": {"kind": ["a", "b"]},
        "feature_mean": [1.5],
        "feature_std": [0.5],
        "target_names": ["y"],
        "target_mean": None,
        "target_std": None,
        "unknown_category": "error",
        "date_columns": [],
    },
}
TASK_OF = {
    "classification": "classification",
    "segmentation": "segmentation",
    "image_regression": "regression",
    "tabular": "regression",
}


def weights_only_round_trip(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("family", sorted(OLD_DICTS))
def test_old_checkpoint_dicts_read_as_typed_data_info(family):
    old = OLD_DICTS[family]
    info = DataInfo.from_dict(old)
    assert info.kind == family and info.task == TASK_OF[family]
    assert info.is_tabular == (family == "tabular")
    # written back, the checkpoint dict holds the same keys and values (plus the family as `kind`)
    assert info.to_dict() == {**old, "kind": family}
    # read-only mapping view for code written against the plain dicts
    for key, value in old.items():
        if key != "kind":
            assert info[key] == value and info.get(key) == value


def test_fields_are_typed_and_the_checkpoint_form_is_plain_builtins():
    info = DataInfo.from_dict(OLD_DICTS["segmentation"])
    assert info.class_names == ("background", "cat") and info.image_size == (64, 48)
    assert info.mean == (0.5, 0.5, 0.5) and info.palette == ((0, 0, 0), (128, 0, 0))
    with pytest.raises(AttributeError):
        info.num_classes = 3  # frozen
    stored = weights_only_round_trip({"data_info": info.to_dict()})["data_info"]
    assert DataInfo.from_dict(stored) == info


def test_tabular_preprocessing_travels_whole():
    info = DataInfo.from_dict(OLD_DICTS["tabular"])
    assert info.feature_names == ("x", "kind=a", "kind=b")
    assert info.tabular["categorical"] == {"kind": ["a", "b"]}
    assert info.tabular["unknown_category"] == "error"
    with pytest.raises(UserError, match="feature_std"):
        DataInfo("tabular", tabular={"numeric_columns": ["x"], "feature_mean": [0.0]})


def test_unknown_keys_are_kept_and_an_unknown_kind_is_refused():
    info = DataInfo.from_dict({**OLD_DICTS["classification"], "dataset": "CIFAR10", "from_the_future": 1})
    assert info.dataset == "CIFAR10" and info.extra == {"from_the_future": 1}
    assert info.to_dict()["from_the_future"] == 1
    with pytest.raises(UserError, match="kind 'video'"):
        DataInfo("video")


def test_replace_converts_like_create():
    info = DataInfo.create("classification", num_classes=2, class_names=["a", "b"], mean=[0.5])
    changed = info.replace(folder_names=["0", "1"], mean=[0.25])
    assert changed.folder_names == ("0", "1") and changed.mean == (0.25,) and info.mean == (0.5,)


# ------------------------------------------------------------------ producers and protocols
def test_datamodules_produce_data_info_and_discovering_ones_follow_the_protocol(tmp_path):
    make_image_folder(tmp_path / "flowers", classes=("a", "b"), per_class=6)
    folder = ImageFolderDataModule(
        root=str(tmp_path / "flowers"), num_classes=None, image_size=16, in_channels=3
    )
    assert isinstance(folder, DescribesData) and isinstance(folder, DiscoversData)
    folder.setup()
    info = folder.data_info()
    assert isinstance(info, DataInfo) and info.kind == "classification"
    assert info.class_names == ("a", "b") and info.folder_names == ("a", "b") and info.in_channels == 3
    assert isinstance(MNISTDataModule(root=str(tmp_path)), DescribesData)
    assert not isinstance(MNISTDataModule(root=str(tmp_path)), DiscoversData)  # nothing to discover
    assert TabularDataModule.not_applicable_keys == ("num_classes", "in_channels", "image_size")
    assert SegmentationFolderDataModule.not_applicable_keys == ()


class _Discovering:
    """A stand-in DataModule that discovers num_classes and has no image size."""

    not_applicable_keys = ("image_size",)

    def __init__(self) -> None:
        self.num_classes = None
        self.discovered = False

    def discover(self) -> None:
        self.discovered = True
        self.num_classes = 7


def test_run_fills_null_keys_through_the_discovery_protocol():
    cfg = OmegaConf.create({"data": {"num_classes": None, "image_size": None}})
    module = _Discovering()
    fill_discovered_data_keys(cfg, module)
    assert module.discovered and cfg.data.num_classes == 7 and cfg.data.image_size is None


# ------------------------------------------------------------------ the task and the checkpoint
MLP = {
    "_target_": "lit_vision.nets.mlp.MLP",
    "image_size": 4,
    "in_channels": 1,
    "num_classes": 3,
    "hidden": [4],
}


def fit_one_step(task: L.LightningModule) -> L.Trainer:
    """One optimizer step of ``task`` on four random 4x4 images; the trainer, ready to save a checkpoint."""
    loader = DataLoader(TensorDataset(torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0])), batch_size=4)
    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, loader)
    return trainer


def test_task_stores_plain_data_info_and_reads_old_checkpoints(tmp_path):
    task = ClassificationTask(net=MLP, num_classes=3)
    task.data_info = {"num_classes": 3, "in_channels": 1, "image_size": 4, "class_names": ["x", "y", "z"]}
    assert isinstance(task.data_info, DataInfo) and task.class_names == ["x", "y", "z"]
    trainer = fit_one_step(task)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=False)
    assert weights_only_round_trip(saved["data_info"]) == saved["data_info"]  # builtins only
    assert saved["data_info"]["kind"] == "classification"
    # a checkpoint from before DataInfo: no `kind`, written as a plain dict
    saved["data_info"] = {k: v for k, v in saved["data_info"].items() if k != "kind"}
    torch.save(saved, path)
    model = load_model(path)
    assert model.data_info.kind == "classification" and model.class_names == ["x", "y", "z"]


def test_checkpoint_without_data_info_gets_an_empty_one_of_its_kind(tmp_path):
    task = ClassificationTask(net=MLP, num_classes=3)
    trainer = fit_one_step(task)
    trainer.save_checkpoint(tmp_path / "bare.ckpt")
    model = load_model(tmp_path / "bare.ckpt")
    assert model.data_info == DataInfo("classification") and model.class_names == ["0", "1", "2"]


def test_checkpoint_check_compares_typed_data_info(tmp_path):
    task = ClassificationTask(net=MLP, num_classes=3)
    task.data_info = DataInfo.create("classification", num_classes=3, in_channels=1)

    class Data:
        def data_info(self) -> DataInfo:
            return DataInfo.create("segmentation", num_classes=5, in_channels=1)

    with pytest.raises(UserError, match=r"a classification model vs segmentation data.*num_classes: 3"):
        check_data_fits_task(task, Data(), "model.ckpt")
    check_data_fits_task(task, object(), "model.ckpt")  # no data_info(): nothing to compare
