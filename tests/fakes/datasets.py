"""Small datasets in the real on-disk formats, with class-dependent (learnable) content.

All functions take a target folder and a seed, write files there and return the path a DataModule's
``root`` should point at. Sizes default to a few dozen images so a fast_dev_run on them takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from lit_vision.data.writers import write_cifar10_layout, write_cifar100_layout, write_mnist_layout

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def class_images(
    num_classes: int,
    n: int,
    size: int | tuple[int, int],
    channels: int = 3,
    seed: int = 0,
    noise: float = 40.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (N, H, W, C) and balanced int64 labels: each class has its own blocky pattern,
    every image is its class pattern plus noise, so a small net separates the classes quickly."""
    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    templates = rng.uniform(30, 225, size=(num_classes, 4, 4, channels))
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    rows = (np.arange(height) * 4 // height)[:, None]
    cols = (np.arange(width) * 4 // width)[None, :]
    base = templates[labels][:, rows, cols, :]  # (N, H, W, C)
    images = base + rng.normal(0.0, noise, size=base.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels


# ---------------------------------------------------------------------- torchvision layouts
def make_mnist(
    root: str | Path,
    n_train: int = 120,
    n_test: int = 40,
    name: str = "MNIST",
    plain: bool = True,
    gz: bool = False,
    seed: int = 0,
) -> Path:
    """``root/<name>/raw/`` with the four IDX files (28x28 grey, 10 classes); returns ``root``."""
    images, labels = class_images(10, n_train + n_test, 28, channels=1, seed=seed)
    images = images[..., 0]
    write_mnist_layout(
        root,
        (images[:n_train], labels[:n_train]),
        (images[n_train:], labels[n_train:]),
        name=name,
        plain=plain,
        gz=gz,
    )
    return Path(root)


def make_fashion_mnist(root: str | Path, **kwargs) -> Path:
    """Like :func:`make_mnist` in ``root/FashionMNIST/raw/``."""
    return make_mnist(root, name="FashionMNIST", **kwargs)


def make_cifar10(root: str | Path, n_train: int = 100, n_test: int = 40, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta); returns ``root``."""
    images, labels = class_images(10, n_train + n_test, 32, channels=3, seed=seed)
    write_cifar10_layout(
        root, (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:]), CIFAR10_NAMES
    )
    return Path(root)


def make_cifar100(root: str | Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    """``root/cifar-100-python/`` (train, test, meta with fine and coarse names); returns ``root``."""
    images, labels = class_images(100, n_train + n_test, 32, channels=3, seed=seed)
    names = [f"class_{i:02d}" for i in range(100)]
    write_cifar100_layout(
        root, (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:]), names
    )
    return Path(root)


# ---------------------------------------------------------------------- image files
def save_image(path: str | Path, rgb: np.ndarray, mode: str = "RGB", **save_kwargs) -> Path:
    """Save an (H, W, 3) uint8 array as ``mode``: RGB, L, LA, RGBA, P (palette), I;16 (16-bit grey PNG)
    or CMYK (JPEG). The file format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8), mode="RGB")
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey)
        if image.mode != "I;16":
            image = image.convert("I;16")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode == "RGBA":
        alpha = np.full(image.size[::-1], 200, dtype=np.uint8)
        image = Image.fromarray(np.dstack([np.asarray(image), alpha]), mode="RGBA")
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, **save_kwargs)
    return path


def make_image_folder(
    root: str | Path,
    classes: Sequence[str] = ("daisy", "rose", "tulip"),
    per_class: int | Mapping[str, int] = 6,
    size: tuple[int, int] = (40, 48),
    formats: Sequence[str] = ("png", "jpg"),
    modes: Sequence[str] = ("RGB",),
    seed: int = 0,
) -> Path:
    """Class folders of images (ImageFolder layout); returns ``root``.

    ``per_class`` as an int writes ``root/<class>/<i>.<fmt>``; as a mapping such as
    ``{"train": 6, "valid": 2, "test": 2}`` it writes ``root/<split>/<class>/...`` for each split.
    File formats and image modes cycle over ``formats`` and ``modes`` image by image.
    """
    root = Path(root)
    splits = dict(per_class) if isinstance(per_class, Mapping) else {"": int(per_class)}
    counter = 0
    for s, (split, count) in enumerate(splits.items()):
        images, labels = class_images(len(classes), count * len(classes), size, seed=seed + s)
        seen = dict.fromkeys(range(len(classes)), 0)
        for image, label in zip(images, labels, strict=True):
            folder = root / split / classes[label] if split else root / classes[label]
            fmt = formats[counter % len(formats)]
            mode = modes[counter % len(modes)]
            if fmt in ("jpg", "jpeg") and mode in ("RGBA", "LA", "P", "I;16"):
                mode = "RGB"  # JPEG stores no alpha, palette or 16-bit
            save_image(folder / f"{classes[label]}_{seen[label]:03d}.{fmt}", image, mode)
            seen[label] += 1
            counter += 1
    return root


def make_cat_to_name(root: str | Path, mapping: Mapping[str, str], name: str = "cat_to_name.json") -> Path:
    """The flowers tutorial's JSON file mapping folder names to display names; returns its path."""
    path = Path(root) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(mapping), indent=1))
    return path


def make_index_dataset(
    root: str | Path,
    classes: Sequence[str] = CIFAR10_NAMES,
    per_split: Mapping[str, int] | None = None,
    size: int = 32,
    fmt: str = "png",
    seed: int = 0,
) -> Path:
    """The CIFAR-to-PNG tutorial's layout: ``root/data/<split>/<class>/<label>_<i>.png`` plus index files
    ``root/<split>.txt`` with lines ``data/<split>/<class>/<label>_<i>.png <label>`` and ``classes.txt``
    (one name per line, in label order); returns ``root``."""
    root = Path(root)
    per_split = dict(per_split or {"train": 4, "valid": 2, "test": 2})
    for s, (split, per_class) in enumerate(per_split.items()):
        images, labels = class_images(len(classes), per_class * len(classes), size, seed=seed + s)
        lines = []
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            relative = f"data/{split}/{classes[label]}/{label}_{i}.{fmt}"
            save_image(root / relative, image)
            lines.append(f"{relative} {label}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


# ---------------------------------------------------------------------- damaged files
def write_truncated_copy(source: str | Path, target: str | Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``source``'s bytes: an image cut off mid-download."""
    data = Path(source).read_bytes()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: max(1, int(len(data) * keep))])
    return target


def write_garbage_image(path: str | Path, n_bytes: int = 512, seed: int = 0) -> Path:
    """Random bytes under an image name (``.jpg``/``.png``): not decodable at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    return path


def write_text_file(path: str | Path, text: str = "not an image\n") -> Path:
    """A non-image file (e.g. ``notes.txt`` left among the images)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_exif_rotated_jpeg(path: str | Path, rgb: np.ndarray, orientation: int = 6) -> Path:
    """A JPEG whose pixels are stored as ``rgb`` with an EXIF Orientation tag (6 = display rotated 90
    degrees clockwise), as phones write them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(rgb, dtype=np.uint8), mode="RGB")
    exif = Image.Exif()
    exif[0x0112] = int(orientation)
    image.save(path, exif=exif.tobytes(), quality=95)
    return path
