"""MixUp / CutMix (data.mix): soft-target mass, hard labels for the metrics, training-only, config errors."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lit_vision.data.digits import DigitsDataModule
from lit_vision.data.mixing import MixSettings, parse_mix
from lit_vision.errors import UserError
from lit_vision.tasks.classification import ClassificationTask
from lit_vision.tasks.soft_targets import soft_target_loss

CLASSES = 6


def constant_batch(n: int = 6, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Image k is filled with the value k + 1 and has label k: a mixed pixel tells where it came from."""
    values = torch.arange(1, n + 1, dtype=torch.float32).view(n, 1, 1, 1)
    return values.expand(n, 3, size, size).clone(), torch.arange(n) % CLASSES


def test_mixup_soft_targets_sum_to_one_and_weigh_like_the_pixels():
    mix = MixSettings(mixup_alpha=0.4).build(CLASSES)
    images, labels = constant_batch()
    for seed in range(5):
        torch.manual_seed(seed)
        mixed, hard, soft = mix(images, labels)
        assert torch.equal(hard, labels)
        assert soft.shape == (6, CLASSES) and torch.allclose(soft.sum(dim=1), torch.ones(6))
        # every image k is lam * image k + (1 - lam) * image k-1 (torchvision rolls the batch by one)
        partner = labels.roll(1)
        lam = soft[torch.arange(6), labels]
        assert torch.allclose(soft[torch.arange(6), partner], 1 - lam)
        expected = lam.view(6, 1, 1, 1) * images + (1 - lam).view(6, 1, 1, 1) * images.roll(1, 0)
        assert torch.allclose(mixed, expected, atol=1e-5)
        assert torch.allclose(lam, lam[0].expand(6))  # one weight per batch, as torchvision draws it


def test_cutmix_soft_targets_match_the_pasted_area():
    mix = MixSettings(cutmix_alpha=1.0).build(CLASSES)
    images, labels = constant_batch(size=16)
    seen_partial = False
    for seed in range(8):
        torch.manual_seed(seed)
        mixed, _, soft = mix(images, labels)
        assert torch.allclose(soft.sum(dim=1), torch.ones(6))
        own = (mixed == images).float().mean(dim=(1, 2, 3))
        assert torch.allclose(soft[torch.arange(6), labels], own, atol=1e-6)
        seen_partial |= bool(((own > 0) & (own < 1)).any())
    assert seen_partial


def test_uint8_batches_become_unit_floats_under_mixup_and_stay_uint8_under_cutmix():
    images, labels = constant_batch()
    images = (images * 40).to(torch.uint8)
    mixed, _, _ = MixSettings(mixup_alpha=1.0).build(CLASSES)(images, labels)
    assert mixed.dtype == torch.float32 and 0.0 < float(mixed.max()) <= 1.0
    cut, _, _ = MixSettings(cutmix_alpha=1.0).build(CLASSES)(images, labels)
    assert cut.dtype == torch.uint8


def test_prob_leaves_some_batches_unmixed_with_one_hot_targets():
    mix = MixSettings(mixup_alpha=1.0, prob=0.5).build(CLASSES)
    images, labels = constant_batch()
    torch.manual_seed(0)
    outcomes = []
    for _ in range(40):
        mixed, _, soft = mix(images, labels)
        one_hot = torch.equal(soft, F.one_hot(labels, CLASSES).float())
        assert one_hot == torch.equal(mixed, images)
        outcomes.append(one_hot)
    assert any(outcomes) and not all(outcomes)


def test_both_alphas_switch_between_mixup_and_cutmix():
    mix = MixSettings(mixup_alpha=1.0, cutmix_alpha=1.0, switch_prob=0.5).build(CLASSES)
    torch.manual_seed(0)
    chosen = {type(mix.choose()).__name__ for _ in range(40)}
    assert chosen == {"MixUp", "CutMix"}


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"mixup_alph": 0.2}, "data.mix.mixup_alph"),
        ({"mixup_alpha": -1}, "data.mix.mixup_alpha"),
        ({"cutmix_alpha": "big"}, "data.mix.cutmix_alpha"),
        ({"mixup_alpha": 0.2, "prob": 1.5}, "data.mix.prob"),
        ({"cutmix_alpha": 1.0, "switch_prob": -0.1}, "data.mix.switch_prob"),
        (0.2, "data.mix"),
    ],
)
def test_config_errors_name_the_key(config, named):
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        parse_mix(config)
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        DigitsDataModule(mix=config)


def test_zero_alphas_or_zero_prob_switch_mixing_off():
    assert parse_mix(None) is None
    assert parse_mix({"mixup_alpha": 0.0, "cutmix_alpha": 0.0, "prob": 1.0, "switch_prob": 0.5}) is None
    assert parse_mix({"mixup_alpha": 0.2, "prob": 0.0}) is None


