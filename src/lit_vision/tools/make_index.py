"""Write train/valid/test index files (``relative/path.png label`` per line) from a folder of class folders.

    python -m lit_vision.tools.make_index ROOT --out DIR --ratios 0.8 0.1 0.1 --seed 0

ROOT holds either one folder per class (split here: seeded and stratified by ``--ratios``) or
``train/``, ``valid/`` (or ``val/``) and optionally ``test/`` folders of class folders (each indexed as it
is, like the CIFAR-to-PNG tutorial). Labels are the class folders' positions in sorted order (as
torchvision's ImageFolder numbers them); ``classes.txt`` lists the names in label order. Paths are written
relative to ROOT with forward slashes, so ``data=image_list data.root=ROOT`` reads them anywhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from lit_vision.data.image_folder import SPLIT_FOLDERS, class_folders, files_under, normalize_ratios
from lit_vision.data.image_io import is_image_name
from lit_vision.data.splits import split_indices
from lit_vision.errors import UserError

INDEX_NAMES = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}


def list_class_files(folder: Path, classes: list[str], root: Path) -> tuple[list[tuple[str, int]], int]:
    """``(relative posix path, label)`` of every image under ``folder/<class>``, and the skipped count."""
    entries, skipped = [], 0
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for path in files_under(class_dir):
            if is_image_name(path):
                entries.append((Path(path).relative_to(root).as_posix(), label))
            else:
                skipped += 1
    return entries, skipped


def make_index(
    root: str | Path, out: str | Path | None = None, ratios=(0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, int]:
    """Write the index files and ``classes.txt`` into ``out`` (default ROOT); return lines per split."""
    root = Path(root).expanduser().resolve()
    out = Path(out).expanduser().resolve() if out else root
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: give the folder that holds the class folders.")
    split_dirs = {
        stage: next((root / n for n in names if (root / n).is_dir()), None)
        for stage, names in SPLIT_FOLDERS.items()
    }
    skipped = 0
    if split_dirs["train"] is not None:
        classes = class_folders(split_dirs["train"])
        splits = {}
        for stage, folder in split_dirs.items():
            if folder is not None:
                unknown = sorted(set(class_folders(folder)) - set(classes))
                if unknown:
                    raise UserError(f"{folder} has class folders that train/ lacks: {unknown[:5]}.")
                splits[stage], n = list_class_files(folder, classes, root)
                skipped += n
    else:
        classes = class_folders(root)
        pool, skipped = list_class_files(root, classes, root)
        if not pool:
            raise UserError(f"{root} has no images in class folders (layout: {root}/<class>/<image>).")
        labels = np.array([label for _, label in pool])
        parts = split_indices(len(pool), normalize_ratios(ratios), seed, labels=labels)
        splits = {stage: [pool[i] for i in idx] for stage, idx in zip(INDEX_NAMES, parts, strict=True)}
    if not classes:
        raise UserError(f"{root} has no class folders (layout: {root}/<class>/<image>).")
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for stage, entries in splits.items():
        if not entries:
            continue
        lines = "".join(f"{path} {label}\n" for path, label in entries)
        (out / INDEX_NAMES[stage]).write_text(lines, encoding="utf-8")
        counts[stage] = len(entries)
    (out / "classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    counts["skipped_non_images"] = skipped
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.tools.make_index",
        description="Write train.txt / valid.txt / test.txt and classes.txt from a folder of class folders.",
    )
    parser.add_argument("root", help="folder of class folders (or of train/ valid/ test/ folders of them)")
    parser.add_argument("--out", help="where to write the index files (default: ROOT)")
    parser.add_argument(
        "--ratios", nargs=3, type=float, default=[0.8, 0.1, 0.1], metavar=("TRAIN", "VAL", "TEST")
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    args = parser.parse_args(argv)
    try:
        counts = make_index(args.root, args.out, args.ratios, args.seed)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or args.root)
    skipped = counts.pop("skipped_non_images")
    for stage, n in counts.items():
        print(f"{out / INDEX_NAMES[stage]}: {n} images")
    if skipped:
        print(f"skipped {skipped} files without an image extension")
    root = Path(args.root).resolve()
    override = f"data=image_list data.root={root}"
    if Path(args.out or args.root).resolve() != root:
        index_dir = out.resolve()
        override += " " + " ".join(
            f"data.{k}_index={index_dir / INDEX_NAMES[k]}" for k in ("train", "val", "test") if k in counts
        )
    if "test" not in counts:
        override += " data.test_index=null"
    print(f"train with: python train.py {override}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
