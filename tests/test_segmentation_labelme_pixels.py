"""labelme at real scale, pixel by pixel: the loader (data=segmentation_folder) and labelme2voc against
point-in-polygon computed here from the JSON coordinates, on a real labelme 3.16 file of
``../shared/data/labelme_fruits`` (skipped where that folder is absent) and on a small labelme 3.16 file
written here."""

from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lit_vision.data.segmentation import SegmentationFolderDataModule
from lit_vision.tools import labelme2voc

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LIT_VISION_SHARED_DATA", REPO.parent / "shared" / "data"))
FRUITS = SHARED_DATA / "labelme_fruits"
FRUIT_CLASSES = ("_background_", "date", "fig", "hazelnut")

# Pixels (x, y) of labelme_fruits/0.jpg checked by hand against the polygons of 0.json (and its picture):
# deep inside a date, two figs and two hazelnuts; background in a corner, below the fruit and on an
# unlabelled chocolate; and either side of the edge of date 0 from (133.47, 144.34) to (117.94, 169.81),
# which at y = 158 runs through x = 125.14 and at y = 156 through x = 126.36: (127, 158) lies 1.9 px inside,
# (124, 156) 2.4 px outside.
REAL_PIXELS = {
    (164, 202): "date",
    (250, 360): "fig",
    (440, 180): "fig",
    (130, 360): "hazelnut",
    (555, 260): "hazelnut",
    (50, 50): "_background_",
    (400, 550): "_background_",
    (300, 190): "_background_",
    (127, 158): "date",
    (124, 156): "_background_",
}

# The generated file: a triangle "date" (4, 4) (36, 4) (4, 28) whose long edge is 24 x + 32 y = 992, then a
# square "fig" (20..38 x 2..20) drawn after it, so it covers the triangle where they overlap.
SMALL_SHAPES = [
    ("date", [(4, 4), (36, 4), (4, 28)]),
    ("fig", [(20, 2), (38, 2), (38, 20), (20, 20)]),
]
SMALL_PIXELS = {
    (12, 12): "date",  # 8/32 + 8/24 = 0.58 of the way to the long edge
    (18, 14): "date",  # 24*18 + 32*14 = 880: 2.8 px inside the long edge
    (10, 30): "_background_",  # below the triangle
    (14, 26): "_background_",  # 24*14 + 32*26 = 1168: 4.4 px outside the long edge
    (22, 6): "fig",  # inside both: the later square wins
    (30, 16): "fig",  # square only
    (36, 30): "_background_",
}


# ----------------------------------------------------------------------------- geometry written here
def inside(x: float, y: float, polygon: Sequence[Sequence[float]]) -> bool:
    """Even-odd rule: a ray from (x, y) towards +x crosses the polygon's edges an odd number of times."""
    crossings = 0
    for (x1, y1), (x2, y2) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            crossings += 1
    return crossings % 2 == 1


def edge_distance(x: float, y: float, polygon: Sequence[Sequence[float]]) -> float:
    """Distance from (x, y) to the nearest edge of the polygon."""
    best = math.inf
    for (x1, y1), (x2, y2) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(x - x1 - t * dx, y - y1 - t * dy))
    return best


def label_at(x: int, y: int, shapes: Sequence[tuple[str, Sequence]]) -> str:
    """The label labelme paints at pixel (x, y): the last polygon containing it, else background."""
    label = "_background_"
    for name, points in shapes:
        if inside(x, y, points):
            label = name
    return label


def painted_by_hand(shapes: Sequence[tuple[str, Sequence]], height: int, width: int) -> np.ndarray:
    """Every pixel centre tested with the even-odd rule (vectorised), polygons painted in file order."""
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    out = np.zeros((height, width), np.uint8)
    for name, points in shapes:
        odd = np.zeros((height, width), bool)
        for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
            if y1 == y2:
                continue
            spans = (y1 > yy) != (y2 > yy)
            odd ^= spans & (xx < x1 + (yy - y1) * (x2 - x1) / (y2 - y1))
        out[odd] = FRUIT_CLASSES.index(name)
    return out


