"""Per-sample batch augmentation on the device: semantics of each op, config building, training-only use."""

from __future__ import annotations

import pytest
import torch

from lit_vision.data.batch_augment import (
    Cutout,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    build_batch_augment,
)
from lit_vision.errors import UserError


def ramp_batch(n: int = 64, c: int = 3, size: int = 8) -> torch.Tensor:
    """Every pixel unique within an image: value = 1 + row * size + col (+ 100 * channel)."""
    base = 1.0 + torch.arange(size * size, dtype=torch.float32).view(size, size)
    return torch.stack([base + 100 * ch for ch in range(c)]).expand(n, c, size, size).clone()


def test_random_crop_shifts_each_sample_and_pads_with_black_in_normalised_units():
    torch.manual_seed(0)
    op = RandomCrop(padding=2)
    op.set_normalization([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    images = ramp_batch()
    out = op(images)
    assert out.shape == images.shape
    black = (0.0 - 0.5) / 0.25
    offsets = set()
    for img in out:
        inside = img[0] != black
        rows, cols = inside.nonzero(as_tuple=True)
        top, left = int(rows.min()), int(cols.min())
        # the visible part is an unaltered window of the source image
        window = img[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        first = int(window[0, 0, 0].item()) - 1
        r0, c0 = divmod(first, 8)
        h, w = window.shape[-2:]
        assert torch.equal(window, images[0, :, r0 : r0 + h, c0 : c0 + w])
        offsets.add((top - r0, left - c0))
    assert len(offsets) > 5  # independent offsets per sample, not one per batch
    assert all(abs(dy) <= 2 and abs(dx) <= 2 for dy, dx in offsets)


def test_random_crop_reflect_and_smaller_size():
    out = RandomCrop(size=6, padding=1, padding_mode="reflect")(ramp_batch(n=4))
    assert out.shape == (4, 3, 6, 6)
    with pytest.raises(UserError, match="larger than the padded image"):
        RandomCrop(size=20, padding=1)(ramp_batch(n=2))


def test_horizontal_flip_is_per_sample():
    torch.manual_seed(1)
    images = ramp_batch(n=200)
    out = RandomHorizontalFlip(p=0.5)(images)
    flipped = torch.tensor([torch.equal(o, images[0].flip(-1)) for o in out])
    kept = torch.tensor([torch.equal(o, images[0]) for o in out])
    assert (flipped | kept).all()
    assert 60 < int(flipped.sum()) < 140


def test_affine_identity_and_translation_fill():
    images = ramp_batch(n=8)
    same = RandomAffine(degrees=0)(images)
    assert torch.allclose(same, images, atol=1e-4)
    op = RandomAffine(degrees=0, translate=[0.25, 0.25], fill=0.0)
    op.set_normalization([0.0], [1.0])
    torch.manual_seed(3)
    moved = op(images)
    assert moved.shape == images.shape and not torch.allclose(moved, images)
    assert (moved >= -1e-4).all()  # uncovered pixels take the fill (0), never negative garbage


def test_cutout_blanks_one_square_per_sample():
    torch.manual_seed(2)
    op = Cutout(size=4, p=1.0, fill=0.0)
    op.set_normalization([0.0], [1.0])
    out = op(ramp_batch(n=32, c=1, size=16))
    blank = (out == 0).sum(dim=(1, 2, 3))
    assert (blank > 0).all() and (blank <= 16).all()


def test_build_from_config_items_and_errors():
    aug = build_batch_augment(
        [{"RandomCrop": {"padding": 4}}, "RandomHorizontalFlip", {"Cutout": {"size": 8}}]
    )
    assert [type(op).__name__ for op in aug.ops] == ["RandomCrop", "RandomHorizontalFlip", "Cutout"]
    assert build_batch_augment([]) is None
    with pytest.raises(UserError, match="unknown batch augmentation 'ColorJitter'"):
        build_batch_augment(["ColorJitter"])
    with pytest.raises(UserError, match="RandomCrop"):
        build_batch_augment([{"RandomCrop": {"padding": 4, "bogus": 1}}])


def test_augment_runs_in_training_only(tmp_path):
    from lit_vision.data.torchvision_sets import CIFAR10DataModule
    from tests.fakes import make_cifar10

    dm = CIFAR10DataModule(
        root=str(make_cifar10(tmp_path)), batch_size=16, augment=[{"RandomCrop": {"padding": 4}}]
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))

    class FakeTrainer:
        training = False

    dm.trainer = FakeTrainer()
    evaluated, _ = dm.on_after_batch_transfer(batch, 0)
    assert torch.allclose(evaluated, dm.normalize(batch[0]))
    FakeTrainer.training = True
    torch.manual_seed(0)
    trained, _ = dm.on_after_batch_transfer(batch, 0)
    assert trained.shape == evaluated.shape and not torch.allclose(trained, evaluated)
