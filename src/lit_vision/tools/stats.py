"""Per-channel mean and std of a dataset's training images, for ``Normalize`` (``data.mean`` / ``data.std``).

    python -m lit_vision.tools.stats data=cifar10 data.root=/data         # any data config (+ overrides)
    python -m lit_vision.tools.stats data=image_list data.root=png/ --max-images 2000
    python -m lit_vision.tools.stats path/to/images --channels 3          # every image below a folder

With a data config the statistics cover its training split (after the seeded split), read exactly as
training reads it (in-memory sets: the uint8 tensor; file sets: every decoded pixel of each file, any
size). Prints the values and the overrides to paste; ``--json`` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from lit_vision.config.compose import compose_train_config
from lit_vision.data.image_files import ImageFilesDataModule, default_num_workers
from lit_vision.data.image_io import is_ignored_name, is_image_name
from lit_vision.data.in_memory import InMemoryImageDataModule, channel_stats
from lit_vision.data.stats import file_channel_stats
from lit_vision.errors import UserError


def compose_data_config(overrides: list[str]) -> DictConfig:
    """Compose conf/train.yaml with ``overrides`` (as train.py would) and return its ``data`` node."""
    return compose_train_config(overrides, Path.cwd(), keep_hydra_node=False).data


def dataset_stats(overrides: list[str], max_images: int | None, seed: int) -> dict:
    """Statistics of the training split of the data config selected by ``overrides``."""
    from hydra.utils import instantiate

    datamodule = instantiate(compose_data_config(overrides))
    if isinstance(datamodule, InMemoryImageDataModule):
        datamodule.setup("fit")
        images = datamodule.splits["train"].images
        mean, std = channel_stats(images)
        return {"images": len(images), "source": "training split", "mean": mean, "std": std}
    if isinstance(datamodule, ImageFilesDataModule):
        datamodule.discover()
        paths = [s.path for s in datamodule.samples["train"]]
        channels = datamodule.in_channels or 3
        used = min(len(paths), max_images) if max_images else len(paths)
        mean, std = file_channel_stats(paths, channels, max_images, seed, datamodule.num_workers)
        return {"images": used, "source": "training split", "mean": mean, "std": std}
    raise UserError(
        f"{type(datamodule).__name__} is not an image classification DataModule lit_vision can measure."
    )


def folder_stats(folder: Path, channels: int, max_images: int | None, seed: int) -> dict:
    """Statistics of every image file below ``folder``."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder (or a data config such as data=cifar10).")
    paths = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_ignored_name(d))
        paths.extend(os.path.join(current, f) for f in sorted(files) if is_image_name(f))
    if not paths:
        raise UserError(f"no image files below {folder}.")
    used = min(len(paths), max_images) if max_images else len(paths)
    mean, std = file_channel_stats(paths, channels, max_images, seed, default_num_workers())
    return {"images": used, "source": str(folder), "mean": mean, "std": std}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.tools.stats",
        description="Per-channel mean/std of a dataset's training images (for data.mean / data.std).",
    )
    parser.add_argument("target", nargs="+", help="Hydra overrides selecting a data config, or one folder")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3, help="for a folder (default 3)")
    parser.add_argument("--max-images", type=int, default=None, help="a seeded random subset of files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        if all("=" in t for t in args.target):
            result = dataset_stats(args.target, args.max_images, args.seed)
        elif len(args.target) == 1:
            result = folder_stats(Path(args.target[0]), args.channels, args.max_images, args.seed)
        else:
            raise UserError("give either Hydra overrides (data=cifar10 data.root=...) or one folder")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    mean = [round(v, 4) for v in result["mean"]]
    std = [round(v, 4) for v in result["std"]]
    if args.json:
        print(json.dumps({**result, "mean": mean, "std": std}))
        return 0
    print(f"images: {result['images']} ({result['source']})")
    print(f"mean: {mean}")
    print(f"std:  {std}")
    print(f"override: data.mean=[{','.join(map(str, mean))}] data.std=[{','.join(map(str, std))}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
