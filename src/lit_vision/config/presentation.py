"""Showing and saving a composed config: the printed tree and the resolved config.yaml of a run."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# The groups printed first, in this order; any other top-level key follows.
PRINT_ORDER = ("data", "model", "optim", "scheduler", "trainer", "callbacks", "logger", "paths")


def config_tree(cfg: DictConfig, order: Iterable[str] = PRINT_ORDER):
    """Return a rich Tree of the resolved config, one branch per top-level group."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if OmegaConf.is_config(value) else str(value)
        branch.add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config_tree(cfg: DictConfig) -> None:
    """Print the resolved config as a tree (rich)."""
    from rich.console import Console

    Console().print(config_tree(cfg))


def save_resolved_config(cfg: DictConfig, path: Path) -> None:
    """Write the fully resolved config as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
