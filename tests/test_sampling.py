"""data.sampler=balanced: class-balanced draws seeded by epoch, resumable mid-epoch, sharded under DDP."""

from __future__ import annotations

import hydra
import pytest
import torch
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import open_dict

from lit_vision.data.digits import DigitsDataModule
from lit_vision.data.in_memory import InMemoryImageDataModule
from lit_vision.data.resumable import EpochSampler
from lit_vision.data.sampling import BalancedSampler
from lit_vision.errors import UserError
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra

# 10:1 imbalance: 1000 samples of class 0, 100 of class 1
IMBALANCED = torch.tensor([0] * 1000 + [1] * 100)


def test_balanced_draw_is_near_uniform_over_classes_on_a_10_to_1_set():
    sampler = BalancedSampler(IMBALANCED, seed=3)
    drawn = IMBALANCED[list(sampler)]
    counts = torch.bincount(drawn, minlength=2)
    assert len(drawn) == len(IMBALANCED)  # an epoch as long as with shuffling
    assert abs(counts[1].item() / len(drawn) - 0.5) < 0.05  # was 100 / 1100 = 0.09 without it


def test_given_class_weights_set_the_class_shares():
    drawn = IMBALANCED[list(BalancedSampler(IMBALANCED, class_weights=[1.0, 30.0], seed=0))]
    # class 1 share = 100*30 / (1000*1 + 100*30) = 0.75
    assert abs((drawn == 1).float().mean().item() - 0.75) < 0.05
    only_zero = IMBALANCED[list(BalancedSampler(IMBALANCED, class_weights=[1.0, 0.0]))]
    assert (only_zero == 0).all()


def test_draw_depends_on_seed_and_epoch_only():
    a, b = BalancedSampler(IMBALANCED, seed=1), BalancedSampler(IMBALANCED, seed=1)
    torch.manual_seed(123)  # the global RNG plays no part
    first = list(a)
    torch.manual_seed(456)
    assert list(b) == first
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(BalancedSampler(IMBALANCED, seed=2)) != first


def test_each_ddp_rank_gets_a_disjoint_share_of_the_same_draw():
    sampler = BalancedSampler(IMBALANCED, seed=7)
    sampler.set_epoch(5)
    full = list(sampler)
    sampler.set_epoch(0)
    shards = []
    for rank in range(2):
        # what Lightning builds under DDP for a custom sampler (shuffle=False: the sampler shuffles)
        wrapped = DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False)
        wrapped.set_epoch(5)
        shards.append(list(wrapped))
    assert sampler.epoch == 5  # the epoch reaches the balanced sampler
    assert len(shards[0]) == len(shards[1]) == len(full) // 2
    # rank r takes positions r, r+2, ... of the one draw: together exactly the draw, nothing taken twice
    assert shards[0] == full[0::2] and shards[1] == full[1::2]
    assert shards[0] != shards[1]
    for shard in shards:
        counts = torch.bincount(IMBALANCED[shard], minlength=2)
        assert abs(counts[1].item() / len(shard) - 0.5) < 0.07  # each rank is balanced too


