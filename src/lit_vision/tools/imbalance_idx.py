"""Write a class-imbalanced subset of an MNIST-layout IDX data set (e.g. the real Fashion-MNIST).

    python -m lit_vision.tools.imbalance_idx SRC DST [--name FashionMNIST] [--per-class 1000]
        [--minority 0] [--keep 0.1] [--seed 0]
    python train.py data=fashion_mnist data.root=DST [data.sampler=balanced]

Reads ``SRC/<name>/raw/{train,t10k}-*-ubyte``, keeps ``--per-class`` seeded random training images of every
class except ``--minority``, which keeps ``--keep`` times as many, and writes them with the untouched test
file to ``DST/<name>/raw``: a real imbalanced training set with a balanced test set, for measuring what
``data.sampler=balanced`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from torchvision.datasets.mnist import read_image_file, read_label_file

from lit_vision.data.writers import write_mnist_layout
from lit_vision.errors import UserError


def imbalanced_indices(
    labels: np.ndarray, per_class: int, minority: int, keep: float, seed: int
) -> np.ndarray:
    """Sorted indices: ``per_class`` of each class (seeded), ``round(per_class * keep)`` of ``minority``."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        wanted = max(1, round(per_class * keep)) if label == minority else per_class
        if wanted > len(members):
            raise UserError(
                f"--per-class {per_class}: class {label} has only {len(members)} training images."
            )
        chosen.append(rng.choice(members, size=wanted, replace=False))
    return np.sort(np.concatenate(chosen))


def write_imbalanced(
    src: Path, dst: Path, name: str, per_class: int, minority: int, keep: float, seed: int
) -> dict[int, int]:
    """Write the subset (see the module docstring); returns the training count of every class."""
    raw = Path(src) / name / "raw"
    files = {
        f"{p}-{k}": raw / f"{p}-{k}-ubyte" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1")
    }
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:
        raise UserError(
            f"IDX file(s) not found: {', '.join(missing)}. Point SRC at the folder holding {name}/raw."
        )
    if not 0 < keep <= 1:
        raise UserError(f"--keep must be in (0, 1], got {keep}.")
    images = read_image_file(str(files["train-images-idx3"])).numpy()
    labels = read_label_file(str(files["train-labels-idx1"])).numpy()
    if minority not in set(labels.tolist()):
        raise UserError(f"--minority {minority} is not a class of {files['train-labels-idx1']}.")
    index = imbalanced_indices(labels, per_class, minority, keep, seed)
    test = (
        read_image_file(str(files["t10k-images-idx3"])).numpy(),
        read_label_file(str(files["t10k-labels-idx1"])).numpy(),
    )
    write_mnist_layout(dst, (images[index], labels[index]), test, name=name)
    return {int(c): int(n) for c, n in zip(*np.unique(labels[index], return_counts=True), strict=True)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--name", default="FashionMNIST")
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--minority", type=int, default=0)
    parser.add_argument("--keep", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        counts = write_imbalanced(
            args.src, args.dst, args.name, args.per_class, args.minority, args.keep, args.seed
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst / args.name / 'raw'}: training images per class {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
