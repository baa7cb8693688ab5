"""Convert a folder of labelme annotations to the VOC segmentation layout (what labelme's example does).

    python -m lit_vision.tools.labelme2voc SRC DST --labels labels.txt

Writes, for every ``SRC/**/*.json``:

- ``DST/JPEGImages/<name>.jpg``: the image;
- ``DST/SegmentationClass/<name>.npy``: the class-index mask as int32, -1 where ``__ignore__`` shapes are;
- ``DST/SegmentationClassPNG/<name>.png``: the same mask as a palette PNG (values = class indices,
  255 = ignore, VOC colours);
- ``DST/SegmentationClassVisualization/<name>.jpg``: the image blended 70/30 with the coloured mask;
- ``DST/class_names.txt``: the classes, background first (``__ignore__`` left out).

Training does not need this step (``data=cats`` / ``data=segmentation_folder`` rasterise labelme JSON
directly, with the same code); ``data.root=DST`` reads the result too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lit_vision.data.segmentation.folder import VOC_IMAGE_DIR, find_label_set, scan_folder
from lit_vision.data.segmentation.labelme import load_labelme_sample
from lit_vision.data.segmentation.labels import IGNORE_INDEX, LabelSet
from lit_vision.errors import UserError
from lit_vision.viz.segmentation import DEFAULT_ALPHA, blend, mask_to_image


def convert(
    src: str | Path,
    dst: str | Path,
    labels: str | Path | None = None,
    npy: bool = True,
    alpha: float = DEFAULT_ALPHA,
) -> tuple[int, LabelSet]:
    """Write the VOC layout of ``src`` into ``dst`` (which must be missing or empty); return (count, classes)."""
    src, dst = Path(src), Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise UserError(f"the output folder {dst} already exists and is not empty; choose a new folder.")
    _, items = scan_folder(src, "labelme")
    label_set, source = find_label_set(src, "labelme", items, labels)
    stems: dict[str, Path] = {}
    for item in items:
        stem = Path(item.name).name
        if stem in stems:
            raise UserError(
                f"{item.annotation} and {stems[stem]} would both become {stem}.* in {dst}; rename one of them."
            )
        stems[stem] = item.annotation
    folders = {
        "images": dst / VOC_IMAGE_DIR,
        "npy": dst / "SegmentationClass",
        "png": dst / "SegmentationClassPNG",
        "viz": dst / "SegmentationClassVisualization",
    }
    for key, folder in folders.items():
        if key != "npy" or npy:
            folder.mkdir(parents=True, exist_ok=True)
    for stem, path in stems.items():
        image, mask = load_labelme_sample(path, label_set, source)
        Image.fromarray(image).save(folders["images"] / f"{stem}.jpg", quality=95)
        if npy:
            np.save(folders["npy"] / f"{stem}.npy", np.where(mask == IGNORE_INDEX, -1, mask).astype(np.int32))
        mask_to_image(mask).save(folders["png"] / f"{stem}.png")
        blend(image, mask, alpha).save(folders["viz"] / f"{stem}.jpg", quality=95)
    (dst / "class_names.txt").write_text("\n".join(label_set.names) + "\n", encoding="utf-8")
    return len(stems), label_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.tools.labelme2voc",
        description="Write the VOC segmentation layout (images, masks, visualisations) from labelme JSON files.",
    )
    parser.add_argument("src", help="folder of labelme JSON files next to their images")
    parser.add_argument("dst", help="output folder (must not exist or be empty)")
    parser.add_argument(
        "--labels",
        help="labels.txt: __ignore__, _background_, then one class per line (default: SRC/labels.txt)",
    )
    parser.add_argument("--no-npy", action="store_true", help="skip SegmentationClass/*.npy")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="mask weight in the visualisation")
    args = parser.parse_args(argv)
    try:
        count, label_set = convert(args.src, args.dst, args.labels, npy=not args.no_npy, alpha=args.alpha)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.dst}: {count} images, classes {list(label_set.names)}")
    print(
        f"train on it with: python train.py model=unet data=segmentation_folder data.root={Path(args.dst).resolve()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
