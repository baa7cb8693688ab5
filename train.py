"""Train an experiment: ``python train.py [group=option ...] [key=value ...]`` (see README.md)."""

import hydra
from omegaconf import DictConfig

from lit_vision.run import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: returns the optimised metric for sweepers."""
    _, value = train(cfg)
    return value


if __name__ == "__main__":
    main()
