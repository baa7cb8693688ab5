"""Build a multi-label data set from single-label photos: 2x2 mosaics labelled with the classes they show.

    python -m lit_vision.tools.photo_mosaics SRC OUT [--train 4000] [--val 1000] [--test 1000] [--seed 0]
    python train.py data=multilabel model=multilabel data.root=OUT data.test_file=test.csv

SRC holds one folder per class of equally sized photos (e.g. ../shared/data/cifar10_jpeg/train). The photos
of every class are split (seeded) into disjoint train/val/test shares in proportion to the mosaic counts,
so no photo appears in two splits. Each mosaic puts 4 photos on a 2x2 grid; each tile's class is drawn
uniformly (with replacement), so a mosaic shows 1 to 4 distinct classes, and its labels are the set of
classes shown. Writes ``OUT/<split>/NNNNN.png`` (lossless) and ``OUT/{train,val,test}.csv`` with
``path,labels`` rows (labels ``;``-separated, in class-folder order). The photos are real; the multi-label
task is synthetic (a real multi-label set is not among the shared data).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lit_vision.data.image_folder import class_folders
from lit_vision.data.image_io import is_image_name
from lit_vision.errors import UserError

SPLITS = ("train", "val", "test")
GRID = 2


def photo_pools(
    src: Path, counts: dict[str, int], seed: int
) -> tuple[list[str], dict[str, list[list[Path]]]]:
    """Class names and, per split, each class's photos (disjoint across splits, shares ~ ``counts``)."""
    classes = class_folders(src)
    if len(classes) < 2:
        raise UserError(f"{src} must hold one folder per class (at least 2), found {len(classes)}.")
    rng = np.random.default_rng(seed)
    total = sum(counts.values())
    pools: dict[str, list[list[Path]]] = {s: [] for s in SPLITS}
    for name in classes:
        files = sorted(p for p in (src / name).iterdir() if p.is_file() and is_image_name(p.name))
        if len(files) < len(SPLITS):
            raise UserError(
                f"{src / name} has {len(files)} photos; every class needs at least {len(SPLITS)}."
            )
        order = [files[i] for i in rng.permutation(len(files))]
        start = 0
        for split in SPLITS:
            share = (
                max(1, round(len(files) * counts[split] / total)) if split != "test" else len(files) - start
            )
            pools[split].append(order[start : start + share])
            start += share
    return classes, pools


def make_mosaics(src: Path, out: Path, counts: dict[str, int], seed: int = 0) -> dict[str, float]:
    """Write the mosaics and label files (see the module docstring); returns the mean labels per mosaic
    of each split."""
    classes, pools = photo_pools(src, counts, seed)
    rng = np.random.default_rng(seed + 1)
    means = {}
    for split in SPLITS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        used = [0] * len(classes)  # every class's pool is walked through in order, then again
        rows, labels_total = [], 0
        for number in range(counts[split]):
            tiles = rng.integers(0, len(classes), size=GRID * GRID)
            photos = []
            for c in tiles:
                pool = pools[split][c]
                photos.append(Image.open(pool[used[c] % len(pool)]).convert("RGB"))
                used[c] += 1
            width, height = photos[0].size
            mosaic = Image.new("RGB", (width * GRID, height * GRID))
            for i, photo in enumerate(photos):
                if photo.size != (width, height):
                    raise UserError(
                        f"the photos under {src} differ in size ({photo.size} vs {(width, height)})."
                    )
                mosaic.paste(photo, ((i % GRID) * width, (i // GRID) * height))
            relative = f"{split}/{number:05d}.png"
            mosaic.save(out / relative)
            present = sorted(set(int(c) for c in tiles))
            labels_total += len(present)
            rows.append([relative, ";".join(classes[c] for c in present)])
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "labels"])
            writer.writerows(rows)
        means[split] = labels_total / max(1, counts[split])
    return means


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    try:
        if min(counts.values()) < 1:
            raise UserError(f"--train, --val and --test must be at least 1, got {counts}.")
        if not args.src.is_dir():
            raise UserError(f"{args.src} is not a folder of class folders.")
        means = make_mosaics(args.src, args.out, counts, args.seed)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: "
        + ", ".join(f"{s} {counts[s]} mosaics ({means[s]:.2f} labels each)" for s in SPLITS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
