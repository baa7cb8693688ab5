"""The task template (lit_vision.tasks.base.BaseTask): shared arguments, configure_* hooks, one logging path,
and the confusion-matrix text callback."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import MetricCollection
from torchmetrics.regression import MeanAbsoluteError

from lit_vision.callbacks.confusion_text import ConfusionMatrixText, markdown_table
from lit_vision.tasks.base import BaseTask
from lit_vision.tasks.classification import ClassificationTask
from lit_vision.tasks.regression import RegressionTask
from lit_vision.tasks.segmentation import SegmentationTask

MLP = {
    "_target_": "lit_vision.nets.mlp.MLP",
    "image_size": 4,
    "in_channels": 1,
    "num_classes": 3,
    "hidden": [8],
}
UNET = {"_target_": "lit_vision.nets.unet.UNet", "in_channels": 3, "init_features": 4, "depth": 1}
TABLE_MLP = {"_target_": "lit_vision.nets.mlp.MLP", "in_features": 3, "num_classes": 1, "hidden": [4]}

SHARED = {
    "net",
    "optimizer",
    "scheduler",
    "loss",
    "monitor",
    "monitor_mode",
    "lr_multipliers",
    "channels_last",
    "compile",
    "init",
    "pretrained_path",
}


# ------------------------------------------------------------------ constructor arguments and hparams
@pytest.mark.parametrize(
    ("task", "own"),
    [
        (
            lambda: ClassificationTask(net=MLP, num_classes=3),
            {"num_classes", "top_k", "class_weights", "aux_loss_weight", "per_class_limit", "metric_chunk"},
        ),
        (
            lambda: SegmentationTask(net=UNET, num_classes=2),
            {"num_classes", "binary", "threshold", "ignore_index", "miou_exclude_background"},
        ),
        (lambda: RegressionTask(net=TABLE_MLP), {"num_targets"}),
    ],
)
def test_hparams_names_are_those_checkpoints_already_hold(task, own):
    # checkpoints written before the template base hold exactly these names: they must still load
    assert set(task().hparams) == SHARED | own


def test_shared_arguments_reach_the_base_through_the_task():
    task = SegmentationTask(
        net=UNET,
        num_classes=3,
        optimizer={"_target_": "torch.optim.SGD", "lr": 0.1},
        monitor="val/dice",
        lr_multipliers={"net": 2.0},
        init={"scheme": "constant", "val": 0.01},
    )
    assert task.hparams.optimizer["_target_"] == "torch.optim.SGD"
    assert task.hparams.monitor == "val/dice" and task.hparams.monitor_mode == "max"
    assert torch.all(task.net.head.weight == 0.01)  # init now applies to segmentation nets too
    assert isinstance(task.configure_optimizers(), torch.optim.SGD)


def test_an_unknown_argument_is_refused_with_its_name():
    with pytest.raises(TypeError, match="num_clases"):
        ClassificationTask(net=MLP, num_classes=3, num_clases=4)
    with pytest.raises(TypeError, match="thresold"):
        SegmentationTask(net=UNET, num_classes=2, thresold=0.3)


def test_configure_hooks_build_loss_and_stage_metrics():
    task = ClassificationTask(
        net=MLP, num_classes=3, loss={"_target_": "torch.nn.CrossEntropyLoss", "weight": [1, 2, 3]}
    )
    assert task.hparams.class_weights == [1.0, 2.0, 3.0]
    assert task.loss_fn.weight.tolist() == [1.0, 2.0, 3.0]
    assert set(task.val_metrics) >= {"val/acc", "val/confusion"}
    segmentation = SegmentationTask(net=UNET, num_classes=2, loss={"name": "bce+dice"})
    assert type(segmentation.loss_fn).__name__ == "SegmentationLoss"
    assert list(segmentation.test_metrics) == ["test/confusion"]


# ------------------------------------------------------------------ one logging path
class MeanTask(BaseTask):
    """A minimal task on the template: only the step and the metrics are its own."""

    progress_bar_metrics = ("mae",)

    def __init__(self, net, scale: float = 1.0, **kwargs) -> None:
        super().__init__(net=net, loss={"_target_": "torch.nn.MSELoss"}, scale=float(scale), **kwargs)

    def configure_metrics(self) -> MetricCollection:
        return MetricCollection({"mae": MeanAbsoluteError()})

    def model_step(self, batch, stage):
        inputs, targets = batch
        outputs = self(inputs).squeeze(1) * self.hparams.scale
        return {"loss": self.loss_fn(outputs, targets)}, (outputs.detach(), targets)


def _loader(n: int = 8) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    return DataLoader(
        TensorDataset(torch.randn(n, 3, generator=generator), torch.randn(n, generator=generator)), 4
    )


def test_a_new_task_gets_every_stage_logged_by_the_base(tmp_path):
    task = MeanTask(TABLE_MLP, scale=2.0)
    trainer = L.Trainer(
        max_epochs=2,
        logger=CSVLogger(str(tmp_path), name="", version=""),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, _loader(), _loader())
    trainer.test(task, _loader())
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    expected = {
        "train/loss_step",
        "train/loss_epoch",
        "train/mae",
        "val/loss",
        "val/mae",
        "test/loss",
        "test/mae",
    }
    assert expected <= set(header)
    # the test loss is the batch-size-weighted mean over the whole split, in the task's own units
    task.eval()
    with torch.no_grad():
        inputs, targets = _loader().dataset.tensors
        outputs = task(inputs).squeeze(1) * 2.0
    assert trainer.callback_metrics["test/mae"].item() == pytest.approx(
        (outputs - targets).abs().mean().item(), rel=1e-5
    )
    assert trainer.callback_metrics["test/loss"].item() == pytest.approx(
        ((outputs - targets) ** 2).mean().item(), rel=1e-5
    )


# ------------------------------------------------------------------ confusion matrix text
def _text_events(folder: Path) -> dict[str, list[tuple[int, str]]]:
    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [(e.step, e.tensor_proto.string_val[0].decode()) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
        if tag.startswith("confusion_matrix/")
    }


def _fit_classifier(tmp_path: Path, callbacks: list) -> None:
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.randn(12, 1, 4, 4, generator=generator), torch.arange(12) % 3
    loader = DataLoader(TensorDataset(images, labels), batch_size=6)
    task = ClassificationTask(net=MLP, num_classes=3)
    trainer = L.Trainer(
        max_epochs=2,
        logger=TensorBoardLogger(str(tmp_path), name="tb", version=""),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, loader, loader)
    trainer.test(task, loader)


def test_confusion_text_is_written_by_the_callback_per_stage_and_epoch(tmp_path):
    _fit_classifier(tmp_path, [ConfusionMatrixText(max_classes=3)])
    found = _text_events(tmp_path / "tb")
    tags = {tag.split("/", 1)[1].removesuffix("/text_summary") for tag in found}
    assert tags == {"train", "val", "test"}
    steps = {tag.split("/")[1]: sorted(step for step, _ in events) for tag, events in found.items()}
    assert steps["train"] == [0, 1] and steps["val"] == [0, 1]  # not the sanity check's matrix
    table = next(text for tag, events in found.items() if "/test" in tag for _, text in events)
    assert table.startswith("| true \\ predicted | 0 | 1 | 2 |")
    assert sum(int(v) for line in table.splitlines()[2:] for v in line.strip("|").split("|")[1:]) == 12


def test_confusion_text_respects_max_classes_and_the_task_writes_none_itself(tmp_path):
    _fit_classifier(tmp_path / "narrow", [ConfusionMatrixText(max_classes=2)])
    assert _text_events(tmp_path / "narrow" / "tb") == {}
    _fit_classifier(tmp_path / "without", [])
    assert _text_events(tmp_path / "without" / "tb") == {}


def test_markdown_table_rows_are_true_classes():
    table = markdown_table(torch.tensor([[2, 1], [0, 3]]), ["cat", "dog"])
    assert table.splitlines() == [
        "| true \\ predicted | cat | dog |",
        "|---|---|---|",
        "| cat | 2 | 1 |",
        "| dog | 0 | 3 |",
    ]
