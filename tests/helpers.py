"""Helpers for tests: compose the project's Hydra config in-process and run train.py as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, open_dict

from lit_vision.config.compose import compose_train_config

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
TRAIN_PY = ROOT / "train.py"


def compose_cfg(overrides: Sequence[str] = (), output_dir: Path | None = None) -> DictConfig:
    """Compose conf/train.yaml with ``overrides`` as train.py would, outside a Hydra run.

    The Hydra node is kept (so ``${hydra:...}`` resolves) and ``paths.output_dir`` points at
    ``output_dir`` when given.
    """
    return compose_train_config(overrides, output_dir)


def without_hydra(cfg: DictConfig) -> DictConfig:
    """The config as the task function sees it (no ``hydra`` node)."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def run_train_py(
    args: Sequence[str], cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``python train.py ARGS`` in a subprocess; return the completed process (text output)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    full_env.pop("HYDRA_FULL_ERROR", None)  # tests see what a user sees unless they ask for more
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, str(TRAIN_PY), *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_tiny_segmenter(folder: Path) -> tuple[Path, Path, DictConfig]:
    """A small binary UNet trained one epoch on 6 generated labelme cats of 32x40 at image_size 32 (resized
    to 32x32 for the net): its best checkpoint, the data folder and the run's config."""
    from lit_vision.runs.run import train  # imported here: helpers.py is also used by tests without torch
    from tests.fakes.segmentation import make_labelme_dataset

    root = make_labelme_dataset(folder / "data", n=6, size=(32, 40))
    cfg = compose_cfg(
        [
            "data=segmentation_folder",
            f"data.root={root}",
            "data.image_size=32",
            "data.num_workers=0",
            "model=unet",
            "model.net.init_features=4",
            "logger=none",
            "callbacks=[model_checkpoint]",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ],
        output_dir=folder / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    return Path(metrics["best_model_path"]), root, cfg
