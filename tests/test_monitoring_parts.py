"""The monitoring callbacks' parts: time budget, hparams selection, conv pictures, features, generic hooks."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import torchvision
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_vision.callbacks import base as callbacks_base
from lit_vision.callbacks.base import EpochSchedule
from lit_vision.callbacks.confusion_matrix import ConfusionMatrixCallback
from lit_vision.callbacks.conv_visuals import first_conv, kernel_grid, stage_outputs
from lit_vision.callbacks.graph import ModelGraph
from lit_vision.callbacks.hparams import select_hparams
from lit_vision.callbacks.lr_monitor import LearningRateMonitor
from lit_vision.callbacks.outputs import penultimate_features
from lit_vision.callbacks.prediction_grid import ClassificationPredictionGrid
from lit_vision.nets.cnn import SimpleCNN
from lit_vision.utils.progress import track
from lit_vision.viz.images import unnormalize
from tests.test_monitoring import read_events


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_epoch_schedule_draws_every_n_epochs_within_its_time_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(callbacks_base.time, "perf_counter", clock)
    schedule = EpochSchedule(every_n_epochs=2, max_overhead=0.1)
    assert not schedule.due(1)
    assert schedule.due(0)  # nothing spent yet
    with schedule.timed():
        clock.now += 1.0  # the first figure took 1 s
    clock.now = 5.0
    assert not schedule.due(2)  # 1 s of 5 s is 20% > 10%
    clock.now = 10.0
    assert schedule.due(2)  # 1 s of 10 s is 10%
    assert EpochSchedule(every_n_epochs=0).due(0) is False
    unlimited = EpochSchedule(every_n_epochs=1, max_overhead=None)
    with unlimited.timed():
        clock.now += 100.0
    assert unlimited.due(3)
    with pytest.raises(ValueError, match="max_overhead"):
        EpochSchedule(1, max_overhead=0.0)


def test_hparams_selection_keeps_what_tells_runs_apart():
    record = {
        "seed": 7,
        "optim": {"_target_": "torch.optim.SGD", "lr": 0.1, "betas": [0.9, 0.99]},
        "model": {"_recursive_": False, "net": {"channels": [16, 32]}, "optimizer": {"lr": 0.1}},
        "data": {"root": "/data/cifar", "batch_size": 128, "mean": None},
        "scheduler": {},
        "trainer": {"default_root_dir": "/runs/1", "max_epochs": 30, "deterministic": True},
        "paths": {"output_dir": "/runs/1"},
        "callbacks": {"model_checkpoint": {"dirpath": "/runs/1/checkpoints"}},
        "num_classes": 10,  # the task's own hparams, merged in by Lightning
    }
    chosen = select_hparams(
        record, ("seed", "optim", "model", "data", "scheduler", "trainer"), ("model.optimizer",)
    )
    assert chosen == {
        "data.batch_size": 128,
        "model.net.channels": "[16, 32]",
        "optim._target_": "torch.optim.SGD",
        "optim.betas": "[0.9, 0.99]",
        "optim.lr": 0.1,
        "scheduler": "none",
        "seed": 7,
        "trainer.deterministic": "true",
        "trainer.max_epochs": 30,
    }
    # A record made without run.py (no config groups) is shown whole.
    assert select_hparams({"lr": 0.1, "net": {"depth": 3}}, ("optim",), ()) == {"lr": 0.1, "net.depth": 3}


def test_stage_outputs_follow_the_resolution_of_a_resnet_and_a_plain_cnn():
    resnet = torchvision.models.resnet18(num_classes=3).eval()
    stages = stage_outputs(resnet, torch.randn(1, 3, 64, 64))
    assert [name for name, _ in stages] == ["relu", "layer1", "layer2", "layer3", "layer4"]
    assert [tuple(out.shape) for _, out in stages][-1] == (512, 2, 2)

    cnn = SimpleCNN(in_channels=1, num_classes=10, image_size=8).eval()
    stages = stage_outputs(cnn, torch.randn(1, 1, 8, 8))
    assert [(name, tuple(out.shape)) for name, out in stages] == [
        ("features.1", (16, 8, 8)),
        ("features.4", (32, 4, 4)),
        ("features", (32, 2, 2)),
    ]


def test_kernel_grid_shows_rgb_kernels_in_colour_and_others_per_input_channel():
    rgb = kernel_grid(torch.randn(8, 3, 3, 3))
    grey = kernel_grid(torch.randn(4, 2, 5, 5))
    assert rgb.shape[0] == 3 and grey.shape[0] == 3
    assert float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0
    # 4 output channels x 2 input channels -> 4 rows of 2 tiles (5 px kernels upscaled to 25 px + padding)
    assert grey.shape[1:] == (4 * 27 + 2, 2 * 27 + 2)
    assert first_conv(torchvision.models.resnet18())[0] == "conv1"


class NoForwardFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(self.body(x))


def test_penultimate_features_use_forward_features_or_the_heads_input():
    holder = nn.Module()
    holder.net = NoForwardFeatures()
    holder.forward = holder.net.forward
    images = torch.randn(5, 3, 8, 8)
    features = penultimate_features(holder, images)
    assert torch.allclose(features, holder.net.body(images))

    holder.net = SimpleCNN(in_channels=3, num_classes=4, image_size=8)
    holder.forward = holder.net.forward
    assert penultimate_features(holder, images).shape == (5, 32 * 2 * 2)


def test_unnormalize_inverts_the_data_info_statistics():
    raw = torch.rand(2, 3, 4, 4)
    info = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.3, 0.4]}
    normalised = (raw - torch.tensor(info["mean"]).view(1, 3, 1, 1)) / torch.tensor(info["std"]).view(
        1, 3, 1, 1
    )
    assert torch.allclose(unnormalize(normalised, info), raw, atol=1e-6)
    scaled = unnormalize(normalised, {})  # no statistics: min-max per image
    assert float(scaled.amin()) == 0.0 and float(scaled.amax()) == 1.0


def test_track_yields_every_item_with_and_without_a_bar(capsys):
    assert list(track(range(5), "Counting")) == [0, 1, 2, 3, 4]
    assert "Counting: 5 done" in capsys.readouterr().out
    assert list(track(iter("abc"), "Letters", disable=True)) == ["a", "b", "c"]
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------- tiny Lightning modules
IGNORE = 255


class ToySegmentation(L.LightningModule):
    """Per-pixel logits; validation returns logits, test only class indices (both forms of the contract)."""

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"num_classes": 3, "ignore_index": IGNORE})
        self.net = nn.Conv2d(3, 3, 1)
        self.data_info = {"class_names": ["background", "cat", "dog"]}

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        images, masks = batch
        return F.cross_entropy(self(images), masks, ignore_index=IGNORE)

    def validation_step(self, batch, batch_idx):
        images, masks = batch
        return {"logits": self(images), "target": masks}

    def test_step(self, batch, batch_idx):
        return {"preds": self(batch[0]).argmax(dim=1)}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def segmentation_loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 5, 5, generator=generator)
    masks = torch.randint(0, 3, (6, 5, 5), generator=generator)
    masks[:, 0, :] = IGNORE  # one ignored row per mask
    return DataLoader(TensorDataset(images, masks), batch_size=3)


def tiny_trainer(tmp_path, callbacks) -> L.Trainer:
    return L.Trainer(
        max_epochs=1,
        logger=TensorBoardLogger(str(tmp_path), name="tb", version=""),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )


def test_confusion_matrix_counts_pixels_without_ignored_ones_for_segmentation(tmp_path):
    callback = ConfusionMatrixCallback(max_overhead=None)
    trainer = tiny_trainer(tmp_path, [callback])
    module = ToySegmentation()
    trainer.fit(module, train_dataloaders=segmentation_loader(), val_dataloaders=segmentation_loader())
    trainer.test(module, dataloaders=segmentation_loader())
    for stage in ("val", "test"):
        counts = callback.last_counts[stage]
        assert counts.shape == (3, 3)
        assert int(counts.sum()) == 6 * 4 * 5  # 6 masks of 5x5 minus one ignored row each
    masks = torch.cat([m for _, m in segmentation_loader()])
    truth_per_class = torch.bincount(masks[masks != IGNORE], minlength=3)
    assert torch.equal(callback.last_counts["test"].sum(dim=1), truth_per_class)
    assert sorted(p.name for p in (tmp_path / "confusion_matrix").iterdir()) == [
        "test.png",
        "val_epoch000.png",
    ]
    assert {"confusion_matrix/val", "confusion_matrix/test"} <= set(
        read_events(tmp_path / "tb").Tags()["images"]
    )


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def forward(self, x):
        if torch.jit.is_tracing():
            raise RuntimeError("this net cannot be traced")
        return self.layer(x)


class ToyRegression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = Untraceable()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return F.mse_loss(self(inputs), targets)

    def validation_step(self, batch, batch_idx):
        self.log("val/mse", F.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_an_untraceable_net_and_a_regression_task_only_cost_a_warning(tmp_path):
    data = TensorDataset(torch.randn(8, 4), torch.randn(8, 2))
    loader = DataLoader(data, batch_size=4)
    confusion = ConfusionMatrixCallback(max_overhead=None)
    trainer = tiny_trainer(tmp_path, [ModelGraph(), confusion])
    with pytest.warns(UserWarning) as records:
        trainer.fit(ToyRegression(), train_dataloaders=loader, val_dataloaders=loader)
    messages = " ".join(str(r.message) for r in records)
    assert "ModelGraph could not trace Untraceable" in messages
    assert "confusion" not in messages.lower()  # float targets: no confusion matrix, quietly
    assert trainer.current_epoch == 1 and confusion.last_counts == {}


def test_a_run_without_any_logger_warns_and_still_saves_the_confusion_pngs(tmp_path):
    confusion = ConfusionMatrixCallback(max_overhead=None)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        callbacks=[LearningRateMonitor(), ClassificationPredictionGrid(), confusion],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    with pytest.warns(UserWarning) as records:
        trainer.fit(
            ToySegmentation(), train_dataloaders=segmentation_loader(), val_dataloaders=segmentation_loader()
        )
    messages = [str(r.message) for r in records]
    assert any("LearningRateMonitor has no logger" in m for m in messages)
    # the figure callbacks have one warning per run: no logger takes images (TensorBoard, MLflow, W&B)
    assert sum("none of these loggers is configured" in m for m in messages) == 1
    assert (tmp_path / "confusion_matrix" / "val_epoch000.png").is_file()


# ---------------------------------------------------------------------------- sweep jobs in TensorBoard
def test_a_sweep_job_writes_tensorboard_under_its_overrides(tmp_path):
    """Issue 17, point 16: jobs are listed by their overrides, not as 0/tensorboard, 1/tensorboard."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from hydra.utils import instantiate
    from omegaconf import open_dict, read_write

    from tests.helpers import compose_cfg

    # paths and values holding a "/" stay out of the name
    overrides = [
        "optim.lr=0.1",
        "data.batch_size=32",
        f"paths.log_dir={tmp_path}",
        "tags=[a/b]",
        "hydra.sweep.dir=sw",
    ]
    cfg = compose_cfg(overrides, output_dir=tmp_path / "0")
    with read_write(cfg.hydra), open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    try:
        logger = instantiate(cfg.logger.tensorboard)
        assert Path(logger.log_dir) == tmp_path / "0" / "tensorboard" / "optim.lr=0.1,data.batch_size=32"
    finally:
        with read_write(cfg.hydra), open_dict(cfg):
            cfg.hydra.mode = RunMode.RUN
        HydraConfig.instance().set_config(cfg)
    single = instantiate(compose_cfg(overrides, output_dir=tmp_path / "single").logger.tensorboard)
    assert Path(single.log_dir) == tmp_path / "single" / "tensorboard"  # a single run: as before
