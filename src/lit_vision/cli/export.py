"""Export a trained checkpoint: ``python -m lit_vision.cli.export ckpt=PATH format=onnx|torchscript [out=FILE]``.

The net is exported in float32 with a dynamic batch axis, then run by onnxruntime (ONNX) or torch.jit
(TorchScript) on a random batch of another size next to the PyTorch net: the maximum absolute difference is
printed and must be within ``tolerance`` (1e-4) for the export to count as done (exit status 1 otherwise).
``<file>.json`` documents the preprocessing, the output's meaning and the check. Options: ``out`` (default:
next to the checkpoint; never the checkpoint itself), ``opset``, ``exporter=auto|dynamo|legacy`` (ONNX),
``tolerance``, ``check_batch_size``, ``trust_checkpoint=true`` (trusted files only).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from lit_vision.cli.common import require_bools, run_cli
from lit_vision.utils.paths import require_checkpoint_file

USAGE = "usage: python -m lit_vision.cli.export ckpt=PATH [format=onnx|torchscript] [out=FILE] [key=value ...] (--help)"


def run(cfg: DictConfig) -> int:
    """Export as ``cfg`` says; exit status 1 when the check fails."""
    require_checkpoint_file(cfg.ckpt)  # before the imports below (seconds)
    require_bools(cfg, ["trust_checkpoint"])
    # imported here: --help and config errors answer without loading torch
    from lit_vision.inference.export import ExportCheckFailed, export_model

    try:
        result = export_model(
            cfg.ckpt,
            cfg.format,
            cfg.out,
            opset=cfg.opset,
            exporter=cfg.exporter,
            tolerance=cfg.tolerance,
            check_batch_size=cfg.check_batch_size,
            trust_checkpoint=cfg.trust_checkpoint,
        )
    except ExportCheckFailed as exc:
        print(f"Export check FAILED: {exc}", file=sys.stderr)
        return 1
    verification = result.metadata["verification"]
    print(
        f"Exported {result.path} ({result.metadata['exporter']}); checked with {verification['runtime']} on a "
        f"batch of {verification['batch_size']}: max abs difference {result.max_abs_diff:.3g} "
        f"<= {result.tolerance:g}. Preprocessing and outputs: {result.sidecar}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m lit_vision.cli.export``."""
    return run_cli("export", USAGE, __doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
