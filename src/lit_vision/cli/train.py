"""Train an experiment: ``lit-train`` / ``python train.py [group=option ...] [key=value ...]``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from lit_vision.config.compose import config_dir
from lit_vision.config.validation import check_override_keys
from lit_vision.errors import UserError
from lit_vision.runs.run_folder import argv_with_run_overrides
from lit_vision.utils.reporting import report_user_error


def task(cfg: DictConfig) -> float | None:
    """Hydra task function: returns the optimised metric for sweepers (see :func:`lit_vision.runs.run.run_task`)."""
    from lit_vision.runs.run import run_task  # imported here: --help and config errors answer without torch

    return run_task(cfg)


def main() -> None:
    """Entry point of ``lit-train`` and ``train.py``."""
    # ckpt_path=<run>/checkpoints/last.ckpt: start from that run's overrides (yours still win).
    sys.argv = argv_with_run_overrides(sys.argv)
    try:
        conf = str(config_dir())
        check_override_keys(sys.argv)  # a mistyped key: "did you mean", before Hydra's struct error
    except UserError as exc:
        report_user_error(exc)
    hydra.main(version_base="1.3", config_path=conf, config_name="train")(task)()


if __name__ == "__main__":
    main()
