"""Reading mask files as class indices, with ``data.mask_threshold`` for binary (0/255) masks.

``data.mask_threshold`` says how a mask's pixel values become classes:

- ``auto`` (the default) decides per file:

  - palette PNGs and ``.npy`` arrays hold class indices (what VOC and labelme2voc write), 255 = ignore
    (a palette PNG of only 0 and 255 is binary); RGB masks in the VOC colours are mapped back to their
    indices, and RGB masks that are grey pictures (channels about equal) are read as grey;
  - a grey mask holding only 0 and one value of at least 128 (a 0/255 PNG, a 1-bit PNG) is binary:
    that value is class 1;
  - a grey mask whose values are all below 128 (or 255) holds class indices, 255 = ignore (as before);
  - a grey mask whose values cluster near 0 and near its maximum, with at most 2% of its pixels in
    between (a 0/255 mask saved as JPEG, with compression noise), is binary, thresholded at half its
    maximum;
  - any other mask is a :class:`~lit_vision.errors.UserError` naming the file and the fix.

- ``off``: the values are class indices, never thresholded.
- an integer ``t`` (1..65535): every mask is binary, class 1 where the value (grey level) is ``>= t``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from lit_vision.data.image_io import pixel_limit
from lit_vision.data.segmentation.images import index_values, rgb_to_index
from lit_vision.data.segmentation.labels import IGNORE_INDEX
from lit_vision.data.validation import BadFileError
from lit_vision.errors import UserError

THRESHOLD_WORDS = ("auto", "off")
# Values from here up (except 255 = ignore) are no plausible class index of an index mask.
BRIGHT = 128
# A two-level mask may have this share of its pixels between 1/4 and 3/4 of its maximum (edge noise).
MAX_MIDDLE_SHARE = 0.02
# RGB masks whose channels differ by at most this much everywhere are grey pictures (JPEG chroma noise).
GREY_CHANNEL_SPREAD = 32
GREY_MODES = ("L", "1", "I", "I;16", "I;16B", "I;16L", "F")


class RawMask(NamedTuple):
    """A mask file's pixel values before interpretation: ``kind`` is ``palette`` (P-mode PNG), ``array``
    (``.npy``), ``grey`` (one channel) or ``colour`` (``(H, W, 3)`` RGB)."""

    values: np.ndarray
    kind: str


def parse_mask_threshold(value: Any) -> str | int:
    """``data.mask_threshold`` as ``"auto"``, ``"off"`` or an int in 1..65535; UserError otherwise
    (null and false, which YAML makes of a bare ``off``, mean ``"off"``)."""
    if value is None or value is False:
        return "off"
    if isinstance(value, str) and value.strip().lower() in THRESHOLD_WORDS:
        return value.strip().lower()
    number = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
        raise UserError(
            f"data.mask_threshold is {value!r}; use auto (detect 0/255 binary masks, keep class-index masks), "
            "off (mask values are class indices), or a whole number such as 128 (pixels >= it are class 1)."
        )
    return number


def read_raw_mask(path: str | Path) -> RawMask:
    """Decode a mask file's values without interpreting them (see :class:`RawMask`)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return RawMask(_load_npy(path), "array")
    try:
        with pixel_limit(), Image.open(path) as image:
            if image.mode == "P":
                return RawMask(np.asarray(image, dtype=np.uint8).copy(), "palette")
            if image.mode in GREY_MODES:
                grey = image.convert("L") if image.mode == "1" else image
                return RawMask(np.asarray(grey).copy(), "grey")
            if image.mode == "LA":
                return RawMask(np.asarray(image.getchannel("L")).copy(), "grey")
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except UserError:
        raise
    except Exception as exc:  # PIL raises many types for damaged files (OSError, SyntaxError, EOFError...)
        raise BadFileError(
            f"{path}: cannot read the mask ({exc}); regenerate it or remove the image pair.",
            path=path,
            reason=str(exc),
        ) from None
    return RawMask(rgb, "colour")


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path)
    except Exception as exc:  # OSError, ValueError, EOFError, pickle errors...
        raise BadFileError(f"{path}: cannot read the mask array ({exc}); regenerate it.", path=path) from None
    if array.ndim != 2:
        raise UserError(f"{path}: a mask array must be 2-D (H, W), got shape {array.shape}.")
    return array


