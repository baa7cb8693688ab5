"""Evaluate a checkpoint on the test split: ``python -m lit_vision.evaluate ckpt=PATH [overrides]``.

The same as ``python train.py train=false ckpt_path=PATH [overrides]``: the task (model class, weights,
hyperparameters) is rebuilt from the checkpoint alone; the data come from the config. When the checkpoint
sits in a run folder (``<run>/checkpoints/*.ckpt``), that run's overrides are applied first, so it is
evaluated on the data it was trained with; any override given here wins (``data=... data.root=...`` to
evaluate on other data). Results go to a new run folder: ``metrics.json`` with the ``test/*`` metrics.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lit_vision.resume import argv_with_run_overrides


def config_dir() -> str:
    """The project's ``conf/`` folder: ``$LIT_VISION_ROOT/conf``, the checkout holding this package, or ./conf."""
    candidates = []
    if os.environ.get("LIT_VISION_ROOT"):
        candidates.append(Path(os.environ["LIT_VISION_ROOT"]) / "conf")
    candidates += [Path(__file__).resolve().parents[2] / "conf", Path.cwd() / "conf"]
    for folder in candidates:
        if (folder / "train.yaml").is_file():
            return str(folder)
    raise SystemExit("lit_vision.evaluate: conf/train.yaml not found; run it from the project folder.")


def evaluate_argv(argv: Sequence[str]) -> list[str]:
    """``ckpt=PATH`` -> ``ckpt_path=PATH``, the run's overrides first, and ``train=false`` last."""
    argv = [argv[0], *(f"ckpt_path={a[5:]}" if a.startswith("ckpt=") else a for a in argv[1:])]
    if not any(a.startswith(("ckpt_path=", "--help", "-h", "--hydra-help")) for a in argv[1:]):
        raise SystemExit("usage: python -m lit_vision.evaluate ckpt=PATH [data=... other overrides]")
    return [*argv_with_run_overrides(argv), "train=false"]


def task(cfg: DictConfig) -> float | None:
    """Hydra task function (see :func:`lit_vision.run.run_task`)."""
    from lit_vision.run import run_task  # imported here: --help and config errors answer without torch

    return run_task(cfg)


def main() -> None:
    sys.argv = evaluate_argv(sys.argv)
    hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")(task)()


if __name__ == "__main__":
    main()
