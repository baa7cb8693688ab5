"""Predict with a trained checkpoint: ``python -m lit_vision.cli.predict ckpt=PATH input=FILE_OR_DIR_OR_CSV out=DIR``.

Everything the model needs (task, class names, input size, normalisation, eval transforms, thresholds) is
read from the checkpoint. Classification writes ``predictions.csv`` (top-k classes with display names and
probabilities) and ``predictions_grid.png``; segmentation writes palette masks and overlays at each photo's
size (``masks/``, ``overlays/``) and ``predictions.csv``; regression writes the input table with prediction
columns (or ``file,prediction`` rows for images). ``predict.json`` summarises the run.

Other options: ``batch_size``, ``num_workers``, ``top_k``, ``grid``, ``tta=true`` (average with the
horizontal mirror; ``tta_flips=[h,v]``, ``tta_scales=[0.75,1.0,1.25]``), ``tiling=true`` (segmentation:
sliding windows of ``tile`` pixels every ``stride`` at the photo's own size, blended by ``tile_window``,
``tile_batch_size`` tiles per pass), ``threshold`` (binary segmentation), ``alpha``, ``on_bad_image=skip``,
``trust_checkpoint=true`` (a checkpoint that needs more than data to be rebuilt; trusted files only), and any
Trainer setting: ``trainer=cpu``, ``trainer.accelerator=gpu``, ``trainer.precision=bf16-mixed``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_vision.cli.common import require_bools, run_cli
from lit_vision.errors import UserError
from lit_vision.utils.paths import require_checkpoint_file

USAGE = "usage: python -m lit_vision.cli.predict ckpt=PATH input=FILE_OR_DIR_OR_CSV [out=DIR] [key=value ...] (--help)"


def run(cfg: DictConfig) -> int:
    """Run the prediction ``cfg`` describes; print where the results are."""
    require_checkpoint_file(cfg.ckpt)  # before the imports below (seconds)
    require_bools(cfg, ["trust_checkpoint"])
    if not Path(str(cfg.input)).expanduser().exists():
        raise UserError(f"input={cfg.input}: no such file or folder.")
    # imported here: --help and config errors answer without loading torch
    from lit_vision.inference.api import predict

    values = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(values, dict)
    summary = predict(
        cfg.ckpt,
        cfg.input,
        cfg.out,
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        top_k=cfg.top_k,
        tta=cfg.tta,
        **{key: values[key] for key in ("tta_flips", "tta_scales", "tiling", "tile", "stride")},
        tile_window=cfg.tile_window,
        tile_batch_size=cfg.tile_batch_size,
        threshold=cfg.threshold,
        alpha=cfg.alpha,
        grid=cfg.grid,
        on_bad_image=cfg.on_bad_image,
        channels_last=cfg.channels_last,
        trainer=OmegaConf.to_container(cfg.trainer, resolve=True),
        trust_checkpoint=cfg.trust_checkpoint,
    )
    files = ", ".join(f"{k}: {v}" for k, v in summary["outputs"].items())
    print(f"{summary['count']} {summary['task']} predictions in {summary['seconds']:.1f}s -> {files}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lit_vision.cli.predict``."""
    return run_cli("predict", USAGE, __doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
