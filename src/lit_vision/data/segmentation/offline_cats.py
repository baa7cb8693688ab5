"""The offline cats: real cat photos with binary masks, shipped inside the package (``assets/cats``).

They are a subset of cats81 (GitHub ardamavi/Cat-Segmentation, ``Data/Train_Data``, Apache-2.0; the
licence and the list of changes are in ``assets/cats/LICENSE`` and ``README.md``): photos resized so the
long side is at most 256 px and saved as JPEG quality 90, masks thresholded at 128, resized alike (area
average, thresholded again) and saved as 0/255 PNGs. ``data=cats`` reads them in place when its default
folder holds no data. Rebuild them from the original folder (``images/`` + ``masks/``) with::

    python -m lit_vision.data.segmentation.offline_cats SRC DST
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

ASSET = "assets/cats"
# cat.0 .. cat.59 ship; cat.60 .. cat.80 of cats81 stay out, so they are photos the default never saw.
SHIPPED_IDS = tuple(range(60))
LONG_SIDE = 256
JPEG_QUALITY = 90
MASK_LEVEL = 128
CLASS_NAMES = ("_background_", "cat")


def shipped_cats_root() -> Path:
    """The folder of the shipped cats (``images/`` + ``masks/`` + ``class_names.txt``) inside the package."""
    return Path(str(resources.files("lit_vision").joinpath(ASSET)))


def fitted_size(width: int, height: int, long_side: int = LONG_SIDE) -> tuple[int, int]:
    """``(width, height)`` scaled down so the long side is at most ``long_side`` (never scaled up)."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink_photo(photo: Image.Image, long_side: int = LONG_SIDE) -> Image.Image:
    """The photo as RGB with its long side at most ``long_side`` (Lanczos)."""
    photo = photo.convert("RGB")
    size = fitted_size(*photo.size, long_side)
    return photo if size == photo.size else photo.resize(size, Image.Resampling.LANCZOS)


def shrink_mask(mask: Image.Image, long_side: int = LONG_SIDE, level: int = MASK_LEVEL) -> Image.Image:
    """A grey mask thresholded at ``level``, resized by area average and thresholded again: 0/255, mode L."""
    binary = Image.fromarray(np.where(np.asarray(mask.convert("L")) >= level, 255, 0).astype(np.uint8))
    size = fitted_size(*binary.size, long_side)
    if size != binary.size:
        binary = binary.resize(size, Image.Resampling.BOX)
    return Image.fromarray(np.where(np.asarray(binary) >= 128, 255, 0).astype(np.uint8))


def numbered(stem: str) -> int:
    """The number in ``cat.<n>`` (for a numeric order of cats81's names)."""
    match = re.search(r"(\d+)$", stem)
    return int(match.group(1)) if match else -1


def build_cats_asset(src: str | Path, dst: str | Path, ids: tuple[int, ...] = SHIPPED_IDS) -> list[str]:
    """Write ``dst/images/cat.<id>.jpg``, ``dst/masks/cat.<id>.png`` and ``dst/class_names.txt`` from the
    cats81 folder ``src`` (``images/`` + ``masks/`` JPEGs); returns the stems written."""
    src, dst = Path(src), Path(dst)
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "masks").mkdir(parents=True, exist_ok=True)
    wanted = set(ids)
    stems = sorted(
        (p.stem for p in (src / "images").glob("*.jpg") if numbered(p.stem) in wanted), key=numbered
    )
    for stem in stems:
        with (
            Image.open(src / "images" / f"{stem}.jpg") as photo,
            Image.open(src / "masks" / f"{stem}.jpg") as mask,
        ):
            if photo.size != mask.size:
                raise ValueError(f"{stem}: the photo is {photo.size} but its mask {mask.size}")
            shrink_photo(photo).save(dst / "images" / f"{stem}.jpg", quality=JPEG_QUALITY, optimize=True)
            shrink_mask(mask).save(dst / "masks" / f"{stem}.png", optimize=True)
    (dst / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n", encoding="utf-8")
    return stems


def main(argv: list[str] | None = None) -> int:
    """Command line: rebuild the shipped cats from a cats81 folder."""
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.data.segmentation.offline_cats",
        description="Write the shipped offline cats (resized photos, 0/255 PNG masks) from cats81.",
    )
    parser.add_argument("src", help="the cats81 folder (images/ + masks/)")
    parser.add_argument("dst", help="output folder, e.g. src/lit_vision/assets/cats")
    args = parser.parse_args(argv)
    stems = build_cats_asset(args.src, args.dst)
    print(f"{args.dst}: {len(stems)} photos with masks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
