"""Command lines of ``python -m lit_vision.predict`` / ``lit_vision.export``: Hydra-style ``key=value``
arguments composed over ``conf/<name>.yaml`` (so ``trainer=cpu``, ``trainer.precision=bf16-mixed`` and
typos are handled as in ``train.py``), without a Hydra run folder."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lit_vision.errors import UserError
from lit_vision.reporting import report_user_error

# Values that are paths: quoted for Hydra's grammar when needed (checkpoint names such as ``val_acc=0.9.ckpt``).
PATH_KEYS = ("ckpt", "input", "out")


def compose(config_name: str, overrides: Sequence[str], usage: str) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides``; exit with a short message on a bad one."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lit_vision.evaluate import config_dir
    from lit_vision.resume import quote_path_overrides

    overrides = quote_path_overrides(["", *overrides], PATH_KEYS)[1:]  # it skips argv[0]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = hydra_compose(config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        text = str(exc)
        if text.startswith("Could not override"):
            known = OmegaConf.load(Path(config_dir()) / f"{config_name}.yaml")
            options = ", ".join(f"{k}.*" if k == "trainer" else str(k) for k in known if k != "defaults")
            text = text.splitlines()[0] + f" (no such option; the options are {options})."
        raise SystemExit(f"{text}\n{usage}") from None
    finally:
        GlobalHydra.instance().clear()
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise SystemExit(f"missing: {', '.join(f'{k}=...' for k in missing)}\n{usage}")
    return cfg


def run_cli(
    config_name: str,
    usage: str,
    doc: str,
    action: Callable[[DictConfig], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run ``action(cfg)``; a UserError is one paragraph, exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        from lit_vision.evaluate import config_dir

        print(doc.strip() + "\n\nOptions (conf/" + config_name + ".yaml):\n")
        print((Path(config_dir()) / f"{config_name}.yaml").read_text())
        return 0
    cfg = compose(config_name, argv, usage)
    try:
        return action(cfg)
    except UserError as exc:
        report_user_error(exc)
