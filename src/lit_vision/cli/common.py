"""Command lines of ``python -m lit_vision.cli.predict`` / ``lit_vision.cli.export``: Hydra-style ``key=value``
arguments composed over ``conf/<name>.yaml`` (so ``trainer=cpu``, ``trainer.precision=bf16-mixed`` and
typos are handled as in ``train.py``), without a Hydra run folder."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from omegaconf import DictConfig, OmegaConf

from lit_vision.config.compose import compose_config, config_dir
from lit_vision.config.overrides import quote_path_overrides
from lit_vision.config.presentation import describe_options
from lit_vision.errors import UserError
from lit_vision.utils.reporting import report_user_error

# Values that are paths: quoted for Hydra's grammar when needed (checkpoint names such as ``val_acc=0.9.ckpt``).
PATH_KEYS = ("ckpt", "input", "out")


def compose_or_exit(config_name: str, overrides: Sequence[str], usage: str) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with ``overrides``; exit with a short message on a bad one."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    overrides = quote_path_overrides(["", *overrides], PATH_KEYS)[1:]  # it skips argv[0]
    try:
        cfg = compose_config(config_name, overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        text = str(exc)
        if text.startswith("Could not override"):
            known = OmegaConf.load(config_dir() / f"{config_name}.yaml")
            options = ", ".join(f"{k}.*" if k == "trainer" else str(k) for k in known if k != "defaults")
            text = text.splitlines()[0] + f" (no such option; the options are {options})."
        raise SystemExit(f"{text}\n{usage}") from None
    missing = sorted(_missing_keys(OmegaConf.to_container(cfg, resolve=False)))
    if missing:
        raise SystemExit(f"missing: {', '.join(f'{k}=...' for k in missing)}\n{usage}")
    return cfg


def _missing_keys(node: object, prefix: str = "") -> list[str]:
    # Not OmegaConf.missing_keys: it resolves every interpolation, and ${auto_precision:} imports torch, which
    # would cost seconds before a mistyped path is answered.
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in _missing_keys(value, f"{prefix}{key}.")]
    if isinstance(node, list):
        return [k for i, value in enumerate(node) for k in _missing_keys(value, f"{prefix}{i}.")]
    return [prefix[:-1]] if node == "???" else []


def require_bools(cfg: DictConfig, keys: Sequence[str]) -> None:
    """UserError naming the first of ``keys`` whose value is not true or false (``yes`` would count as true)."""
    for key in keys:
        if not isinstance(cfg.get(key), bool):
            raise UserError(f"{key}={cfg.get(key)!r} must be true or false.")


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
        print(doc.strip() + f"\n\nOptions (key=value; the defaults are in conf/{config_name}.yaml):\n")
        print(describe_options((config_dir() / f"{config_name}.yaml").read_text()))
        return 0
    try:
        cfg = compose_or_exit(config_name, argv, usage)
        return action(cfg)
    except UserError as exc:
        report_user_error(exc)
