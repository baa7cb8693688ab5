"""Reading images and class-index masks from disk, with one clear error per unreadable file.

Images decode as for classification (``lit_vision.data.image_io``): EXIF orientation applied, as labelme
shows and annotates them; grey, RGBA, palette and 16-bit images converted to RGB. An unreadable file is a
:class:`~lit_vision.data.validation.BadFileError` (``data.on_bad_sample=skip`` may leave it out).
"""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from lit_vision.data.image_io import (
    BadImageError,
    decode_image_bytes,
    decode_image_file,
    inspect_image,
    pixel_limit,
)
from lit_vision.data.segmentation.labels import IGNORE_INDEX, voc_colormap
from lit_vision.data.validation import BadFileError
from lit_vision.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageInfo(NamedTuple):
    """``(height, width)`` of an image as decoded, and its stored PIL mode (None: not known)."""

    height: int
    width: int
    mode: str | None = None


def _unreadable(label: str, reason: str) -> BadFileError:
    return BadFileError(
        f"{label}: cannot read the image ({reason}). Replace it with a readable JPEG/PNG or remove it and "
        "its annotation from the data folder (or set data.on_bad_sample=skip to leave such images out).",
        path=label,
        reason=reason,
    )


def read_rgb(
    source: str | Path | io.BytesIO, name: str | None = None, exif_orientation: bool = True
) -> np.ndarray:
    """Decode an image as ``(H, W, 3)`` uint8 RGB (see the module docstring for the conversions)."""
    label = name or str(source)
    try:
        if isinstance(source, io.BytesIO):
            image = decode_image_bytes(source.getvalue(), 3, label)
        else:
            image = decode_image_file(source, 3, exif_orientation=exif_orientation)
    except BadImageError as err:
        raise _unreadable(label, err.reason) from None
    return image.permute(1, 2, 0).numpy()


def image_info(path: Path, exif_orientation: bool = True) -> ImageInfo:
    """Size (as decoded) and mode of an image file from its header; the file is checked to be complete
    (a truncated file fails here, before training), but its pixels are not decoded."""
    try:
        header = inspect_image(path)
    except BadImageError as err:
        raise _unreadable(str(path), err.reason) from None
    width, height = header.displayed_size if exif_orientation else header.size
    return ImageInfo(height, width, header.mode)


def image_size(path: Path, exif_orientation: bool = True) -> tuple[int, int]:
    """``(height, width)`` of an image file from its header (no pixel decoding)."""
    info = image_info(path, exif_orientation)
    return info.height, info.width


def read_index_mask(path: Path) -> np.ndarray:
    """Read a class-index mask as ``(H, W)`` uint8.

    Palette ('P') and grey PNGs hold the indices themselves (the VOC/labelme format); RGB masks are mapped
    back through the VOC colour map; ``.npy`` arrays (labelme2voc's SegmentationClass) use -1 for ignore.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path)
        except Exception as exc:  # OSError, ValueError, EOFError, pickle errors...
            raise BadFileError(
                f"{path}: cannot read the mask array ({exc}); regenerate it.", path=path
            ) from None
        if array.ndim != 2:
            raise UserError(f"{path}: a mask array must be 2-D (H, W), got shape {array.shape}.")
        array = np.where(array < 0, IGNORE_INDEX, array)
        return index_values(path, array)
    try:
        with pixel_limit(), Image.open(path) as image:
            if image.mode in ("P", "L", "1"):
                return np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8).copy()
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                return index_values(path, np.asarray(image))
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except UserError:
        raise
    except Exception as exc:  # PIL raises many types for damaged files (OSError, SyntaxError, EOFError...)
        raise BadFileError(
            f"{path}: cannot read the mask ({exc}); regenerate it or remove the image pair.", path=path
        ) from None
    return rgb_to_index(path, rgb)


# Marks colours that are not in the VOC colour map.
_NOT_A_CLASS = 256


@functools.lru_cache(maxsize=1)
def _colour_table() -> np.ndarray:
    """24-bit colour code -> VOC class index, or _NOT_A_CLASS (a linear-time lookup for RGB masks)."""
    cmap = voc_colormap(256).astype(np.int64)
    table = np.full(1 << 24, _NOT_A_CLASS, dtype=np.uint16)
    table[(cmap[:, 0] << 16) | (cmap[:, 1] << 8) | cmap[:, 2]] = np.arange(256)
    return table


def rgb_to_index(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Map an RGB mask drawn with the VOC colour map back to class indices."""
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    indices = _colour_table()[codes]
    unknown_pixels = indices == _NOT_A_CLASS
    if unknown_pixels.any():
        unknown = np.unique(codes[unknown_pixels][:100_000]).tolist()
        colours = [((u >> 16) & 255, (u >> 8) & 255, u & 255) for u in unknown[:5]]
        raise UserError(
            f"{path}: an RGB mask must use the VOC colour map (background black, class 1 (128, 0, 0), ...); "
            f"it has other colours such as {colours}. Save masks as palette or greyscale PNGs whose pixel "
            "values are the class indices."
        )
    return indices.astype(np.uint8)


def index_values(path: Path, values: np.ndarray) -> np.ndarray:
    """Class-index values as uint8; UserError when some are negative or above IGNORE_INDEX."""
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() > IGNORE_INDEX):
        raise UserError(
            f"{path}: mask values must be class indices 0..254 or {IGNORE_INDEX} (ignore); found values from "
            f"{values.min()} to {values.max()}. For a binary mask set data.mask_threshold to the grey level "
            "from which a pixel is the class (e.g. 128), or save class indices."
        )
    return values.astype(np.uint8)
