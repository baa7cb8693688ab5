"""The first lesson's data: points on the line y = 2x + 1 (x = 0, 1, ..., 10 for training).

Validation and test points are drawn uniformly from the same x range (seeded), so the fitted line is
checked away from the training points. ``noise_std`` adds Gaussian noise to every y.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lit_vision.data.tabular import TabularDataModule
from lit_vision.errors import UserError


def linear_toy_frame(
    weight: float = 2.0,
    bias: float = 1.0,
    x_min: float = 0.0,
    x_max: float = 10.0,
    num_train: int = 11,
    num_val: int = 20,
    num_test: int = 20,
    noise_std: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Columns ``x``, ``y`` and ``split``: ``num_train`` evenly spaced training x (the tutorial's 0..10),
    random validation and test x in the same range, ``y = weight * x + bias (+ noise)``."""
    if num_train < 2 or num_val < 1 or num_test < 1:
        raise UserError("linear_toy needs num_train >= 2 and at least one validation and one test point.")
    rng = np.random.default_rng(seed)
    xs = np.concatenate(
        [
            np.linspace(x_min, x_max, num_train),
            rng.uniform(x_min, x_max, num_val),
            rng.uniform(x_min, x_max, num_test),
        ]
    )
    ys = weight * xs + bias + (rng.normal(0.0, noise_std, len(xs)) if noise_std > 0 else 0.0)
    split = ["train"] * num_train + ["val"] * num_val + ["test"] * num_test
    return pd.DataFrame({"x": xs, "y": ys, "split": split})


class LinearToyDataModule(TabularDataModule):
    """``x -> y`` on the line ``y = weight * x + bias`` (see :func:`linear_toy_frame`), in memory.

    Standardisation is off by default, as in the tutorial, so the linear model's own weight and bias are
    the line's; other options are :class:`~lit_vision.data.tabular.TabularDataModule`'s.
    """

    def __init__(
        self,
        weight: float = 2.0,
        bias: float = 1.0,
        x_min: float = 0.0,
        x_max: float = 10.0,
        num_train: int = 11,
        num_val: int = 20,
        num_test: int = 20,
        noise_std: float = 0.0,
        seed: int = 0,
        standardize: bool = False,
        standardize_target: bool = False,
        batch_size: int = 11,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            path=None,
            target="y",
            features=["x"],
            split_column="split",
            standardize=standardize,
            standardize_target=standardize_target,
            batch_size=batch_size,
            split_seed=seed,
            **kwargs,
        )
        self.line = {"weight": float(weight), "bias": float(bias)}
        self.frame_args = {
            "weight": float(weight),
            "bias": float(bias),
            "x_min": float(x_min),
            "x_max": float(x_max),
            "num_train": int(num_train),
            "num_val": int(num_val),
            "num_test": int(num_test),
            "noise_std": float(noise_std),
            "seed": int(seed),
        }

    def source_name(self) -> str:
        return f"linear_toy (y = {self.line['weight']:g}x + {self.line['bias']:g})"

    def load_table(self) -> pd.DataFrame:
        return linear_toy_frame(**self.frame_args)
