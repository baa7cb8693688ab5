"""Train an experiment: ``lit-train`` / ``python train.py [group=option ...] [key=value ...]``."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_original_cwd
from omegaconf import DictConfig

from lit_vision.config.compose import config_dir
from lit_vision.config.validation import check_override_keys
from lit_vision.errors import UserError
from lit_vision.runs.run_folder import argv_with_run_overrides
from lit_vision.utils.io import write_json
from lit_vision.utils.paths import require_checkpoint_file
from lit_vision.utils.quick_exit import exit_now
from lit_vision.utils.reporting import report_user_error


def task(cfg: DictConfig) -> float | None:
    """Hydra task function: returns the optimised metric for sweepers (see :func:`lit_vision.runs.run.run_task`)."""
    check_paths_early(cfg)
    from lit_vision.runs.run import run_task  # imported here: --help and config errors answer without torch

    return run_task(cfg)


def check_paths_early(cfg: DictConfig) -> None:
    """A missing ``ckpt_path`` is answered before torch and Lightning are imported (10-15 s), with the run
    folder's metrics.json marking the run failed. In a sweep the job fails later and the sweep goes on."""
    ckpt = cfg.get("ckpt_path")
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    if ckpt is None or multirun:
        return
    try:
        require_checkpoint_file(
            str(ckpt), key="ckpt_path", base=get_original_cwd() if HydraConfig.initialized() else None
        )
    except UserError as error:
        output_dir = (cfg.get("paths") or {}).get("output_dir")
        if output_dir:
            record = {"status": "failed", "error": str(error), "output_dir": str(output_dir)}
            write_json(Path(output_dir) / "metrics.json", record)
        report_user_error(error)


def main(quick_exit: bool = True) -> None:
    """Entry point of ``lit-train`` and ``train.py``. When the command has finished, ``quick_exit`` ends the
    process without the interpreter's module teardown (:func:`lit_vision.utils.quick_exit.exit_now`);
    errors exit as before, through Hydra."""
    # ckpt_path=<run>/checkpoints/last.ckpt: start from that run's overrides (yours still win).
    sys.argv = argv_with_run_overrides(sys.argv)
    try:
        conf = str(config_dir())
        check_override_keys(sys.argv)  # a mistyped key: "did you mean", before Hydra's struct error
    except UserError as exc:
        report_user_error(exc)
    hydra.main(version_base="1.3", config_path=conf, config_name="train")(task)()
    if quick_exit:
        exit_now(0)


if __name__ == "__main__":
    main()
