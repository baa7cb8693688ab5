"""Writers for the on-disk formats torchvision reads: IDX (MNIST family) and CIFAR python pickles.

Used by ``lit_vision.tools.digits_as_mnist`` and by the generators in ``tests.fakes``; the files
they write are byte-for-byte in the official layout (big-endian IDX headers, CIFAR's dict batches).
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# IDX magic: two zero bytes, the element type (0x08 = unsigned byte), the number of dimensions.
IDX_UBYTE = 0x08


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic, big-endian dimension sizes, then the raw bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, IDX_UBYTE, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: str | Path, array: np.ndarray, gz: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when ``gz`` is true or the name ends in ``.gz``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz is None:
        gz = path.suffix == ".gz"
    if gz and path.suffix != ".gz":
        path = path.with_name(path.name + ".gz")
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist_layout(
    root: str | Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    name: str = "MNIST",
    plain: bool = True,
    gz: bool = False,
) -> Path:
    """Write ``root/<name>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` from uint8 arrays
    (images N x H x W, labels N). torchvision reads the plain files; the ``.gz`` copies are what its
    download leaves next to them (lit_vision unpacks them when only those exist)."""
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        images = np.asarray(images, dtype=np.uint8)
        labels = np.asarray(labels, dtype=np.uint8)
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(
                f"{prefix}: need images (N, H, W) and N labels, got {images.shape}, {labels.shape}"
            )
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            stem = raw / f"{prefix}-{kind}-ubyte"
            if plain:
                write_idx(stem, array, gz=False)
            if gz:
                write_idx(stem.with_name(stem.name + ".gz"), array)
    return raw


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) uint8 HWC images -> CIFAR's (N, 3072) rows: the R plane, then G, then B."""
    images = np.asarray(images, dtype=np.uint8)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10_layout(
    root: str | Path,
    train: tuple[np.ndarray, Sequence[int]],
    test: tuple[np.ndarray, Sequence[int]],
    label_names: Sequence[str],
    num_batches: int = 5,
) -> Path:
    """Write ``root/cifar-10-batches-py/`` with data_batch_1..5, test_batch and batches.meta.

    ``train``/``test`` are (N, 32, 32, 3) uint8 images and labels; train is dealt into ``num_batches``.
    """
    folder = Path(root) / "cifar-10-batches-py"
    images, labels = np.asarray(train[0]), np.asarray(train[1], dtype=np.int64)
    chunks = np.array_split(np.arange(len(labels)), num_batches)
    for i, idx in enumerate(chunks, start=1):
        _dump(
            folder / f"data_batch_{i}",
            {
                "batch_label": f"training batch {i} of {num_batches}",
                "labels": [int(v) for v in labels[idx]],
                "data": cifar_rows(images[idx]),
                "filenames": [f"image_{j:05d}.png" for j in idx],
            },
        )
    _dump(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": [int(v) for v in test[1]],
            "data": cifar_rows(test[0]),
            "filenames": [f"test_{j:05d}.png" for j in range(len(test[1]))],
        },
    )
    _dump(
        folder / "batches.meta",
        {"num_cases_per_batch": len(chunks[0]), "label_names": list(label_names), "num_vis": 3072},
    )
    return folder


def write_cifar100_layout(
    root: str | Path,
    train: tuple[np.ndarray, Sequence[int]],
    test: tuple[np.ndarray, Sequence[int]],
    fine_label_names: Sequence[str],
    coarse_of_fine: Sequence[int] | None = None,
) -> Path:
    """Write ``root/cifar-100-python/`` with train, test and meta (fine and coarse labels)."""
    folder = Path(root) / "cifar-100-python"
    coarse_of_fine = np.asarray(
        coarse_of_fine if coarse_of_fine is not None else [i // 5 for i in range(len(fine_label_names))]
    )
    for name, (images, labels) in (("train", train), ("test", test)):
        labels = np.asarray(labels, dtype=np.int64)
        _dump(
            folder / name,
            {
                "batch_label": f"{name}ing batch 1 of 1",
                "fine_labels": [int(v) for v in labels],
                "coarse_labels": [int(v) for v in coarse_of_fine[labels]],
                "data": cifar_rows(images),
                "filenames": [f"{name}_{j:05d}.png" for j in range(len(labels))],
            },
        )
    n_coarse = int(coarse_of_fine.max()) + 1
    _dump(
        folder / "meta",
        {
            "fine_label_names": list(fine_label_names),
            "coarse_label_names": [f"superclass_{i}" for i in range(n_coarse)],
        },
    )
    return folder
