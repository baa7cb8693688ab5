"""Test-time options for the test step (``lit-evaluate tta=true tiling=true ...``, or ``test_time.*`` in
``python train.py``): the same :class:`~lit_vision.inference.test_time.TestTimeOptions` as predict.

The task's ``forward`` is replaced, for the test only, by :class:`TestTimeForward`: the net's outputs are
turned into probabilities (sigmoid for a one-channel binary head, softmax otherwise; regression values as
they are), averaged over the TTA views and blended over the tiles exactly as predict does, and handed back
as log-probabilities (binary: the logit of the mean probability), so the task's own test step, metrics and
pictures work unchanged. The weights and the checkpoint's state dict are not touched.

``tiling=true`` and ``full_size=true`` score at the photos' own size: the segmentation DataModule keeps its
test images and masks unresized (one image per batch). ``full_size`` alone gives the resize baseline: the
net sees each photo resized to the training size and its probabilities are resized back, as in predict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch

from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import task_kind
from lit_vision.inference.preprocess import as_size
from lit_vision.inference.test_time import TestTimeOptions, resize, test_time_scorer

log = logging.getLogger("lit_vision")

PREFIX = "test_time."
# Smallest probability turned back into a log-probability (log(0) would give -inf losses).
EPSILON = 1e-7


def to_probabilities(outputs: torch.Tensor, kind: str) -> torch.Tensor:
    """Net outputs -> the values TTA and tiling average: probabilities, or regression values."""
    outputs = outputs.float()
    if kind == "regression":
        return outputs
    if kind == "segmentation" and outputs.shape[1] == 1:
        return outputs.sigmoid()
    return outputs.softmax(dim=1)


def to_outputs(values: torch.Tensor, kind: str) -> torch.Tensor:
    """The inverse of :func:`to_probabilities` (up to clamping): outputs whose activation gives ``values``."""
    if kind == "regression":
        return values
    if kind == "segmentation" and values.shape[1] == 1:
        values = values.clamp(EPSILON, 1 - EPSILON)
        return values.log() - (1 - values).log()  # logit: sigmoid(logit(p)) = p
    return values.clamp_min(EPSILON).log()  # softmax(log p) = p when the p sum to 1


class TestTimeForward:
    """Replaces ``task.forward`` for the test: outputs for ``images`` with ``options`` applied.

    Args:
        forward: the task's own forward (channels-last layout, precision casts).
        options: TTA and tiling options.
        kind: the task kind (``segmentation``, ``classification``, ``regression``).
        image_size: the training size: the default tile, and the size the full-size resize baseline uses.
        full_size: inputs come at the photo's size; without tiling, resize them to ``image_size`` for the
            net and its probabilities back.
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        options: TestTimeOptions,
        kind: str,
        image_size: Sequence[int] | int | None,
        full_size: bool = False,
    ) -> None:
        self.forward = forward
        self.options = options
        self.kind = kind
        self.image_size = image_size
        self.full_size = full_size and not options.tiling

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        def probabilities(x: torch.Tensor) -> torch.Tensor:
            return to_probabilities(self.forward(x), self.kind)

        scorer = test_time_scorer(probabilities, self.options, self.kind, self.image_size)
        values = self._resized(scorer, images) if self.full_size else scorer(images)
        return to_outputs(values, self.kind)

    def _resized(self, scorer: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        size = as_size(self.image_size)
        if size is None:
            raise UserError(
                "test_time.full_size=true needs the model's training image_size; the checkpoint has none."
            )
        height, width = images.shape[-2:]
        out = scorer(images if (height, width) == size else resize(images, size))
        return out if tuple(out.shape[-2:]) == (height, width) else resize(out, (height, width))


def options_from(settings: Mapping[str, Any] | None) -> tuple[TestTimeOptions, bool]:
    """``(options, full_size)`` from the ``test_time`` config node (None: the defaults)."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - {*TestTimeOptions.KEYS, "full_size"})
    if unknown:
        raise UserError(
            f"{PREFIX}{unknown[0]} is not a test-time option; the options are "
            f"{', '.join(PREFIX + k for k in (*TestTimeOptions.KEYS, 'full_size'))}."
        )
    full_size = settings.get("full_size", False)
    if not isinstance(full_size, bool):
        raise UserError(f"{PREFIX}full_size={full_size!r} must be true or false.")
    return TestTimeOptions.from_mapping(settings, PREFIX), full_size


def apply_test_time(
    settings: Mapping[str, Any] | None, task: L.LightningModule, datamodule: L.LightningDataModule
) -> dict[str, Any] | None:
    """Set up ``task`` (and for full-size scoring ``datamodule``) for a test with the ``test_time`` options;
    return them as plain data for metrics.json, or None when they ask for a plain test."""
    options, full_size = options_from(settings)
    if not options.active and not full_size:
        return None
    kind = task_kind(task)
    options.check_for(kind)
    info = getattr(task, "data_info", None) or {}
    if info.get("kind") == "tabular":
        raise UserError(
            f"{PREFIX}tta and {PREFIX}tiling work on images; this model predicts from table rows (leave them false)."
        )
    image_size = info.get("image_size")
    if options.tiling or full_size:
        if kind != "segmentation" or not hasattr(datamodule, "keep_test_size"):
            raise UserError(
                f"{PREFIX}tiling and {PREFIX}full_size score segmentation at the photos' own size; "
                f"{type(datamodule).__name__} ({kind}) cannot keep its test images unresized."
            )
        datamodule.keep_test_size()
    # an instance attribute: nn.Module.__call__ finds it before the class's forward; the state dict is untouched
    task.forward = TestTimeForward(task.forward, options, kind, image_size, full_size)  # type: ignore[method-assign]
    described = {**options.describe(), "full_size": bool(full_size or options.tiling)}
    log.info("Testing with %s", ", ".join(f"{k}={v}" for k, v in described.items()))
    return described
