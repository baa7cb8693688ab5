"""A grid of training samples as the model sees them (mmpretrain's dataset browser).

    python -m lit_vision.tools.browse data=cifar10 data.root=/data                 # 32 samples -> browse.png
    python -m lit_vision.tools.browse data=fashion_mnist data.augment='[{RandomAffine: {degrees: 15}}]' \\
        --count 64 --columns 8 --out fm_augmented.png
    python -m lit_vision.tools.browse experiment=cats_unet --count 8                # masks drawn over

The batches come from the data config's training loader (decoding, the CPU transforms and the collate
function, e.g. MixUp/CutMix) and go through the DataModule's ``on_after_batch_transfer`` as in training
(normalisation and the on-device batch augmentation), then are de-normalised with the data's mean/std.
Titles are class names (mixed labels show their two largest shares); segmentation masks are outlined on
the image. ``<out>.json`` beside the picture lists the samples' labels.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from lit_vision.config.compose import compose_train_config
from lit_vision.errors import UserError
from lit_vision.utils.io import write_json
from lit_vision.viz.images import figure_to_array, save_png, single_view, unnormalize
from lit_vision.viz.segmentation import contour_overlay


def training_view(datamodule: L.LightningDataModule, count: int) -> tuple[Tensor, list[Tensor]]:
    """The first ``count`` training samples after everything training applies, de-normalised to ``[0, 1]``
    on the CPU: ``(pictures (N, C, H, W), labels per sample)``."""
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    datamodule.trainer = trainer
    datamodule.setup("fit")
    trainer.training = True  # the DataModule augments batches only while the trainer trains
    pictures: list[Tensor] = []
    labels: list[Tensor] = []
    for batch in datamodule.train_dataloader():
        images, target = datamodule.on_after_batch_transfer(batch, 0)[:2]
        pictures.append(single_view(images).detach().float().cpu())
        labels.extend(target.detach().cpu()[: count - len(labels)])
        if len(labels) >= count:
            break
    if not labels:
        raise UserError("the training split of this data config is empty: nothing to browse.")
    info = datamodule.data_info() if hasattr(datamodule, "data_info") else {}
    return unnormalize(torch.cat(pictures)[: len(labels)], info), labels


def label_text(label: Tensor, class_names: Sequence[str]) -> str:
    """A class label's name; a soft label (MixUp/CutMix) as its two largest shares."""
    if label.ndim == 0:
        index = int(label)
        return class_names[index] if 0 <= index < len(class_names) else str(index)
    if label.ndim == 1 and label.is_floating_point():
        shares, indices = label.topk(min(2, label.numel()))
        return " / ".join(
            f"{class_names[int(i)] if int(i) < len(class_names) else int(i)} {float(s):.2f}"
            for s, i in zip(shares, indices, strict=True)
            if float(s) > 0
        )
    return ""


def draw_grid(
    pictures: Tensor,
    labels: Sequence[Tensor],
    class_names: Sequence[str],
    columns: int,
    palette: Sequence[Sequence[int]] | None = None,
    title: str = "",
    dpi: int = 80,
) -> np.ndarray:
    """``(H, W, 3)`` uint8: one titled tile per sample; a mask label is outlined over its image."""
    from matplotlib.figure import Figure

    count = len(labels)
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(1.7 * columns, 1.9 * rows + 0.4), dpi=dpi, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index >= count:
            continue
        picture, label = pictures[index], labels[index]
        rgb = (picture.repeat(3, 1, 1) if picture.shape[0] == 1 else picture[:3]).permute(1, 2, 0).numpy()
        if label.ndim == 2:  # a segmentation mask
            shown = contour_overlay((rgb * 255).round().astype(np.uint8), label, colours=palette)
            ax.imshow(shown, interpolation="nearest")
        else:
            ax.imshow(rgb, interpolation="nearest")
            ax.set_title(label_text(label, class_names), fontsize=8)
    if title:
        figure.suptitle(title)
    return figure_to_array(figure)


def browse(
    overrides: Sequence[str], count: int = 32, columns: int = 8, out: str | Path = "browse.png"
) -> dict[str, Any]:
    """Write the grid of ``count`` training samples of the data config selected by ``overrides`` to ``out``
    (and ``<out>.json``); return that summary."""
    from hydra.errors import HydraException
    from hydra.utils import instantiate

    if count < 1 or columns < 1:
        raise UserError(f"--count and --columns must be at least 1, got {count} and {columns}.")
    try:
        cfg = compose_train_config(list(overrides), Path.cwd(), keep_hydra_node=False)
    except HydraException as err:
        raise UserError(f"the overrides {' '.join(overrides)} do not compose: {err}") from None
    L.seed_everything(int(cfg.get("seed") or 0), verbose=False)
    datamodule = instantiate(cfg.data)
    pictures, labels = training_view(datamodule, count)
    info = datamodule.data_info() if hasattr(datamodule, "data_info") else {}
    names = [str(n) for n in (info.get("class_names") or [])]
    data_name = type(datamodule).__name__
    image = draw_grid(pictures, labels, names, columns, info.get("palette"), f"{data_name}: training samples")
    path = save_png(image, Path(out))
    summary = {
        "data": data_name,
        "count": len(labels),
        "columns": min(columns, len(labels)),
        "image": str(path),
        "labels": [label_text(label, names) if label.ndim < 2 else "mask" for label in labels],
    }
    write_json(path.with_name(path.name + ".json"), summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_vision.tools.browse",
        description="Write a grid of training samples as the model sees them (after augmentation).",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides selecting the data (data=cifar10 ...)")
    parser.add_argument("--count", type=int, default=32, help="samples to show (default 32)")
    parser.add_argument("--columns", type=int, default=8, help="samples per row (default 8)")
    parser.add_argument("--out", default="browse.png", help="the PNG to write (default browse.png)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" lines
    bad = [o for o in args.overrides if "=" not in o]
    try:
        if bad:
            raise UserError(f"{' '.join(bad)}: give Hydra overrides such as data=cifar10 data.root=/data.")
        summary = browse(args.overrides, args.count, args.columns, args.out)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{summary['count']} training samples of {summary['data']} -> {summary['image']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
