"""Write scikit-learn's real handwritten digits as MNIST IDX files in torchvision's ``MNIST/raw`` layout.

    python -m lit_vision.tools.digits_as_mnist DIR [--test-fraction 0.2] [--seed 0] [--shifted-copies 0]
    python train.py experiment=mnist_cnn data.root=DIR

The 1,797 8x8 digits (17 grey levels) are upsampled to 20x20 and centred in a 28x28 frame with a 4-pixel
border, the way MNIST's digits sit in theirs, then split (seeded, stratified) into the train and t10k
files. ``--shifted-copies K`` adds K copies of every training digit moved by up to 2 pixels (still real
handwriting, only displaced) for a larger training file. Both the plain files torchvision reads and the
``.gz`` files its download leaves are written (``--no-gzip`` skips the latter).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lit_vision.data.splits import split_indices
from lit_vision.data.writers import write_mnist_layout


def digits_28x28() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 (N, 28, 28) images (white on black, like MNIST) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    large = F.interpolate(small, size=(20, 20), mode="bilinear", align_corners=False, antialias=False)
    framed = F.pad(large, (4, 4, 4, 4))
    images = (framed.squeeze(1).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return images, digits.target.astype(np.uint8)


def shifted_copies(images: np.ndarray, copies: int, seed: int, max_shift: int = 2) -> np.ndarray:
    """``copies`` versions of every image, each moved by a random offset in [-max_shift, max_shift]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        shifts = rng.integers(-max_shift, max_shift + 1, size=(len(images), 2))
        out.append(
            np.stack([np.roll(img, tuple(s), axis=(0, 1)) for img, s in zip(images, shifts, strict=True)])
        )
    return np.concatenate(out) if out else images[:0]


def write_digits_as_mnist(
    root: str | Path, test_fraction: float = 0.2, seed: int = 0, copies: int = 0, gz: bool = True
) -> dict[str, int]:
    """Write ``root/MNIST/raw/*``; return the number of train and test images."""
    images, labels = digits_28x28()
    train_idx, test_idx = split_indices(
        len(labels), [1.0 - test_fraction, test_fraction], seed, labels=labels
    )
    train_images, train_labels = images[train_idx], labels[train_idx]
    if copies:
        extra = shifted_copies(train_images, copies, seed)
        train_images = np.concatenate([train_images, extra])
        train_labels = np.concatenate([train_labels, np.tile(train_labels, copies)])
    write_mnist_layout(
        root, (train_images, train_labels), (images[test_idx], labels[test_idx]), name="MNIST", gz=gz
    )
    return {"train": len(train_labels), "test": len(test_idx)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.tools.digits_as_mnist",
        description="Write scikit-learn's digits (scaled to 28x28) as MNIST IDX files in DIR/MNIST/raw.",
    )
    parser.add_argument("root", help="folder to hold MNIST/raw/ (then: train.py data.root=ROOT)")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shifted-copies", type=int, default=0, help="extra shifted copies of train")
    parser.add_argument("--no-gzip", action="store_true", help="write only the plain IDX files")
    args = parser.parse_args(argv)
    if not 0.0 < args.test_fraction < 1.0 or args.shifted_copies < 0:
        parser.error("--test-fraction must be in (0, 1) and --shifted-copies >= 0")
    counts = write_digits_as_mnist(
        args.root, args.test_fraction, args.seed, args.shifted_copies, not args.no_gzip
    )
    raw = Path(args.root) / "MNIST" / "raw"
    print(f"wrote {counts['train']} training and {counts['test']} test digits to {raw}")
    print(f"train with: python train.py experiment=mnist_cnn data.root={Path(args.root).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