def _looks_grey(rgb: np.ndarray) -> bool:
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    return bool(spread.size) and int(spread.max()) <= GREY_CHANNEL_SPREAD


def read_mask(path: str | Path, threshold: str | int = "auto") -> np.ndarray:
    """Read a mask file as ``(H, W)`` uint8 class indices (IGNORE_INDEX = ignore) under ``threshold``."""
    return interpret_mask(Path(path), read_raw_mask(path), parse_mask_threshold(threshold))


def interpret_mask(path: Path, raw: RawMask, threshold: str | int) -> np.ndarray:
    """Turn raw mask values into class indices by the rules of ``threshold`` (see the module docstring)."""
    if isinstance(threshold, int):
        return binarize(_grey_of(raw), threshold)
    if raw.kind == "colour":
        return _colour_mask(path, raw.values, threshold)
    if raw.kind == "array":
        return index_values(path, np.where(raw.values < 0, IGNORE_INDEX, raw.values))
    if threshold == "off":
        return index_values(path, raw.values)
    if raw.kind == "palette":
        # a palette PNG of only 0 and 255 is a binary mask (as index mask it would be background + ignore)
        only_255 = _binary_level(np.unique(raw.values)) == IGNORE_INDEX
        return binarize(raw.values, IGNORE_INDEX) if only_255 else index_values(path, raw.values)
    return auto_grey(path, raw.values)


def _colour_mask(path: Path, rgb: np.ndarray, threshold: str) -> np.ndarray:
    """VOC colours -> indices; with ``auto``, a grey picture saved as RGB is read as a grey mask."""
    try:
        return rgb_to_index(path, rgb)
    except UserError:
        if threshold != "auto" or not _looks_grey(rgb):
            raise
    return auto_grey(path, np.asarray(Image.fromarray(rgb).convert("L")))


def _grey_of(raw: RawMask) -> np.ndarray:
    if raw.kind != "colour":
        return raw.values
    return np.asarray(Image.fromarray(raw.values).convert("L"))


def binarize(values: np.ndarray, threshold: float) -> np.ndarray:
    """1 where ``values >= threshold``, else 0, as uint8."""
    return (values >= threshold).astype(np.uint8)


def _binary_level(distinct: np.ndarray) -> int | None:
    """The foreground value of a mask whose sorted distinct values are only 0 and one value >= BRIGHT."""
    if not distinct.size:
        return None
    top = int(distinct[-1])
    return top if top >= BRIGHT and set(distinct.tolist()) <= {0, top} else None


def auto_grey(path: Path, values: np.ndarray) -> np.ndarray:
    """``mask_threshold=auto`` for a grey mask: binary 0/max, class indices, or two-level with noise."""
    distinct = np.unique(values)
    level = _binary_level(distinct)
    if level is not None:
        return binarize(values, level)
    if np.all((distinct < BRIGHT) | (distinct == IGNORE_INDEX)):
        return index_values(path, values)
    top = float(distinct[-1])
    middle = float(np.mean((values > top / 4) & (values < 3 * top / 4)))
    if middle <= MAX_MIDDLE_SHARE:
        return (values.astype(np.float64) * 2 > top).astype(np.uint8)  # above the midpoint: class 1
    raise UserError(
        f"{path}: its values fit no rule of data.mask_threshold=auto: they are not class indices (0..127, "
        f"{IGNORE_INDEX} = ignore) and not a two-level mask (values near 0 and near its maximum {top:g}: "
        f"{middle:.0%} of its pixels lie between {top / 4:g} and {3 * top / 4:g}, more than "
        f"{MAX_MIDDLE_SHARE:.0%}). If it is a binary mask, set data.mask_threshold to the grey level from "
        "which a pixel is the class (e.g. data.mask_threshold=128); otherwise save it as a PNG whose pixel "
        "values are class indices."
    )
