"""``predictions.csv`` of a multi-label model: the set of labels of every image, and each label's probability."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lit_vision.inference.inputs import InputImage
from lit_vision.inference.writers import CsvPredictionWriter

#: what separates the label names in the ``labels`` column (the training CSVs' default delimiter)
LABEL_SEPARATOR = ";"


class MultiLabelWriter(CsvPredictionWriter):
    """Columns: ``file``, ``labels`` (the names of the labels whose probability reaches their threshold,
    ``;``-separated, in class order; empty for none), ``count``, then ``p_<name>`` for every label.

    ``thresholds``: one per label (the checkpoint's, chosen on validation), or a single number for all.
    """

    def __init__(
        self,
        out_dir: str | Path,
        images: Sequence[InputImage],
        class_names: Sequence[str],
        thresholds: Sequence[float] | float,
    ) -> None:
        super().__init__(out_dir, images)
        self.class_names = [str(n) for n in class_names]
        if isinstance(thresholds, (int, float)):
            thresholds = [float(thresholds)] * len(self.class_names)
        if len(thresholds) != len(self.class_names):
            raise ValueError(f"{len(thresholds)} thresholds for {len(self.class_names)} labels")
        self.thresholds = torch.tensor([float(t) for t in thresholds])

    def header(self) -> list[str]:
        return ["file", "labels", "count", *(f"p_{name}" for name in self.class_names)]

    def rows(self, prediction: dict[str, torch.Tensor], batch: Any) -> list[list[Any]]:
        probs = prediction["scores"].float()
        chosen = probs >= self.thresholds
        rows = []
        for index, p_row, c_row in zip(
            prediction["index"].tolist(), probs.tolist(), chosen.tolist(), strict=True
        ):
            names = [name for name, on in zip(self.class_names, c_row, strict=True) if on]
            rows.append([self.images[index].name, LABEL_SEPARATOR.join(names), len(names), *p_row])
        return rows
