"""Finding ``conf/`` and composing it in-process: the one composer behind the commands, tests and benchmarks.

``conf/`` is found one way (:func:`config_dir`): ``$LIT_VISION_ROOT/conf`` when that variable is set (a
project folder elsewhere, or an installed copy used outside the checkout), else the checkout that holds this
package, else ``./conf``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, open_dict

from lit_vision.config.resolvers import register_resolvers
from lit_vision.config.schema import register_configs
from lit_vision.errors import UserError

# src/lit_vision/config/compose.py -> the checkout's root
_CHECKOUT = Path(__file__).resolve().parents[3]


def config_dir() -> Path:
    """The project's ``conf/`` folder (see the module docstring); UserError when none holds train.yaml."""
    candidates = []
    if os.environ.get("LIT_VISION_ROOT"):
        candidates.append(Path(os.environ["LIT_VISION_ROOT"]).expanduser() / "conf")
    candidates += [_CHECKOUT / "conf", Path.cwd() / "conf"]
    for folder in candidates:
        if (folder / "train.yaml").is_file():
            return folder
    raise UserError(
        f"conf/train.yaml not found (looked in {', '.join(str(c) for c in candidates)}): run from the "
        "project folder or set LIT_VISION_ROOT to it."
    )


def project_root() -> Path:
    """The folder that holds ``conf/`` (relative data and output paths start here)."""
    return config_dir().parent


def compose_config(
    config_name: str, overrides: Sequence[str] = (), *, with_hydra_node: bool = False
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides`` as a Hydra command line would.

    With ``with_hydra_node`` the ``hydra`` node is kept and registered as the current HydraConfig, so
    ``${hydra:...}`` interpolations resolve outside a Hydra run. Hydra's own errors propagate.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    register_resolvers()  # idempotent; the package's __init__ has normally done both already
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=with_hydra_node)
    finally:
        GlobalHydra.instance().clear()
    if with_hydra_node:
        HydraConfig.instance().set_config(cfg)
    return cfg


def compose_train_config(
    overrides: Sequence[str] = (), output_dir: str | Path | None = None, *, keep_hydra_node: bool = True
) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``, as ``train.py`` composes it, for an in-process run.

    ``paths.root_dir`` is the project root and ``paths.output_dir`` is ``output_dir`` when given. Without
    ``keep_hydra_node`` the config is what the task function sees (no ``hydra`` node).
    """
    cfg = compose_config("train", overrides, with_hydra_node=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(project_root())
        if output_dir is not None:
            cfg.paths.output_dir = str(output_dir)
        if not keep_hydra_node:
            cfg.pop("hydra")
    return cfg
