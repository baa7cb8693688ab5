"""Segmentation task: losses and scores against hand-computed values, heads, ignore_index, fast_dev_run
for the UNet and an smp model through the project's configs, and reloading a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from lit_vision.errors import UserError
from lit_vision.nets.unet import UNet
from lit_vision.runs.run import train
from lit_vision.tasks.segmentation import SegmentationTask
from lit_vision.tasks.segmentation_losses import TERMS, SegmentationLoss
from lit_vision.tasks.segmentation_metrics import scores_from_confusion
from tests.fakes.segmentation import make_labelme_dataset
from tests.helpers import compose_cfg, without_hydra

UNET = {"_target_": "lit_vision.nets.unet.UNet", "in_channels": 3, "out_channels": None, "init_features": 4}


# ----------------------------------------------------------------------------- losses
def binary_case():
    """Logits 0 (p = 0.5) on a 2x2 mask with two cats, one background and one ignored pixel."""
    return torch.zeros(1, 1, 2, 2), torch.tensor([[[1, 0], [255, 1]]])


def test_soft_dice_with_smoothing_matches_the_tutorial_formula():
    logits, target = binary_case()
    # valid pixels: p = 0.5, 0.5, 0.5; g = 1, 0, 1 -> I = 1, sum p = 1.5, sum g = 2
    expected = 1 - (2 * 1.0 + 1) / (1.5 + 2 + 1)
    loss = SegmentationLoss("dice", mode="binary", smooth=1.0)(logits, target)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_bce_averages_over_non_ignored_pixels_and_sums_with_dice():
    logits, target = binary_case()
    assert SegmentationLoss("bce", mode="binary")(logits, target).item() == pytest.approx(
        math.log(2), abs=1e-6
    )
    both = SegmentationLoss("bce_dice", mode="binary", smooth=1.0)(logits, target).item()
    assert both == pytest.approx(math.log(2) + 1 - 3 / 4.5, abs=1e-6)
    weighted = SegmentationLoss("bce+dice", mode="binary", weights=[0.5, 2.0])(logits, target).item()
    assert weighted == pytest.approx(0.5 * math.log(2) + 2 * (1 - 3 / 4.5), abs=1e-6)


def test_jaccard_and_multiclass_cross_entropy_by_hand():
    logits, target = binary_case()
    # soft Jaccard: (I + 1) / (sum p + sum g - I + 1) = 2 / 3.5
    assert SegmentationLoss("jaccard", mode="binary")(logits, target).item() == pytest.approx(
        1 - 2 / 3.5, abs=1e-6
    )
    multi = torch.tensor([[[[2.0]], [[0.0]], [[0.0]]]]).repeat(1, 1, 1, 2)  # 3 classes, 1x2 pixels
    target3 = torch.tensor([[[0, 255]]])
    ce = SegmentationLoss("ce", mode="multiclass")(multi, target3).item()
    assert ce == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 2)), abs=1e-6)


@pytest.mark.parametrize("mode", ["binary", "multiclass"])
@pytest.mark.parametrize("name", [*TERMS, "bce_dice", "focal+dice"])
def test_every_loss_ignores_ignore_index_pixels(name, mode):
    torch.manual_seed(0)
    channels = 1 if mode == "binary" else 3
    logits = torch.randn(2, channels, 6, 6, requires_grad=True)
    target = torch.randint(0, 2 if mode == "binary" else 3, (2, 6, 6))
    target[:, :2] = 255
    loss = SegmentationLoss(name, mode=mode)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() >= 0
    assert logits.grad[:, :, :2].abs().max() == 0, "ignored pixels must get no gradient"
    assert logits.grad[:, :, 2:].abs().max() > 0


def test_unknown_loss_and_weight_count_are_user_errors():
    with pytest.raises(UserError, match="unknown loss"):
        SegmentationLoss("dice+hinge")
    with pytest.raises(UserError, match="one weight per term"):
        SegmentationLoss("bce+dice", weights=[1.0])


# ----------------------------------------------------------------------------- scores
def test_scores_from_a_confusion_matrix_by_hand():
    confmat = torch.tensor([[5, 1], [2, 4]])  # rows: target, columns: prediction
    scores = scores_from_confusion(confmat, ["background", "cat"])
    assert scores["iou_background"].item() == pytest.approx(5 / 8)
    assert scores["iou_cat"].item() == pytest.approx(4 / 7)
    assert scores["dice_cat"].item() == pytest.approx(8 / 11)
    assert scores["iou"].item() == pytest.approx(4 / 7)  # mIoU without background (the tutorial's)
    assert scores["pixel_acc"].item() == pytest.approx(9 / 12)
    with_background = scores_from_confusion(confmat, exclude_background=False)
    assert with_background["iou"].item() == pytest.approx((5 / 8 + 4 / 7) / 2)


def test_absent_class_has_no_score_and_stays_out_of_the_mean():
    confmat = torch.tensor([[4, 0, 0], [0, 2, 1], [0, 0, 0]])
    scores = scores_from_confusion(confmat, ["bg", "a", "b"])
    assert math.isnan(scores["iou_b"].item()) is False  # b was predicted once: IoU 0
    assert scores["iou_b"].item() == 0.0
    confmat = torch.tensor([[4, 0, 0], [0, 2, 0], [0, 0, 0]])
    scores = scores_from_confusion(confmat, ["bg", "a", "b"])
    assert math.isnan(scores["iou_b"].item()) and scores["iou"].item() == pytest.approx(1.0)


def test_task_metrics_ignore_pixels_and_log_per_class(tmp_path):
    task = SegmentationTask(net=UNET, num_classes=2)
    preds = torch.tensor([[[1, 1], [0, 1]]])
    target = torch.tensor([[[1, 0], [255, 1]]])
    task.val_metrics["confusion"].update(preds, target)
    confmat = task.val_metrics["confusion"].compute()
    assert confmat.tolist() == [[0, 1], [0, 2]]  # the ignored pixel is not counted


# ----------------------------------------------------------------------------- heads and outputs
def test_binary_and_multiclass_heads():
    binary = SegmentationTask(net=UNET, num_classes=2)
    assert binary.hparams.binary and binary.net.head.out_channels == 1
    multi = SegmentationTask(net=UNET, num_classes=4)
    assert not multi.hparams.binary and multi.net.head.out_channels == 4
    forced = SegmentationTask(net=UNET, num_classes=2, binary=False)
    assert forced.net.head.out_channels == 2
    with pytest.raises(UserError, match="out_channels=3"):
        SegmentationTask(net={**UNET, "out_channels": 3}, num_classes=2)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_predict_step_returns_probabilities_and_masks(num_classes):
    task = SegmentationTask(net=UNET, num_classes=num_classes).eval()
    with torch.no_grad():
        out = task.predict_step(torch.randn(2, 3, 20, 24), 0)
    assert out["probs"].shape == (2, num_classes, 20, 24) and out["masks"].shape == (2, 20, 24)
    assert torch.allclose(out["probs"].sum(dim=1), torch.ones(2, 20, 24), atol=1e-5)
    assert torch.equal(out["masks"], out["probs"].argmax(dim=1))  # threshold 0.5 == argmax for 2 classes


def test_unet_registers_every_layer_and_pads_odd_sizes():
    net = UNet(in_channels=3, out_channels=2, init_features=4)
    batch_norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(batch_norms) == 2 * (4 + 1 + 4)  # two per block: 4 encoder, bottleneck, 4 decoder
    assert all(name in net.state_dict() for name in ("encoders.0.1.running_mean", "bottleneck.4.weight"))
    assert net(torch.randn(1, 3, 37, 50)).shape == (1, 2, 37, 50)


# ----------------------------------------------------------------------------- training through the configs
def run_cfg(tmp_path, overrides):
    root = make_labelme_dataset(tmp_path / "data", n=6, size=(32, 32))
    cfg = compose_cfg(
        [
            "data=segmentation_folder",
            f"data.root={root}",
            "data.image_size=32",
            "data.num_workers=0",
            "logger=none",
            *overrides,
        ],
        output_dir=tmp_path / "run",
    )
    return train(without_hydra(cfg))


def test_fast_dev_run_unet(tmp_path):
    metrics, _ = run_cfg(tmp_path, ["model=unet", "model.net.init_features=4", "debug=fast_dev_run"])
    for key in ("test/iou", "test/dice", "test/pixel_acc", "test/iou_cat", "train/loss_epoch"):
        assert key in metrics, key


def test_fast_dev_run_smp_resnet18(tmp_path):
    metrics, _ = run_cfg(
        tmp_path,
        [
            "model=smp",
            "model.net.encoder_name=resnet18",
            "model.net.encoder_weights=null",
            "debug=fast_dev_run",
        ],
    )
    assert "test/iou" in metrics and 0.0 <= metrics["test/pixel_acc"] <= 1.0


def test_checkpoint_reloads_without_config(tmp_path):
    metrics, value = run_cfg(
        tmp_path,
        ["model=unet", "model.net.init_features=4", "trainer.max_epochs=1", "callbacks=[model_checkpoint]"],
    )
    assert value == metrics["best_model_score"]
    task = SegmentationTask.load_from_checkpoint(metrics["best_model_path"], weights_only=False).eval()
    assert task.data_info["class_names"] == ["background", "cat"] and task.data_info["image_size"] == [32, 32]
    assert task.hparams.binary and task.net.head.out_channels == 1
    with torch.no_grad():
        assert task.predict_step(torch.randn(1, 3, 32, 32), 0)["masks"].shape == (1, 32, 32)


def test_every_segmentation_experiment_builds(tmp_path):
    for name in ("cats_unet", "cats_tutorial", "oxford_pets_smp"):
        cfg = compose_cfg([f"experiment={name}"], output_dir=tmp_path)
        task = instantiate(cfg.model)
        assert isinstance(task, SegmentationTask) and task.hparams.binary
