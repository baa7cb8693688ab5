"""OmegaConf resolvers and config presentation helpers (printing the tree, saving the resolved config)."""

from __future__ import annotations

import re

from omegaconf import OmegaConf


def slug(text: str) -> str:
    """Make a metric name such as ``val/acc`` safe for file names (``val_acc``)."""
    return re.sub(r"[^0-9A-Za-z.=-]+", "_", str(text)).strip("_")


def auto_precision(accelerator: str = "auto") -> str:
    """``${auto_precision:<accelerator>}``: the default ``trainer.precision`` (see lit_vision.utils.hardware)."""
    from lit_vision.utils.hardware import auto_precision as resolve  # imports torch: only when resolved

    return resolve(accelerator)


def register_resolvers() -> None:
    """Register lit_vision's OmegaConf resolvers (idempotent)."""
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)
    if not OmegaConf.has_resolver("auto_precision"):
        OmegaConf.register_new_resolver("auto_precision", auto_precision)