class ImbalancedDigits(InMemoryImageDataModule):
    """The real digits with class 3 cut to a tenth in every split."""

    def load_splits(self):
        dm = DigitsDataModule(split_seed=0)
        dm.setup("fit")
        out = {}
        for stage, dataset in dm.splits.items():
            labels = dataset.labels
            keep = torch.ones(len(labels), dtype=torch.bool)
            minority = torch.nonzero(labels == 3).flatten()
            keep[minority[len(minority) // 10 :]] = False
            out[stage] = (dataset.images[keep], labels[keep])
        return out


def minority_share(sampler: str) -> float:
    dm = ImbalancedDigits(batch_size=50, split_seed=0, num_classes=10, sampler=sampler)
    dm.setup("fit")
    seen = torch.cat([labels for _, labels in dm.train_dataloader()])
    assert len(seen) == len(dm.splits["train"])
    return (seen == 3).float().mean().item()


def test_the_model_sees_the_minority_class_about_ten_times_more_often():
    shuffled, balanced = minority_share("shuffle"), minority_share("balanced")
    assert shuffled < 0.015  # ~ 1/10 of a tenth
    assert 0.07 < balanced < 0.13  # ~ a tenth, like every other class
    assert balanced / shuffled > 6


def test_balanced_loader_resumes_mid_epoch_in_the_same_order():
    dm = DigitsDataModule(batch_size=64, split_seed=3, sampler="balanced")
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, BalancedSampler)
    loader.sampler.set_epoch(2)
    full = [labels.tolist() for _, labels in loader]

    resumed = dm.train_dataloader()
    resumed.load_state_dict({"epoch": 2, "batches": 5})
    resumed.sampler.set_epoch(2)
    assert [labels.tolist() for _, labels in resumed] == full[5:]
    assert isinstance(dm.val_dataloader().sampler, EpochSampler)  # evaluation is never resampled


def test_bad_sampler_options_name_the_key_and_the_fix():
    with pytest.raises(UserError, match=r"data\.sampler must be one of shuffle, balanced, got 'balance'"):
        DigitsDataModule(sampler="balance")
    with pytest.raises(UserError, match=r"data\.class_weights is only read by data\.sampler=balanced"):
        DigitsDataModule(class_weights=[1.0] * 10)
    with pytest.raises(UserError, match=r"data\.class_weights must be non-negative"):
        DigitsDataModule(sampler="balanced", class_weights=[0.0] * 10)
    dm = DigitsDataModule(sampler="balanced", class_weights=[1.0, 2.0])
    dm.setup("fit")
    with pytest.raises(UserError, match=r"data\.class_weights has 2 values .* one weight per class"):
        dm.train_dataloader()


def test_balanced_sampler_on_regression_targets_is_refused_at_instantiation(tmp_path):
    from lit_vision.data.image_regression import ImageRegressionDataModule
    from lit_vision.data.sampling import train_sampler

    with pytest.raises(UserError, match=r"data\.sampler=balanced needs one class label per sample"):
        ImageRegressionDataModule(root=str(tmp_path), sampler="balanced")
    with pytest.raises(UserError, match=r"use data\.sampler=shuffle"):
        train_sampler("balanced", 10, shuffle=True, seed=0, labels=None)


def test_training_with_the_balanced_sampler_from_the_config(tmp_path):
    cfg = compose_cfg(
        [
            "data=digits",
            "data.sampler=balanced",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=3",
            "trainer.limit_val_batches=1",
            "trainer.num_sanity_val_steps=0",
            "callbacks=[model_checkpoint]",
            "logger=none",
        ],
        output_dir=tmp_path,
    )
    dm = hydra.utils.instantiate(cfg.data)
    dm.setup("fit")
    assert isinstance(dm.train_dataloader().sampler, BalancedSampler)
    with open_dict(cfg):
        cfg.test = False
    metrics, _ = train(without_hydra(cfg))
    assert metrics["status"] == "completed"


def test_imbalance_tool_cuts_one_class_and_keeps_the_test_file(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    from lit_vision.data.writers import write_mnist_layout
    from lit_vision.tools.imbalance_idx import main

    labels = torch.arange(3).repeat_interleave(40).numpy().astype("uint8")
    images = torch.arange(120, dtype=torch.uint8).view(120, 1, 1).expand(120, 4, 4).contiguous().numpy()
    write_mnist_layout(tmp_path / "src", (images, labels), (images[:9], labels[:9]), name="FashionMNIST")
    assert main([str(tmp_path / "src"), str(tmp_path / "dst"), "--per-class", "20", "--minority", "1"]) == 0
    raw = tmp_path / "dst" / "FashionMNIST" / "raw"
    kept_images = read_image_file(str(raw / "train-images-idx3-ubyte"))
    kept_labels = read_label_file(str(raw / "train-labels-idx1-ubyte"))
    assert torch.bincount(kept_labels).tolist() == [20, 2, 20]
    # every kept image is the one that had that label (pixel value = original index)
    assert all(labels[int(img[0, 0])] == int(lab) for img, lab in zip(kept_images, kept_labels, strict=True))
    assert len(read_label_file(str(raw / "t10k-labels-idx1-ubyte"))) == 9
    assert main([str(tmp_path / "src"), str(tmp_path / "d2"), "--per-class", "50"]) == 2  # too few images