def tiny_task(loss: dict | None = None) -> ClassificationTask:
    net = {
        "_target_": "lit_vision.nets.mlp.MLP",
        "in_features": 3 * 8 * 8,
        "num_classes": CLASSES,
        "hidden": [8],
    }
    return ClassificationTask(net=net, num_classes=CLASSES, loss=loss)


def test_loss_uses_soft_targets_and_metrics_the_hard_labels():
    task = tiny_task()
    images, labels = constant_batch()
    torch.manual_seed(0)
    mixed, hard, soft = MixSettings(mixup_alpha=1.0).build(CLASSES)(images, labels)
    outputs, (_predictions, target) = task.model_step((mixed, hard, soft), "train")
    logits = task(mixed)
    assert torch.equal(target, labels) and torch.equal(outputs["target"], labels)
    assert target.dtype == torch.long
    expected = -(soft * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert torch.allclose(outputs["loss"], expected, atol=1e-5)
    assert not torch.allclose(outputs["loss"], F.cross_entropy(logits, labels), atol=1e-4)


def test_nll_loss_reads_soft_targets_like_cross_entropy_and_other_losses_are_refused():
    logits = torch.randn(4, CLASSES)
    soft = torch.softmax(torch.randn(4, CLASSES), dim=1)
    weight = torch.rand(CLASSES) + 0.5
    expected = torch.nn.CrossEntropyLoss(weight=weight)(logits, soft)
    got = soft_target_loss(torch.nn.NLLLoss(weight=weight), logits.log_softmax(dim=1), soft)
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(UserError, match=r"model\.loss MultiMarginLoss"):
        soft_target_loss(torch.nn.MultiMarginLoss(), logits, soft)


class BatchRecorder(L.Callback):
    def __init__(self) -> None:
        self.train: list = []
        self.val: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.train.append(batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.val.append(batch)


def test_in_memory_training_batches_are_mixed_on_the_device_and_validation_never(tmp_path):
    dm = DigitsDataModule(batch_size=32, mix={"mixup_alpha": 0.4, "cutmix_alpha": 1.0})
    net = {"_target_": "lit_vision.nets.mlp.MLP", "in_features": 64, "num_classes": 10, "hidden": [16]}
    task = ClassificationTask(net=net, num_classes=10)
    recorder = BatchRecorder()
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=2,
        callbacks=[recorder],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(task, datamodule=dm)
    assert len(recorder.train) == 4
    for _images, labels, soft in recorder.train:
        assert labels.dtype == torch.long and soft.shape == (len(labels), 10)
        assert torch.allclose(soft.sum(dim=1), torch.ones(len(labels)))
    assert any(bool((soft.max(dim=1).values < 1).any()) for _, _, soft in recorder.train)
    assert recorder.val and all(len(batch) == 2 for batch in recorder.val)
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"])


def test_file_sets_mix_in_the_collate_for_training_only(tmp_path):
    from lit_vision.data.image_folder import ImageFolderDataModule
    from tests.fakes import make_image_folder

    make_image_folder(tmp_path, per_class={"train": 4, "valid": 2})
    dm = ImageFolderDataModule(
        root=str(tmp_path),
        image_size=32,
        num_workers=0,
        batch_size=6,
        train_transforms=[{"Resize": {"size": [32, 32]}}],
        eval_transforms=[{"Resize": {"size": [32, 32]}}],
        mix={"mixup_alpha": 1.0},
    )
    dm.setup("fit")
    torch.manual_seed(0)
    images, labels, soft = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.float32 and float(images.max()) <= 1.0
    assert labels.dtype == torch.long and torch.allclose(soft.sum(dim=1), torch.ones(len(labels)))
    assert soft.shape == (len(labels), dm.num_classes)
    normalised, hard, _ = dm.on_after_batch_transfer((images, labels, soft), 0)
    assert torch.allclose(normalised, dm.normalize(images)) and torch.equal(hard, labels)
    assert len(next(iter(dm.val_dataloader()))) == 2


def test_regression_refuses_mixing(tmp_path):
    from lit_vision.data.image_regression import ImageRegressionDataModule

    with pytest.raises(UserError, match=r"data\.mix"):
        ImageRegressionDataModule(root=str(tmp_path), mix={"mixup_alpha": 0.2})


@pytest.mark.parametrize(
    "data",
    ["mnist", "fashion_mnist", "cifar10", "cifar100", "digits", "image_folder", "flowers", "image_list"],
)
def test_every_classification_data_config_takes_mix_overrides(data, tmp_path):
    from hydra.utils import instantiate

    from tests.helpers import compose_cfg

    cfg = compose_cfg([f"data={data}", "data.mix.mixup_alpha=0.2", "data.mix.prob=0.5"], tmp_path)
    dm = instantiate(cfg.data)
    assert dm.mix_settings == MixSettings(mixup_alpha=0.2, prob=0.5)
    off = instantiate(compose_cfg([f"data={data}"], tmp_path).data)
    assert off.mix_settings is None
