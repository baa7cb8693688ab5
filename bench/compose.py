"""Composing the project's Hydra config inside a benchmark process, as ``train.py`` would."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lit_vision.config import compose


def compose_train_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, writing into ``output_dir``, as the task function sees it."""
    return compose.compose_train_config(overrides, output_dir, keep_hydra_node=False)
