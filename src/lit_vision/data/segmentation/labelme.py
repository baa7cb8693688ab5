"""labelme annotations: read the JSON files and rasterise their shapes into class-index masks.

One rasteriser serves training and ``python -m lit_vision.tools.labelme2voc``. It follows labelme's own
conventions: shapes are painted in file order (a later shape covers an earlier one); polygons and rectangles
are filled with their outline; a circle is centre + a point on the rim; lines and line strips are 10 px
wide; a point is a disc of radius 5; ``mask`` shapes carry a base64 PNG for their bounding box. Pixels
of shapes labelled ``__ignore__`` get IGNORE_INDEX.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from lit_vision.data.segmentation.images import read_rgb
from lit_vision.data.segmentation.labels import LabelSet
from lit_vision.data.validation import BadFileError
from lit_vision.errors import UserError

LINE_WIDTH = 10
# Larger coordinates are no pixel of any image (and overflow PIL's drawing): a damaged annotation.
MAX_COORDINATE = 1e6
POINT_RADIUS = 5
# shape type -> (minimum points, maximum points or None)
POINT_COUNTS: dict[str, tuple[int, int | None]] = {
    "polygon": (3, None),
    "rectangle": (2, 2),
    "circle": (2, 2),
    "line": (2, 2),
    "linestrip": (2, None),
    "point": (1, 1),
    "mask": (2, 2),
}


@dataclass
class LabelmeShape:
    """One annotated shape: its label, type and points in image pixel coordinates (x, y)."""

    label: str
    shape_type: str
    points: list[tuple[float, float]]
    mask: np.ndarray | None = None  # only for shape_type "mask": the bitmap of the bounding box


@dataclass
class LabelmeAnnotation:
    """A parsed labelme JSON file."""

    path: Path
    image_path: Path | None
    image_data: str | None
    height: int | None
    width: int | None
    shapes: list[LabelmeShape] = field(default_factory=list)

    @property
    def labels(self) -> set[str]:
        return {shape.label for shape in self.shapes}


def read_labelme(path: str | Path) -> LabelmeAnnotation:
    """Parse and check one labelme JSON file (shape types, point counts); image pixels are not read."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadFileError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}). "
            "Re-save it from labelme or fix the syntax at that position.",
            path=path,
        ) from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise BadFileError(f"{path}: cannot read the labelme file ({exc}).", path=path) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list):
        raise UserError(
            f"{path}: not a labelme annotation (no 'shapes' list). Only labelme JSON files belong next to the "
            "images; move other JSON files out of the data folder."
        )
    for key in ("imagePath", "imageData"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise UserError(
                f"{path}: '{key}' must be a string, got {type(doc[key]).__name__} {_clip(doc[key])}. Re-save "
                "the annotation from labelme."
            )
    image_path = None
    if doc.get("imagePath"):
        # labelme on Windows writes backslashes; the path is relative to the JSON file's folder.
        image_path = path.parent / str(doc["imagePath"]).replace("\\", "/")
    shapes = [parse_shape(raw, f"{path}: shape {i}") for i, raw in enumerate(doc["shapes"])]
    return LabelmeAnnotation(
        path=path,
        image_path=image_path,
        image_data=doc.get("imageData") or None,
        height=_image_dimension(doc, "imageHeight", path),
        width=_image_dimension(doc, "imageWidth", path),
        shapes=shapes,
    )


def _image_dimension(doc: dict[str, Any], key: str, path: Path) -> int | None:
    """``imageHeight`` / ``imageWidth``: absent/null, or a positive whole number (UserError otherwise)."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        value_ok = False
    else:
        value_ok = value > 0 and float(value).is_integer()
    if not value_ok:
        raise UserError(
            f"{path}: '{key}' is {_clip(value)}, not a positive whole number of pixels. Re-open the image in "
            "labelme and save the annotation again."
        )
    return int(value)


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_shape(raw: Any, where: str = "shape") -> LabelmeShape:
    """Check one labelme shape dict (type, point count, bitmap) and parse it; ``where`` prefixes errors."""
    if not isinstance(raw, dict) or "label" not in raw or "points" not in raw:
        raise UserError(f"{where} has no 'label' or 'points'; re-save the file from labelme.")
    label = str(raw["label"])
    shape_type = str(raw.get("shape_type") or "polygon")
    if shape_type not in POINT_COUNTS:
        raise UserError(
            f"{where} (label {label!r}) has shape_type {shape_type!r}; supported types are "
            f"{sorted(POINT_COUNTS)}. Redraw it as one of those."
        )
    try:
        points = [(float(p[0]), float(p[1])) for p in raw["points"]]
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        raise UserError(
            f"{where} (label {label!r}): points must be [x, y] pairs of numbers; redraw it in labelme."
        ) from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for point in points for v in point):
        raise UserError(
            f"{where} (label {label!r}) has a point that is not a finite pixel coordinate ({_clip(points)}); "
            "redraw it in labelme."
        )
    low, high = POINT_COUNTS[shape_type]
    if len(points) < low or (high is not None and len(points) > high):
        wanted = f"at least {low}" if high is None else (f"{low}" if low == high else f"{low} to {high}")
        fix = (
            "add points or delete the shape in labelme" if shape_type == "polygon" else "redraw it in labelme"
        )
        raise UserError(
            f"{where} (label {label!r}) is a {shape_type} with {len(points)} point(s); a {shape_type} needs "
            f"{wanted}. {fix[0].upper()}{fix[1:]}."
        )
    bitmap = None
    if shape_type == "mask":
        bitmap = _decode_mask(where, raw.get("mask"))
    return LabelmeShape(label=label, shape_type=shape_type, points=points, mask=bitmap)


def _decode_mask(where: str, data: Any) -> np.ndarray:
    if not data:
        raise UserError(f"{where} is a 'mask' shape without its base64 'mask' bitmap; redraw it in labelme.")
    try:
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            return np.asarray(image).astype(bool)
    except Exception as exc:
        raise UserError(
            f"{where}: its 'mask' bitmap is not a base64 PNG ({exc}); redraw it in labelme."
        ) from exc


def check_labels(annotation: LabelmeAnnotation, label_set: LabelSet, source: str = "labels.txt") -> None:
    """Raise UserError when a shape's label is not in ``label_set`` (nor ``__ignore__``)."""
    for i, shape in enumerate(annotation.shapes):
        if label_set.index(shape.label) is None:
            raise UserError(
                f"{annotation.path}: shape {i} has label {shape.label!r}, which is not in {source} "
                f"(classes: {list(label_set.names)}). Add {shape.label!r} to {source} or rename the shape "
                "in labelme."
            )


def rasterize_shapes(
    shapes: Sequence[LabelmeShape], height: int, width: int, label_set: LabelSet, source: str = "annotation"
) -> np.ndarray:
    """Paint ``shapes`` in order onto an ``(height, width)`` uint8 mask (0 = background)."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for shape in shapes:
        value = label_set.index(shape.label)
        if value is None:
            raise UserError(
                f"{source}: label {shape.label!r} is not in the class list {list(label_set.names)}."
            )
        draw_shape(draw, canvas, shape, value)
    return np.asarray(canvas, dtype=np.uint8).copy()


def draw_shape(draw: ImageDraw.ImageDraw, canvas: Image.Image, shape: LabelmeShape, value: int) -> None:
    """Paint one shape with ``value`` (labelme's geometry for each shape type)."""
    xy = shape.points
    kind = shape.shape_type
    if kind == "polygon":
        draw.polygon(xy, fill=value, outline=value)
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = xy
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=value, outline=value)
    elif kind == "circle":
        (cx, cy), (px, py) = xy
        r = math.hypot(cx - px, cy - py)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
    elif kind in ("line", "linestrip"):
        draw.line(xy, fill=value, width=LINE_WIDTH)
    elif kind == "point":
        (cx, cy) = xy[0]
        r = POINT_RADIUS
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=value, outline=value)
    elif kind == "mask":
        # labelme places the bitmap at the first point's integer (truncated) coordinates.
        x0, y0 = int(xy[0][0]), int(xy[0][1])
        bitmap = Image.fromarray(shape.mask.astype(np.uint8) * 255)
        canvas.paste(value, (x0, y0, x0 + bitmap.width, y0 + bitmap.height), mask=bitmap)
    else:  # guarded by parse_shape
        raise ValueError(kind)


