"""The hand-written PyTorch training loop of the tutorials, the baseline lit_vision is timed against.

What the tutorials do, on the same files, split, net, batch and optimizer as the lit_vision run it is
compared with: read the dataset with ``torchvision.datasets``, hold out the same seeded validation split,
compute the normalisation from the training split, then per epoch shuffle, slice batches from the in-memory
tensor, normalise (and augment per sample with torchvision transforms where the recipe does), forward,
cross-entropy, backward, step, count the training accuracy; evaluate the validation split after every
epoch, ``torch.save`` the best weights, finally test those. ``channels_last=True`` gives the same loop the
NHWC layout and ``bf16=True`` runs forward and loss under ``torch.autocast`` in bfloat16 (together with the
in-memory slicing: the best plain loop a careful engineer writes on a CPU with native bf16).

Every step is timed in two parts: ``data`` (slicing, normalising, augmenting: what the loop waits for) and
``step`` (forward, backward, optimizer). An optional probe evaluates the test split every few steps off the
clock (time to accuracy).
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lit_vision.data.splits import split_indices


@dataclass
class Splits:
    """uint8 NCHW images and int64 labels of the train / validation / test splits."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def read_torchvision_splits(dataset: str | type, root: Path, val_fraction: float, seed: int) -> Splits:
    """``MNIST`` / ``CIFAR10`` files read with a torchvision dataset class (or its name); train split into
    train/val as the DataModules do (seeded, stratified ``split_indices``); test = the official test file."""
    from torchvision import datasets

    cls = getattr(datasets, dataset) if isinstance(dataset, str) else dataset
    parts = {}
    for train in (True, False):
        dataset = cls(str(root), train=train, download=False)
        data = torch.as_tensor(dataset.data)
        images = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
        parts[train] = (images.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long))
    images, labels = parts[True]
    train_idx, val_idx, _ = split_indices(
        len(labels), [1.0 - val_fraction, val_fraction, 0.0], seed, labels=labels.numpy()
    )
    train_idx, val_idx = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    return Splits(
        images[train_idx],
        labels[train_idx],
        images[val_idx],
        labels[val_idx],
        parts[False][0],
        parts[False][1],
    )


def read_image_folder_splits(root: Path, ratios: list[float], seed: int) -> Splits:
    """Class folders of equal-size photos, decoded once with PIL into uint8 NCHW tensors, in the same
    seeded ratio split as ``data=image_folder`` (the plain loop lists the files with
    ``ImageFolderDataModule.find_samples`` so both sides train, validate and test on the same files)."""
    import numpy as np
    from PIL import Image

    from lit_vision.data.image_folder import ImageFolderDataModule

    samples = ImageFolderDataModule(root=str(root), ratios=ratios, split_seed=seed).find_samples()
    parts = []
    for stage in ("train", "val", "test"):
        pixels = [np.asarray(Image.open(s.path).convert("RGB")) for s in samples[stage]]
        images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
        parts += [images, torch.tensor([s.label for s in samples[stage]], dtype=torch.long)]
    return Splits(*parts)


