"""Class lists for segmentation: labelme's ``labels.txt`` convention and the VOC colour palette."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_vision.errors import UserError

IGNORE_LABEL = "__ignore__"
BACKGROUND_LABEL = "_background_"
# Pixels with this value count for neither loss nor metrics (labelme's __ignore__, VOC's object borders).
IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSet:
    """Class names in mask order: ``names[0]`` is the background; ``__ignore__`` maps to IGNORE_INDEX."""

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.names) < 2:
            raise UserError(
                f"a segmentation label set needs the background and at least one class, got {self.names}"
            )
        if len(self.names) > IGNORE_INDEX:
            raise UserError(f"at most {IGNORE_INDEX} classes fit in 8-bit masks, got {len(self.names)}")
        if len(set(self.names)) != len(self.names):
            duplicates = sorted({n for n in self.names if self.names.count(n) > 1})
            raise UserError(f"class names must be unique; repeated: {duplicates}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, label: str) -> int | None:
        """Mask value of ``label`` (IGNORE_INDEX for ``__ignore__``), or None when it is not a class."""
        if label == IGNORE_LABEL:
            return IGNORE_INDEX
        try:
            return self.names.index(label)
        except ValueError:
            return None

    def display_names(self) -> list[str]:
        """Names for logs and metric keys: ``_background_`` is shown as ``background``."""
        return [name.strip("_") or name for name in self.names]

    def to_labels_txt(self) -> str:
        """The labelme ``labels.txt`` text: ``__ignore__``, then the classes, background first."""
        return "\n".join([IGNORE_LABEL, *self.names]) + "\n"


def parse_labels_txt(path: Path) -> LabelSet:
    """Read a labelme ``labels.txt``: optional ``__ignore__`` first, then ``_background_``, then classes."""
    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise UserError(f"cannot read the label list {path}: {exc}. Give a readable labels.txt.") from exc
    names = [line for line in lines if line and not line.startswith("#")]
    return label_set_from_names(names, source=str(path))


def label_set_from_names(names: Sequence[str], source: str = "the class list") -> LabelSet:
    """Build a LabelSet from labelme-style names (``__ignore__`` optional and first, background next)."""
    names = [str(n) for n in names]
    if names and names[0] == IGNORE_LABEL:
        names = names[1:]
    if IGNORE_LABEL in names:
        raise UserError(
            f"{source}: '{IGNORE_LABEL}' must be the first line (it marks pixels to ignore, not a class)."
        )
    if not names or names[0] != BACKGROUND_LABEL:
        first = names[0] if names else "nothing"
        raise UserError(
            f"{source}: after '{IGNORE_LABEL}' the first class must be '{BACKGROUND_LABEL}' (mask value 0), "
            f"found {first!r}. Write labels.txt as labelme expects: '{IGNORE_LABEL}', '{BACKGROUND_LABEL}', "
            "then one class per line."
        )
    return LabelSet(tuple(names))


def discover_label_set(labels: Iterable[str]) -> LabelSet:
    """A label set from the labels used in annotations: background first, then the others sorted."""
    found = sorted({str(label) for label in labels} - {IGNORE_LABEL, BACKGROUND_LABEL})
    return LabelSet((BACKGROUND_LABEL, *found))


def voc_colormap(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map (what labelme and VOC use for palette PNGs): ``(n, 3)`` uint8.

    Class ``i``'s colour spreads the bits of ``i`` over the high bits of R, G and B, so neighbouring
    indices get distinct colours; index 255 (ignore) is (224, 224, 192).
    """
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
            if c == 0:
                break
        cmap[index] = (r, g, b)
    return cmap
