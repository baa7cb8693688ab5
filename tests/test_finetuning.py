"""Feature extraction then fine-tuning: the backbone is frozen (BatchNorm in eval) for the first epochs,
then unfrozen as its own param group; the head keeps its configured lr multiple throughout."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lit_vision.callbacks.finetuning import BackboneFreeze
from lit_vision.data.digits import DigitsDataModule
from lit_vision.tasks.classification import ClassificationTask

BASE_LR = 0.05
HEAD_MULTIPLE = 10.0


def mlp_task(scheduler=None) -> ClassificationTask:
    """An MLP with BatchNorm in its backbone (``layers``) and a linear ``head``."""
    return ClassificationTask(
        net={
            "_target_": "lit_vision.nets.mlp.MLP",
            "in_channels": 1,
            "image_size": 8,
            "num_classes": 10,
            "hidden": [32, 32],
            "batch_norm": True,
        },
        num_classes=10,
        optimizer={"_target_": "torch.optim.SGD", "lr": BASE_LR, "momentum": 0.9},
        scheduler=scheduler,
        lr_multipliers={"head": HEAD_MULTIPLE},
    )


class Recorder(Callback):
    """Per epoch: backbone/head weights and BN statistics at the start, group lrs and BN modes in training."""

    def __init__(self) -> None:
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.groups: list[dict[str, float]] = []
        self.bn_training: list[bool] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.snapshots.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            optimizer = trainer.optimizers[0]
            self.groups.append({g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)})
            self.bn_training.append(pl_module.net.layers[2].training)

    def on_train_end(self, trainer, pl_module) -> None:
        self.snapshots.append({k: v.detach().clone() for k, v in pl_module.net.state_dict().items()})


def fit(task, callback: BackboneFreeze, epochs: int) -> Recorder:
    recorder = Recorder()
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[callback, recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=4,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=DigitsDataModule(batch_size=32))
    return recorder


def changed(before: dict, after: dict, prefix: str) -> bool:
    return any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_backbone_frozen_then_unfrozen_with_its_own_lr():
    recorder = fit(mlp_task(), BackboneFreeze(unfreeze_at_epoch=2, backbone_lr_factor=0.1), epochs=4)
    snaps = recorder.snapshots  # start of epochs 0..3, then the end
    for epoch in (0, 1):  # frozen: weights, BN affine and BN running statistics all unchanged
        assert not changed(snaps[epoch], snaps[epoch + 1], "layers."), f"backbone moved in epoch {epoch}"
        assert changed(snaps[epoch], snaps[epoch + 1], "head."), f"head did not train in epoch {epoch}"
        assert recorder.bn_training[epoch] is False
        assert recorder.groups[epoch] == pytest.approx({"net.head": BASE_LR * HEAD_MULTIPLE})
    for epoch in (2, 3):  # unfrozen: the backbone trains, in its own group at 0.1 x base lr
        assert changed(snaps[epoch], snaps[epoch + 1], "layers.1."), f"backbone frozen in epoch {epoch}"
        assert changed(snaps[epoch], snaps[epoch + 1], "layers.2.running_mean")
        assert recorder.bn_training[epoch] is True
        assert recorder.groups[epoch] == pytest.approx(
            {"net.head": BASE_LR * HEAD_MULTIPLE, "backbone": BASE_LR * 0.1}
        )


def test_scheduler_drives_the_added_group_and_keeps_the_head_multiple():
    step = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1, "gamma": 0.5}
    recorder = fit(mlp_task(step), BackboneFreeze(unfreeze_at_epoch=2, backbone_lr_factor=1.0), epochs=4)
    for epoch, lrs in enumerate(recorder.groups):
        factor = 0.5**epoch
        assert lrs["net.head"] == pytest.approx(BASE_LR * HEAD_MULTIPLE * factor)
        if epoch >= 2:  # the backbone joins at the schedule's current factor, then follows it
            assert lrs["backbone"] == pytest.approx(BASE_LR * factor)
            assert lrs["net.head"] / lrs["backbone"] == pytest.approx(HEAD_MULTIPLE)


@pytest.mark.parametrize("mode", ["all", "none"])
def test_freeze_all_and_none(mode):
    recorder = fit(mlp_task(), BackboneFreeze(freeze=mode, unfreeze_at_epoch=1), epochs=2)
    moved = changed(recorder.snapshots[0], recorder.snapshots[-1], "layers.1.")
    assert moved is (mode == "none")
    assert all("backbone" not in g for g in recorder.groups)


def test_unknown_freeze_mode_is_rejected():
    with pytest.raises(ValueError, match="freeze must be one of"):
        BackboneFreeze(freeze="sometimes")


def test_resume_after_the_unfreeze_keeps_training_the_backbone(tmp_path):
    """A run resumed from a checkpoint written after the unfreeze restores the backbone group and trains it."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    step = {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1, "gamma": 0.5}

    def trainer(epochs: int, *callbacks) -> L.Trainer:
        return L.Trainer(
            max_epochs=epochs,
            callbacks=[BackboneFreeze(unfreeze_at_epoch=1, backbone_lr_factor=1.0), *callbacks],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_train_batches=2,
            limit_val_batches=1,
            num_sanity_val_steps=0,
            default_root_dir=tmp_path,
        )

    first = trainer(2, ModelCheckpoint(dirpath=tmp_path, save_last=True))
    first.fit(mlp_task(step), datamodule=DigitsDataModule(batch_size=32))
    recorder = Recorder()
    resumed = trainer(3, recorder)
    resumed.fit(mlp_task(step), datamodule=DigitsDataModule(batch_size=32), ckpt_path=tmp_path / "last.ckpt")
    assert changed(recorder.snapshots[0], recorder.snapshots[-1], "layers.1.")
    lrs = recorder.groups[0]
    assert lrs["backbone"] == pytest.approx(BASE_LR * 0.25)
    assert lrs["net.head"] == pytest.approx(HEAD_MULTIPLE * lrs["backbone"])
