"""RandAugment, TrivialAugmentWide, AutoAugment and RandomErasing in data.augment: per-sample parameters."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from lit_vision.data.batch_augment import build_batch_augment
from lit_vision.errors import UserError

MEAN, STD = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]


def same_image_batch(n: int = 32, size: int = 24) -> torch.Tensor:
    """``n`` copies of one normalised picture with structure (a gradient and a bright square)."""
    torch.manual_seed(123)
    ramp = torch.linspace(0.1, 0.9, size)
    picture = (ramp.view(1, 1, size) * ramp.view(1, size, 1)).expand(3, size, size).clone()
    picture[:, 6:12, 8:16] = torch.tensor([0.9, 0.2, 0.5]).view(3, 1, 1)
    normalised = (picture - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    return normalised.expand(n, 3, size, size).clone()


def augment(item):
    aug = build_batch_augment([item])
    aug.set_normalization(MEAN, STD)
    return aug


def distinct_outputs(out: torch.Tensor) -> int:
    return len({tuple(sample.flatten().round(decimals=4).tolist()) for sample in out})


@pytest.mark.parametrize(
    "item",
    [
        "RandAugment",
        {"RandAugment": {"num_ops": 1, "magnitude": 12}},
        "TrivialAugmentWide",
        {"AutoAugment": {"policy": "cifar10"}},
        {"AutoAugment": {"policy": "imagenet"}},
        {"RandomErasing": {"p": 1.0}},
        {"RandomErasing": {"p": 1.0, "value": "random"}},
    ],
)
def test_every_sample_gets_its_own_parameters(item):
    images = same_image_batch()
    torch.manual_seed(0)
    out = augment(item)(images)
    assert out.shape == images.shape and torch.isfinite(out).all()
    # torchvision's transform on the batch changes every sample the same way: one distinct output
    name = item if isinstance(item, str) else next(iter(item))
    kwargs = {} if isinstance(item, str) else dict(item[name])
    if name == "AutoAugment":
        kwargs["policy"] = v2.AutoAugmentPolicy[kwargs["policy"].upper()]
    torch.manual_seed(0)
    assert distinct_outputs(getattr(v2, name)(**kwargs)(images)) == 1
    assert distinct_outputs(out) >= len(images) // 3


def test_policies_keep_the_normalisation_and_p_zero_is_the_identity():
    images = same_image_batch()
    assert torch.allclose(augment({"TrivialAugmentWide": {"p": 0.0}})(images), images, atol=1e-5)
    torch.manual_seed(0)
    out = augment({"RandAugment": {"p": 0.5}})(images)
    unchanged = [torch.allclose(a, b, atol=1e-5) for a, b in zip(out, images, strict=True)]
    assert any(unchanged) and not all(unchanged)
    # pixels stay in the image range [0, 1] once un-normalised
    pixels = out * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_a_sample_equals_torchvision_op_applied_alone():
    """Each sample of a RandAugment(num_ops=1) batch is one of torchvision's own ops on the picture."""
    images = same_image_batch(n=16)
    op = augment({"RandAugment": {"num_ops": 1}}).ops[0]
    torch.manual_seed(3)
    out = op(images)
    reference = v2.RandAugment(num_ops=1)
    picture = op.to_unit(images[:1])
    candidates = [op.from_unit(picture)]
    size = images.shape[-1]
    for name, (magnitudes, signed) in reference._AUGMENTATION_SPACE.items():
        values = magnitudes(31, size, size)
        value = 0.0 if values is None else float(values[9])
        for sign in (1, -1) if signed else (1,):
            changed = reference._apply_image_or_video_transform(
                picture, name, sign * value, interpolation=reference.interpolation, fill=reference._fill
            )
            candidates.append(op.from_unit(changed))
    for sample in out:
        assert any(torch.allclose(sample, c[0], atol=1e-4) for c in candidates)


def test_random_erasing_erases_one_box_per_sample_within_the_scale():
    images = same_image_batch(n=64, size=32)
    torch.manual_seed(0)
    out = augment({"RandomErasing": {"p": 1.0, "value": 0, "scale": [0.05, 0.2]}})(images)
    erased = (out == 0) & (images != 0)
    share = erased[:, 0].float().mean(dim=(1, 2))
    assert ((share > 0.03) & (share < 0.23)).all()
    tops = {int(e[0].any(dim=1).float().argmax()) for e in erased}
    assert len(tops) > 5  # boxes at different places
    # the erased pixels of a sample form one rectangle
    for e in erased[:, 0]:
        rows, cols = e.any(dim=1), e.any(dim=0)
        assert int(e.sum()) == int(rows.sum()) * int(cols.sum())


def test_random_erasing_p_leaves_samples_untouched():
    images = same_image_batch(n=200)
    torch.manual_seed(0)
    out = augment({"RandomErasing": {"p": 0.5}})(images)
    touched = (out != images).flatten(1).any(dim=1).float().mean()
    assert 0.35 < float(touched) < 0.65


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({"RandAugment": {"num_ops": -1}}, "RandAugment"),
        ({"TrivialAugmentWide": {"bins": 3}}, "TrivialAugmentWide"),
        ({"AutoAugment": {"policy": "mnist"}}, "policy 'mnist'"),
        ({"RandomErasing": {"scale": [0.5, 2.0]}}, "RandomErasing"),
        ({"RandomErasing": {"value": "noise"}}, "RandomErasing"),
    ],
)
def test_bad_options_are_user_errors_naming_the_item(item, named):
    with pytest.raises(UserError, match=f"data.augment item .*{named}"):
        build_batch_augment([item])


def test_random_erasing_value_must_fit_the_channels():
    with pytest.raises(UserError, match="RandomErasing: value has 2 numbers"):
        augment({"RandomErasing": {"value": [0.0, 1.0]}})(same_image_batch())


def test_training_with_trivial_augment_and_random_erasing_on_digits(tmp_path):
    import lightning as L

    from lit_vision.data.digits import DigitsDataModule
    from lit_vision.tasks.classification import ClassificationTask

    dm = DigitsDataModule(batch_size=32, augment=["TrivialAugmentWide", {"RandomErasing": {"p": 0.5}}])
    net = {"_target_": "lit_vision.nets.mlp.MLP", "in_features": 64, "num_classes": 10, "hidden": [16]}
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(ClassificationTask(net=net, num_classes=10), datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss_epoch"])
