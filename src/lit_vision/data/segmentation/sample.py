"""The chelsea sample: scikit-image's CC0 ``chelsea`` photo with a hand-traced labelme polygon.

The annotation (``lit_vision/assets/chelsea/chelsea.json``, a labelme file with one ``cat`` polygon) was
traced once and checked by rendering its overlay. The photo itself ships with scikit-image. From the two,
:func:`write_cats_sample` writes a small labelme folder: several crops, flips, scales and colour changes
of the photo, each saved as an image + JSON pair whose polygon is the traced one moved with the pixels
(clipped to the crop), plus ``labels.txt``. Fast tests and benches write it where they need a tiny labelme
folder; the offline default of ``data=cats`` is the shipped real photos
(``lit_vision.data.segmentation.offline_cats``), not this sample.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from lit_vision.data.segmentation.labels import label_set_from_names

log = logging.getLogger("lit_vision")

ASSET = "assets/chelsea/chelsea.json"
SAMPLE_LABELS = ("__ignore__", "_background_", "cat")


@dataclass(frozen=True)
class Variant:
    """How one sample image is made from the photo: crop box (x0, y0, x1, y1), then scale, flip, colour."""

    name: str
    box: tuple[int, int, int, int]
    scale: float = 1.0
    hflip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0  # fraction of a full turn of the colour wheel


# 16 views of the 451 x 300 photo: the whole frame, halves and corners with more or less background,
# mirrored, rescaled and recoloured. Enough for a seeded 10 / 3 / 3 train / val / test split.
SAMPLE_VARIANTS: tuple[Variant, ...] = (
    Variant("chelsea_00", (0, 0, 451, 300)),
    Variant("chelsea_01", (0, 0, 451, 300), hflip=True, brightness=1.15),
    Variant("chelsea_02", (0, 0, 451, 300), scale=0.6, contrast=1.3),
    Variant("chelsea_03", (0, 0, 300, 300), saturation=0.5),
    Variant("chelsea_04", (151, 0, 451, 300), hflip=True),
    Variant("chelsea_05", (60, 20, 420, 280), scale=0.8, brightness=0.8),
    Variant("chelsea_06", (100, 50, 451, 300), hue=0.05),
    Variant("chelsea_07", (0, 60, 360, 300), contrast=0.8, hflip=True),
    Variant("chelsea_08", (200, 0, 451, 220), scale=1.2, saturation=1.4),
    Variant("chelsea_09", (30, 0, 330, 200), hflip=True, brightness=1.25),
    Variant("chelsea_10", (250, 80, 451, 300), scale=1.4),
    Variant("chelsea_11", (0, 0, 451, 300), saturation=0.0, contrast=1.1),
    Variant("chelsea_12", (0, 100, 300, 300), hflip=True, hue=-0.04),
    Variant("chelsea_13", (120, 0, 451, 300), scale=0.5, brightness=0.9),
    Variant("chelsea_14", (180, 100, 451, 300), hflip=True, saturation=1.3),
    Variant("chelsea_15", (0, 0, 451, 180), contrast=1.2, hue=0.03),
)


def load_annotated_photo() -> tuple[Image.Image, list[dict[str, Any]]]:
    """The chelsea photo (from scikit-image) and the shapes of its committed labelme annotation."""
    from skimage import data

    doc = json.loads(resources.files("lit_vision").joinpath(ASSET).read_text(encoding="utf-8"))
    image = Image.fromarray(data.chelsea())
    if image.size != (doc["imageWidth"], doc["imageHeight"]):
        raise RuntimeError(f"scikit-image's chelsea is {image.size}, the annotation expects another size")
    return image, doc["shapes"]


def clip_polygon(
    points: Sequence[tuple[float, float]], width: float, height: float
) -> list[tuple[float, float]]:
    """Clip a polygon to the rectangle [0, width] x [0, height] (Sutherland-Hodgman)."""
    edges = (
        (lambda p: p[0] >= 0, lambda a, b: _cross_x(a, b, 0.0)),
        (lambda p: p[0] <= width, lambda a, b: _cross_x(a, b, width)),
        (lambda p: p[1] >= 0, lambda a, b: _cross_y(a, b, 0.0)),
        (lambda p: p[1] <= height, lambda a, b: _cross_y(a, b, height)),
    )
    out = [(float(x), float(y)) for x, y in points]
    for inside, cross in edges:
        if not out:
            break
        polygon, out = out, []
        for i, current in enumerate(polygon):
            previous = polygon[i - 1]
            if inside(current):
                if not inside(previous):
                    out.append(cross(previous, current))
                out.append(current)
            elif inside(previous):
                out.append(cross(previous, current))
    return out


def _cross_x(a, b, x):
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def _cross_y(a, b, y):
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def render_variant(
    image: Image.Image, shapes: Sequence[dict[str, Any]], variant: Variant
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """Apply ``variant`` to the photo and move its polygons with the pixels."""
    x0, y0, x1, y1 = variant.box
    out = image.crop(variant.box)
    crop_w, crop_h = x1 - x0, y1 - y0
    width, height = max(1, round(crop_w * variant.scale)), max(1, round(crop_h * variant.scale))
    if (width, height) != (crop_w, crop_h):
        out = out.resize((width, height), Image.Resampling.LANCZOS)
    if variant.hflip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    out = recolour(out, variant)
    sx, sy = width / crop_w, height / crop_h
    moved = []
    for shape in shapes:
        if shape.get("shape_type", "polygon") != "polygon":
            raise ValueError("the sample generator moves polygons only")
        points = clip_polygon([(x - x0, y - y0) for x, y in shape["points"]], crop_w, crop_h)
        points = [(x * sx, y * sy) for x, y in points]
        if variant.hflip:
            points = [(width - x, y) for x, y in points[::-1]]
        points = _dedupe([(round(x, 2), round(y, 2)) for x, y in points])
        if len(points) >= 3:
            moved.append({**shape, "points": [list(p) for p in points]})
    return out, moved


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for p in points:
        if not out or p != out[-1]:
            out.append(p)
    if len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def recolour(image: Image.Image, variant: Variant) -> Image.Image:
    """Brightness, contrast, saturation and hue changes of ``variant`` (identity values are skipped)."""
    if variant.brightness != 1.0:
        image = ImageEnhance.Brightness(image).enhance(variant.brightness)
    if variant.contrast != 1.0:
        image = ImageEnhance.Contrast(image).enhance(variant.contrast)
    if variant.saturation != 1.0:
        image = ImageEnhance.Color(image).enhance(variant.saturation)
    if variant.hue:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(variant.hue * 255)) % 256
        image = Image.fromarray(hsv, mode="HSV").convert("RGB")
    return image


def labelme_document(
    image_name: str, width: int, height: int, shapes: list[dict[str, Any]]
) -> dict[str, Any]:
    """A labelme JSON document (as labelme saves with --nodata: the image stays a separate file)."""
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            {
                "label": s["label"],
                "points": s["points"],
                "group_id": s.get("group_id"),
                "description": s.get("description", ""),
                "shape_type": s.get("shape_type", "polygon"),
                "flags": s.get("flags", {}),
                "mask": None,
            }
            for s in shapes
        ],
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_variants(folder: Path, variants: Sequence[Variant], quality: int = 92) -> list[Path]:
    """Write each variant as ``<name>.jpg`` + ``<name>.json`` (labelme) and ``labels.txt`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    image, shapes = load_annotated_photo()
    written = []
    for variant in variants:
        out, moved = render_variant(image, shapes, variant)
        image_name = f"{variant.name}.jpg"
        out.save(folder / image_name, quality=quality)
        doc = labelme_document(image_name, out.width, out.height, moved)
        path = folder / f"{variant.name}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    label_set = label_set_from_names(SAMPLE_LABELS)
    (folder / "labels.txt").write_text(label_set.to_labels_txt(), encoding="utf-8")
    return written


def is_empty_dir(path: Path) -> bool:
    """True for an existing folder with nothing in it."""
    return path.is_dir() and not any(path.iterdir())


def write_cats_sample(root: str | Path, variants: Sequence[Variant] = SAMPLE_VARIANTS) -> Path:
    """Write the sample into ``root`` (which must be missing or empty); safe if two processes race."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write_variants(staging, variants)
        (staging / "README.txt").write_text(
            "Written by lit_vision because this folder was empty: crops, flips, scales and colour changes of\n"
            "scikit-image's CC0 'chelsea' photo, each with the labelme polygon of the cat moved along.\n"
            "Replace these files by your own labelme annotations (image + JSON pairs and labels.txt).\n",
            encoding="utf-8",
        )
        if is_empty_dir(root):
            root.rmdir()
        try:
            os.replace(staging, root)
        except OSError:
            if not any(root.glob("*.json")):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return root