def pixel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 NCHW images scaled to [0, 1], shaped ``(1, C, 1, 1)``."""
    pixels = images.float().div_(255.0)
    mean = pixels.mean(dim=(0, 2, 3), keepdim=True)
    std = pixels.std(dim=(0, 2, 3), keepdim=True)
    return mean, std


def crop_flip_per_sample(size: int = 32, padding: int = 4) -> Callable[[torch.Tensor], torch.Tensor]:
    """The CIFAR tutorial's ``RandomCrop(size, padding)`` + ``RandomHorizontalFlip`` applied image by image
    (as a Dataset's ``__getitem__`` would) to a uint8 batch."""
    from torchvision.transforms import v2

    transform = v2.Compose([v2.RandomCrop(size, padding=padding), v2.RandomHorizontalFlip()])

    def augment(batch: torch.Tensor) -> torch.Tensor:
        return torch.stack([transform(image) for image in batch])

    return augment


@dataclass
class PlainResult:
    """What a plain run measured."""

    test_acc: float
    seconds: float
    epochs: list[float]
    data_seconds: float
    step_seconds: float
    probes: list[list[float]] = field(default_factory=list)  # [clock, step, accuracy]
    train_epochs: list[float] = field(default_factory=list)  # training part of each epoch, s
    train_images: int = 0

    @property
    def train_images_per_s(self) -> float:
        """Training images per second of the epochs after the first (the first holds the warm-up)."""
        return self.train_images / statistics.median(self.train_epochs[1:] or self.train_epochs)

    @property
    def wait_fraction(self) -> float:
        return self.data_seconds / (self.data_seconds + self.step_seconds)


class PlainLoop:
    """One model trained the tutorials' way; see the module docstring."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        splits: Splits,
        batch_size: int,
        eval_batch_size: int = 1000,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        channels_last: bool = False,
        seed: int = 42,
        bf16: bool = False,
        mean_std: tuple[list[float], list[float]] | None = None,
    ) -> None:
        self.net, self.optimizer, self.splits = net, optimizer, splits
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.augment = augment
        self.channels_last = channels_last
        self.bf16 = bf16
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if mean_std is None:  # computed from the training split, as the tutorials do
            self.mean, self.std = pixel_stats(splits.train_x)
        else:  # given, as a recipe with fixed values (0.5 / 0.5, ImageNet's) has them
            self.mean, self.std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in mean_std)
        self.generator = torch.Generator().manual_seed(seed)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on the CPU when ``bf16``, else nothing."""
        if self.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 -> normalised float (NHWC when ``channels_last``)."""
        x = (batch.float().div_(255.0) - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        self.net.eval()
        correct = torch.zeros((), dtype=torch.long)
        for i in range(0, len(labels), self.eval_batch_size):
            with self.autocast():
                logits = self.net(self.prepare(images[i : i + self.eval_batch_size]))
            correct += (logits.argmax(1) == labels[i : i + self.eval_batch_size]).sum()
        self.net.train()
        return int(correct) / len(labels)

    def fit(
        self,
        epochs: int,
        checkpoint: Path,
        probe_every: int | None = None,
        stop_at: float | None = None,
        start: float | None = None,
    ) -> PlainResult:
        """Train ``epochs`` epochs (validation and best-weights checkpoint after each), then test the best.

        ``probe_every`` evaluates the test split after each epoch and, when > 0, every that many steps, off
        the clock (None: never); ``stop_at`` ends training once the probe reaches that accuracy. ``start`` is the
        ``perf_counter`` time the run began (default: now).
        """
        start = time.perf_counter() if start is None else start
        s = self.splits
        best_acc, best_state = -1.0, None
        durations: list[float] = []
        train_durations: list[float] = []
        data_time = step_time = paused = 0.0
        probes: list[list[float]] = []
        step = 0
        done = False

        def run_probe() -> bool:
            nonlocal paused
            begin = time.perf_counter()
            accuracy = self.accuracy(s.test_x, s.test_y)
            probes.append([begin - paused, step, accuracy])
            paused += time.perf_counter() - begin
            return stop_at is not None and accuracy >= stop_at

        for _ in range(epochs):
            epoch_start = time.perf_counter()
            epoch_paused = paused
            self.net.train()
            order = torch.randperm(len(s.train_y), generator=self.generator)
            correct = torch.zeros((), dtype=torch.long)
            for i in range(0, len(order), self.batch_size):
                t0 = time.perf_counter()
                index = order[i : i + self.batch_size]
                images = s.train_x[index]
                if self.augment is not None:
                    images = self.augment(images)
                x, y = self.prepare(images), s.train_y[index]
                t1 = time.perf_counter()
                with self.autocast():
                    output = self.net(x)
                    loss = F.cross_entropy(output, y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                correct += (output.argmax(1) == y).sum()
                t2 = time.perf_counter()
                data_time += t1 - t0
                step_time += t2 - t1
                step += 1
                if probe_every and step % probe_every == 0 and run_probe():
                    done = True
                    break
            train_durations.append(time.perf_counter() - epoch_start - (paused - epoch_paused))
            val_acc = self.accuracy(s.val_x, s.val_y)
            if val_acc > best_acc:
                best_acc, best_state = val_acc, copy.deepcopy(self.net.state_dict())
                torch.save({"state_dict": best_state, "best_acc": best_acc}, checkpoint)
            # after validation, as Lightning's on_train_epoch_end (where AccuracyProbe probes) comes
            if not done and probe_every is not None and run_probe():
                done = True
            durations.append(time.perf_counter() - epoch_start - (paused - epoch_paused))
            if done:
                break
        self.net.load_state_dict(best_state)
        test_acc = self.accuracy(s.test_x, s.test_y)
        return PlainResult(
            test_acc=test_acc,
            seconds=time.perf_counter() - start - paused,
            epochs=durations,
            data_seconds=data_time,
            step_seconds=step_time,
            probes=probes,
            train_epochs=train_durations,
            train_images=len(s.train_y),
        )
