"""The digits DataModule: real data, seeded stratified splits, uint8 storage, device-side normalisation."""

from __future__ import annotations

import numpy as np
import torch

from lit_vision.data.digits import DigitsDataModule
from lit_vision.data.splits import split_indices


def test_split_covers_everything_once_and_is_stratified():
    labels = np.repeat(np.arange(4), 25)
    parts = split_indices(len(labels), [0.6, 0.2, 0.2], seed=3, labels=labels)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(100))
    for part, frac in zip(parts, [0.6, 0.2, 0.2], strict=True):
        counts = np.bincount(labels[part], minlength=4)
        assert (counts == round(25 * frac)).all()


def test_split_depends_on_seed_only():
    a = split_indices(50, [0.8, 0.2], seed=1)
    b = split_indices(50, [0.8, 0.2], seed=1)
    c = split_indices(50, [0.8, 0.2], seed=2)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert not all((x == y).all() for x, y in zip(a, c, strict=True))


def test_digits_splits_and_batches():
    dm = DigitsDataModule(batch_size=32, split_seed=0)
    dm.setup("fit")
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sum(sizes.values()) == 1797
    assert abs(sizes["test"] - 0.15 * 1797) < 12
    images, labels = next(iter(dm.train_dataloader()))
    assert images.dtype == torch.uint8 and images.shape == (32, 1, 8, 8)
    assert labels.dtype == torch.int64 and int(labels.max()) < 10
    normalised, same = dm.on_after_batch_transfer((images, labels), 0)
    assert normalised.dtype == torch.float32 and same is labels
    # normalised with the training split's own statistics: roughly zero mean, unit std over the split
    full = dm.normalize(dm.splits["train"].images)
    assert abs(full.mean().item()) < 1e-3 and abs(full.std().item() - 1) < 1e-2


def test_shuffle_order_depends_on_epoch_and_is_reproducible():
    dm = DigitsDataModule(batch_size=64, split_seed=5)
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = [labels.tolist() for _, labels in loader]
    loader.sampler.set_epoch(1)
    second = [labels.tolist() for _, labels in loader]
    loader.sampler.set_epoch(0)
    again = [labels.tolist() for _, labels in loader]
    assert first == again and first != second
    assert sum(len(b) for b in first) == len(dm.splits["train"])