def load_labelme_image(annotation: LabelmeAnnotation) -> np.ndarray:
    """The annotation's image as ``(H, W, 3)`` uint8: the file at imagePath, else the embedded imageData."""
    if annotation.image_path is not None and annotation.image_path.is_file():
        image = read_rgb(annotation.image_path)
    elif annotation.image_data:
        try:
            raw = base64.b64decode(annotation.image_data)
        except ValueError:
            raise BadFileError(
                f"{annotation.path}: imageData is not valid base64; re-save it from labelme.",
                path=annotation.path,
            ) from None
        image = read_rgb(io.BytesIO(raw), name=f"{annotation.path} (imageData)")
    else:
        missing = annotation.image_path or "(no imagePath)"
        raise UserError(
            f"{annotation.path}: its image {missing} does not exist and the file embeds no imageData. Put the "
            "image next to the JSON file under the name in 'imagePath', or fix 'imagePath'."
        )
    height, width = image.shape[:2]
    if (annotation.height, annotation.width) != (None, None) and (annotation.height, annotation.width) != (
        height,
        width,
    ):
        raise UserError(
            f"{annotation.path}: imageHeight x imageWidth is {annotation.height} x {annotation.width} but the "
            f"image is {height} x {width}. The annotation belongs to another image: re-open the image in "
            "labelme and save the annotation again."
        )
    return image


def load_labelme_sample(
    path: str | Path, label_set: LabelSet, source: str = "labels.txt"
) -> tuple[np.ndarray, np.ndarray]:
    """Read one labelme JSON and its image: ``(image (H, W, 3) uint8, mask (H, W) uint8)``."""
    annotation = read_labelme(path)
    check_labels(annotation, label_set, source)
    image = load_labelme_image(annotation)
    mask = rasterize_shapes(
        annotation.shapes, image.shape[0], image.shape[1], label_set, str(annotation.path)
    )
    return image, mask
