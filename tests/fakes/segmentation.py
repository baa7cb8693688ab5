"""Small segmentation datasets in the real on-disk formats: labelme folders, VOC layouts, images/ + masks/
folders (0/255 masks as PNG, BMP or noisy JPEG), Oxford-IIIT Pet.

Images are noise with the annotated regions painted in a class colour, so a small net can learn them.
Every writer returns the folder a DataModule's ``root`` should point at.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lit_vision.data.segmentation.labelme import parse_shape, rasterize_shapes
from lit_vision.data.segmentation.labels import IGNORE_INDEX, LabelSet, label_set_from_names
from lit_vision.viz.segmentation import mask_to_image

CLASS_COLOURS = np.array(
    [[20, 20, 20], [230, 60, 40], [40, 200, 60], [50, 80, 230], [220, 220, 40]], np.uint8
)


def shape(label: str, points: Sequence[Sequence[float]], shape_type: str = "polygon") -> dict[str, Any]:
    """One labelme shape dict."""
    return {
        "label": label,
        "points": [[float(x), float(y)] for x, y in points],
        "group_id": None,
        "description": "",
        "shape_type": shape_type,
        "flags": {},
    }


def paint(mask: np.ndarray, seed: int = 0, noise: float = 25.0) -> np.ndarray:
    """An RGB image whose pixels are their class colour plus noise (ignored pixels: mid grey)."""
    rng = np.random.default_rng(seed)
    colours = CLASS_COLOURS[np.where(mask == IGNORE_INDEX, 0, mask) % len(CLASS_COLOURS)].astype(np.float64)
    colours[mask == IGNORE_INDEX] = 128
    image = colours + rng.normal(0, noise, colours.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_labelme_image(
    folder: Path,
    name: str,
    shapes: Sequence[dict[str, Any]],
    size: tuple[int, int],
    label_set: LabelSet,
    seed: int = 0,
    suffix: str = ".png",
    embed_image: bool = False,
) -> Path:
    """Write ``<name><suffix>`` (painted from the shapes) and ``<name>.json``; return the JSON path."""
    height, width = size
    parsed = [parse_shape(s) for s in shapes]
    image = Image.fromarray(paint(rasterize_shapes(parsed, height, width, label_set), seed))
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / f"{name}{suffix}"
    image.save(image_path)
    image_data = None
    if embed_image:
        import base64

        image_data = base64.b64encode(image_path.read_bytes()).decode("ascii")
        image_path.unlink()
    doc = {
        "version": "5.4.1",
        "flags": {},
        "shapes": list(shapes),
        "imagePath": image_path.name,
        "imageData": image_data,
        "imageHeight": height,
        "imageWidth": width,
    }
    json_path = folder / f"{name}.json"
    json_path.write_text(json.dumps(doc, indent=1))
    return json_path


def random_shapes(
    rng: np.random.Generator, size: tuple[int, int], classes: Sequence[str]
) -> list[dict[str, Any]]:
    """One polygon, rectangle or circle per class at a random place."""
    height, width = size
    out = []
    for i, label in enumerate(classes):
        cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
        r = rng.uniform(0.15, 0.3) * min(height, width)
        kind = ("polygon", "rectangle", "circle")[(i + int(rng.integers(3))) % 3]
        if kind == "polygon":
            points = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 7)[:-1]]
        elif kind == "rectangle":
            points = [(cx - r, cy - r), (cx + r, cy + r)]
        else:
            points = [(cx, cy), (cx + r, cy)]
        out.append(shape(label, points, kind))
    return out


def make_labelme_dataset(
    root: str | Path,
    n: int = 10,
    size: tuple[int, int] = (32, 40),
    classes: Sequence[str] = ("cat",),
    seed: int = 0,
    labels_txt: bool = True,
) -> Path:
    """``n`` labelme image + JSON pairs with random shapes of ``classes`` and a ``labels.txt``."""
    root = Path(root)
    label_set = label_set_from_names(["__ignore__", "_background_", *classes])
    rng = np.random.default_rng(seed)
    for i in range(n):
        write_labelme_image(
            root, f"img_{i:03d}", random_shapes(rng, size, classes), size, label_set, seed + i
        )
    if labels_txt:
        (root / "labels.txt").write_text(label_set.to_labels_txt())
    return root


def make_voc_dataset(
    root: str | Path,
    n: int = 10,
    size: tuple[int, int] = (32, 40),
    num_classes: int = 3,
    seed: int = 0,
    mask_dir: str = "SegmentationClassPNG",
    split_lists: dict[str, Sequence[int]] | None = None,
    class_names: bool = True,
) -> Path:
    """A VOC layout: ``JPEGImages/*.png`` (lossless, so tests can compare pixels), palette masks with a
    rectangle per class and a 2-pixel ignore border, optional ``class_names.txt`` and split lists."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    height, width = size
    for i in range(n):
        mask = np.zeros(size, np.uint8)
        for c in range(1, num_classes):
            y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
            mask[y0 : y0 + height // 3, x0 : x0 + width // 3] = c
        mask[:2, :] = IGNORE_INDEX
        Image.fromarray(paint(mask, seed + i)).save(root / "JPEGImages" / f"{i:04d}.png")
        if mask_dir == "SegmentationClass" and i % 2:
            np.save(
                root / mask_dir / f"{i:04d}.npy", np.where(mask == IGNORE_INDEX, -1, mask).astype(np.int32)
            )
        else:
            mask_to_image(mask).save(root / mask_dir / f"{i:04d}.png")
    if class_names:
        names = ["_background_", *(f"class{c}" for c in range(1, num_classes))]
        (root / "class_names.txt").write_text("\n".join(names) + "\n")
    if split_lists:
        folder = root / "ImageSets" / "Segmentation"
        folder.mkdir(parents=True, exist_ok=True)
        for split, ids in split_lists.items():
            (folder / f"{split}.txt").write_text("".join(f"{i:04d}\n" for i in ids))
    return root


def disc_mask(
    size: tuple[int, int] = (48, 64), centre: tuple[int, int] = (24, 30), radius: int = 14
) -> np.ndarray:
    """A ``(H, W)`` 0/1 disc: a binary ground truth to write mask files from."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    return (np.hypot(yy - centre[0], xx - centre[1]) <= radius).astype(np.uint8)


def write_jpeg_mask(path: Path, truth: np.ndarray, quality: int = 75, rgb: bool = False) -> np.ndarray:
    """Save ``truth * 255`` as a JPEG (grey or RGB), as users' binary masks often are, and return what the
    file decodes to (values near 0 and 255 with compression noise between)."""
    image = Image.fromarray((truth * 255).astype(np.uint8))
    (image.convert("RGB") if rgb else image).save(path, quality=quality)
    return np.asarray(Image.open(path).convert("L"))


def write_image_mask_pair(
    root: Path, name: str, truth: np.ndarray, image_ext: str = ".png", mask_ext: str = ".png", seed: int = 0
) -> None:
    """``root/images/<name><image_ext>`` painted from ``truth`` and ``root/masks/<name><mask_ext>`` holding
    it as 0/255 (a JPEG mask gets compression noise)."""
    image_path, mask_path = root / "images" / f"{name}{image_ext}", root / "masks" / f"{name}{mask_ext}"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    lossy = {"quality": 90} if image_ext in (".jpg", ".jpeg", ".webp") else {}
    Image.fromarray(paint(truth, seed)).save(image_path, **lossy)
    if mask_ext in (".jpg", ".jpeg"):
        write_jpeg_mask(mask_path, truth, quality=80)
    else:
        Image.fromarray((truth * 255).astype(np.uint8)).save(mask_path)


def make_images_masks_dataset(root: str | Path) -> dict[str, np.ndarray]:
    """An images/ + masks/ folder of five pairs with 0/255 masks and mixed extensions on both sides (names
    with dots, one in a subfolder, PNG / JPEG / BMP masks); returns ``{name: 0/1 truth}``."""
    root = Path(root)
    truths = {
        "cat.1": disc_mask(centre=(20, 20)),
        "cat.2": disc_mask(centre=(30, 40), radius=10),
        "cat.10": disc_mask(centre=(24, 32), radius=18),
        "nested/cat.3": disc_mask(centre=(15, 45), radius=8),
        "dog": disc_mask(centre=(25, 25), radius=12),
    }
    extensions = [(".jpg", ".png"), (".png", ".jpg"), (".jpeg", ".bmp"), (".png", ".png"), (".webp", ".png")]
    for seed, ((name, truth), (image_ext, mask_ext)) in enumerate(
        zip(truths.items(), extensions, strict=True)
    ):
        write_image_mask_pair(root, name, truth, image_ext, mask_ext, seed)
    return truths


def make_oxford_pets(
    root: str | Path,
    n_cats: int = 4,
    n_dogs: int = 4,
    n_test: int = 2,
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
) -> Path:
    """``root/oxford-iiit-pet`` as the official archives unpack: images/*.jpg, annotations/trimaps/*.png
    (1 pet, 2 background, 3 border) and the lists ``trainval.txt`` / ``test.txt`` (id class species breed)."""
    base = Path(root) / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    height, width = size
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    # (breed, class id, species 1 = cat / 2 = dog, breed id): cat breeds are capitalised in the real lists
    cat, dog = ("Abyssinian", 1, 1, 1), ("beagle", 2, 2, 1)
    plan = (
        [("trainval", cat)] * n_cats + [("trainval", dog)] * n_dogs + [("test", cat), ("test", dog)] * n_test
    )
    for i, (split, (breed, class_id, species, breed_id)) in enumerate(plan):
        name = f"{breed}_{i + 1}"
        trimap = np.full(size, 2, np.uint8)
        y0, x0 = int(rng.integers(2, height // 3)), int(rng.integers(2, width // 3))
        trimap[y0 : y0 + height // 2, x0 : x0 + width // 2] = 3
        trimap[y0 + 1 : y0 + height // 2 - 1, x0 + 1 : x0 + width // 2 - 1] = 1
        image = paint(np.where(trimap == 1, 1, 0).astype(np.uint8), seed + i)
        Image.fromarray(image).save(base / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
        lines[split].append(f"{name} {class_id} {species} {breed_id}")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return Path(root)