def near_an_edge(
    shapes: Sequence[tuple[str, Sequence]], height: int, width: int, within: float
) -> np.ndarray:
    """Pixels within ``within`` px of any polygon edge (where rasterisers may round either way)."""
    yy, xx = np.mgrid[:height, :width].astype(np.float64)
    near = np.zeros((height, width), bool)
    for _, points in shapes:
        for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
            dx, dy = x2 - x1, y2 - y1
            t = np.clip(((xx - x1) * dx + (yy - y1) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
            near |= np.hypot(xx - x1 - t * dx, yy - y1 - t * dy) <= within
    return near


# ----------------------------------------------------------------------------- the checks
def shapes_of(json_path: Path) -> list[tuple[str, list]]:
    doc = json.loads(json_path.read_text())
    return [(s["label"], [tuple(p) for p in s["points"]]) for s in doc["shapes"]]


def loader_mask(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(image, mask, class names)`` of ``name`` as data=segmentation_folder reads it (untransformed)."""
    dm = SegmentationFolderDataModule(root=root, split="test", image_size=32, cache=False, num_workers=0)
    dm.setup("test")
    dataset = dm.datasets["test"]
    image, mask = dataset.raw(dataset.names.index(name))
    return image.permute(1, 2, 0).numpy(), mask.numpy(), list(dm.label_set.names)


def voc_masks(src: Path, name: str, tmp_path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(palette PNG mask, .npy mask, class_names.txt)`` that labelme2voc writes for ``src``."""
    dst = tmp_path / "voc"
    assert labelme2voc.main([str(src), str(dst), "--labels", str(src / "labels.txt")]) == 0
    png = Image.open(dst / "SegmentationClassPNG" / f"{name}.png")
    assert png.mode == "P"
    names = (dst / "class_names.txt").read_text().split()
    return np.asarray(png), np.load(dst / "SegmentationClass" / f"{name}.npy"), names


def check_pixels(
    shapes: Sequence[tuple[str, Sequence]], expected: dict, masks: dict[str, np.ndarray], names: list[str]
) -> None:
    """Point-in-polygon from the JSON gives the hand-checked label, and every mask has it there."""
    for (x, y), label in expected.items():
        assert label_at(x, y, shapes) == label, (x, y)
        distance = min(edge_distance(x, y, points) for _, points in shapes)
        assert distance > 1.5, f"({x}, {y}) is too close to an edge for a rounding-free check"
        for what, mask in masks.items():
            assert names[int(mask[y, x])] == label, f"{what} at ({x}, {y})"


def check_whole_mask(shapes: Sequence[tuple[str, Sequence]], mask: np.ndarray, max_share: float) -> None:
    """Pixel by pixel: the mask equals the even-odd painting except within 2 px of an edge (PIL, and so
    labelme itself, rounds the vertices to whole pixels and paints the outline too), on at most
    ``max_share`` of the pixels."""
    height, width = mask.shape
    by_hand = painted_by_hand(shapes, height, width)
    differ = mask != by_hand
    assert not (differ & ~near_an_edge(shapes, height, width, 2.0)).any()
    assert differ.mean() <= max_share


def write_labelme_316(folder: Path, name: str, size: tuple[int, int]) -> Path:
    """A labelme 3.16 file as that version saves it: colours, ``line_color``/``fill_color`` per shape and
    the picture embedded as base64 ``imageData`` (no image file beside it)."""
    height, width = size
    picture = np.full((height, width, 3), 90, np.uint8)
    picture[::2, ::3] = 160
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    doc = {
        "version": "3.16.2",
        "flags": {},
        "shapes": [
            {
                "label": label,
                "line_color": None,
                "fill_color": None,
                "points": [list(p) for p in points],
                "shape_type": "polygon",
                "flags": {},
            }
            for label, points in SMALL_SHAPES
        ],
        "lineColor": [0, 255, 0, 128],
        "fillColor": [255, 0, 0, 128],
        "imagePath": f"{name}.jpg",
        "imageData": base64.b64encode(buffer.getvalue()).decode("ascii"),
        "imageHeight": height,
        "imageWidth": width,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc))
    (folder / "labels.txt").write_text("\n".join(["__ignore__", *FRUIT_CLASSES]) + "\n")
    return path


def test_small_labelme_316_file_pixel_by_pixel(tmp_path):
    src = tmp_path / "lm"
    json_path = write_labelme_316(src, "small", (32, 40))
    shapes = shapes_of(json_path)
    image, mask, names = loader_mask(src, "small")
    assert image.shape == (32, 40, 3) and names == list(FRUIT_CLASSES)
    png, npy, voc_names = voc_masks(src, "small", tmp_path)
    assert voc_names == list(FRUIT_CLASSES)
    check_pixels(
        shapes, SMALL_PIXELS, {"loader": mask, "labelme2voc png": png, "labelme2voc npy": npy}, names
    )
    assert np.array_equal(png, mask) and np.array_equal(npy, mask)
    check_whole_mask(shapes, mask, max_share=0.05)  # a 32 x 40 picture: edges are a large share


@pytest.mark.skipif(not FRUITS.is_dir(), reason="no ../shared/data/labelme_fruits beside the repo")
def test_real_labelme_fruits_file_pixel_by_pixel(tmp_path):
    shapes = shapes_of(FRUITS / "0.json")
    assert len(shapes) == 12 and {label for label, _ in shapes} == {"date", "fig", "hazelnut"}
    image, mask, names = loader_mask(FRUITS, "0")  # the whole real folder, labels found in the annotations
    assert image.shape == (600, 800, 3) and names == list(FRUIT_CLASSES)
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy(FRUITS / "0.json", src / "0.json")  # without 0.jpg: labelme2voc uses the embedded imageData
    (src / "labels.txt").write_text("\n".join(["__ignore__", *FRUIT_CLASSES]) + "\n")
    png, npy, voc_names = voc_masks(src, "0", tmp_path)
    assert voc_names == list(FRUIT_CLASSES)
    check_pixels(shapes, REAL_PIXELS, {"loader": mask, "labelme2voc png": png, "labelme2voc npy": npy}, names)
    assert np.array_equal(png, mask) and np.array_equal(npy, mask)
    check_whole_mask(shapes, mask, max_share=0.01)
    # every class covers about the area of its polygons (shoelace formula), so no class is shifted or lost
    for index, name in enumerate(FRUIT_CLASSES[1:], start=1):
        area = sum(
            0.5 * abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(p, [*p[1:], p[0]], strict=True)))
            for label, p in shapes
            if label == name
        )
        assert (mask == index).sum() == pytest.approx(area, rel=0.03), name


@pytest.mark.skipif(not FRUITS.is_dir(), reason="no ../shared/data/labelme_fruits beside the repo")
def test_real_labelme_fruits_folder_finds_its_classes_and_splits():
    dm = SegmentationFolderDataModule(root=FRUITS, image_size=64, cache=False, num_workers=0)
    dm.discover()
    assert dm.layout == "labelme" and len(dm.items) == 18
    assert dm.class_names == ["background", "date", "fig", "hazelnut"]
    parts = dm.split_positions()
    assert sorted(parts["train"] + parts["val"] + parts["test"]) == list(range(18))
