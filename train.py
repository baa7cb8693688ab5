"""Train an experiment: ``python train.py [group=option ...] [key=value ...]`` (see README.md)."""

import sys

import hydra
from omegaconf import DictConfig

from lit_vision.resume import argv_with_run_overrides


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: returns the optimised metric for sweepers."""
    from lit_vision.run import run_task  # imported here: --help and config errors answer without torch

    return run_task(cfg)


if __name__ == "__main__":
    # ckpt_path=<run>/checkpoints/last.ckpt: start from that run's overrides (yours still win).
    sys.argv = argv_with_run_overrides(sys.argv)
    main()
