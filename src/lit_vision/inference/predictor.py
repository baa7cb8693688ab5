"""The LightningModule ``Trainer.predict`` runs: the checkpoint's task, with optional TTA and tiling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch

from lit_vision.inference.test_time import TestTimeOptions, test_time_scorer


class Predictor(L.LightningModule):
    """Wraps a task; each prediction batch ``(images, indices, sizes)`` gives a dict of CPU tensors
    ``index``, ``size`` (None for table rows) and ``scores`` (class probabilities ``(N, C)`` / ``(N, C, H, W)``, or regression
    values ``(N, T)``), from the task's own ``predict_step``.

    With ``tta`` the scores are the mean of the image's and its horizontal mirror's (segmentation scores
    of the mirror are flipped back first, so every pixel averages with itself); ``test_time`` gives the
    full choice (more flips, scales, sliding windows: :mod:`lit_vision.inference.test_time`) and wins over
    ``tta``. ``image_size`` is the training size (the default tile). ``channels_last`` (``auto``:
    for nets with 2-D convolutions) runs the net in the channels-last memory layout, about twice as fast
    for batched convolutions on CPUs; the results are the same up to float rounding.
    """

    def __init__(
        self,
        task: L.LightningModule,
        kind: str,
        tta: bool = False,
        channels_last: bool | str = "auto",
        test_time: TestTimeOptions | None = None,
        image_size: Sequence[int] | int | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        self.kind = kind
        self.test_time = test_time if test_time is not None else TestTimeOptions(tta=bool(tta))
        self.tta = self.test_time.tta
        self.image_size = image_size
        # TTA and tiling around the task's own prediction (inference/test_time.py, shared with evaluate)
        self.scorer = test_time_scorer(self.scores, self.test_time, kind, image_size)
        if channels_last == "auto":
            channels_last = any(isinstance(m, torch.nn.Conv2d) for m in task.modules())
        if channels_last and hasattr(task, "channels_last"):
            task.channels_last = True  # BaseTask.forward then lays out 4-D inputs the same way
            task.net = task.net.to(memory_format=torch.channels_last)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.task(inputs)

    def scores(self, inputs: torch.Tensor, batch_idx: int = 0) -> torch.Tensor:
        """The task's prediction for ``inputs``, as one float tensor."""
        out: Any = self.task.predict_step((inputs,), batch_idx)
        if isinstance(out, Mapping):
            key = next(k for k in ("probs", "prediction", "preds") if k in out)
            out = out[key]
        return out.float()

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        inputs, indices, sizes = batch
        sizes = None if sizes is None else sizes.cpu()  # tables have no picture size
        if inputs is None:  # every file of the batch was unreadable (and skipped)
            return {"index": indices.cpu(), "size": sizes, "scores": torch.zeros(0)}
        if inputs.is_floating_point() and inputs.dtype != self.dtype:
            inputs = inputs.to(self.dtype)  # trainer.precision=64-true / bf16-true: follow the weights
        scores = self.scorer(inputs)
        return {"index": indices.cpu(), "size": sizes, "scores": scores.cpu()}
