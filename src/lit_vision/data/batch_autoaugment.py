"""torchvision's automatic augmentation policies and RandomErasing on whole batches, per-sample parameters.

torchvision's ``RandAugment``, ``TrivialAugmentWide`` and ``AutoAugment`` draw *one* op and magnitude per
call, and ``RandomErasing`` one box: called on a batch, every sample gets the same change. Here every
sample gets its own draw, from the same distribution torchvision uses (its ``_AUGMENTATION_SPACE`` and
policies), and the op is applied by torchvision's own code (``_apply_image_or_video_transform``) once per
*distinct* draw, to all the samples that drew it. The cost is one torchvision call per distinct
(op, magnitude) in the batch: about 2 x 25 calls per batch for RandAugment (fixed magnitude), at most 25
policies x 4 outcomes for AutoAugment, and close to one call per sample for TrivialAugmentWide (31 random
magnitudes per op). RandomErasing draws a box per sample as torchvision's ``make_params`` does, for the
whole batch at once, and erases them all in one masked write.

The policies work on pixel values in [0, 1] (the batch is un-normalised, augmented and normalised again);
RandomErasing works on the normalised batch, as in torchvision's recipes (after Normalize).
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision.transforms import v2

from lit_vision.data.batch_op import BatchOp
from lit_vision.errors import UserError


def _build(cls: type, name: str, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise UserError(f"data.augment item {name}: {err}") from None


class _PolicyOp(BatchOp):
    """Base of the per-sample policies: subclasses draw ``(op index, magnitude)`` per sample and step."""

    policy_class: type = v2.RandAugment

    def __init__(self, p: float = 1.0, **kwargs: Any) -> None:
        self.p = float(p)
        self.transform = _build(self.policy_class, type(self).__name__, kwargs)
        self.op_names = list(self.transform._AUGMENTATION_SPACE)

    def draw(self, n: int, height: int, width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per step: ``(op index (N,), magnitude (N,))``; op index -1 leaves the sample unchanged."""
        raise NotImplementedError

    def magnitudes(self, op: str, bins: int, height: int, width: int) -> torch.Tensor | None:
        fn, _signed = self.transform._AUGMENTATION_SPACE[op]
        values = fn(bins, height, width)
        return None if values is None else values.float()

    def signed(self, op_index: torch.Tensor) -> torch.Tensor:
        """``+1``/``-1`` per sample: -1 with probability 0.5 where the drawn op is signed."""
        signed = torch.tensor([self.transform._AUGMENTATION_SPACE[op][1] for op in self.op_names])
        flip = (torch.rand(len(op_index)) < 0.5) & signed[op_index.clamp_min(0)]
        return 1.0 - 2.0 * flip.float()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        pixels = self.to_unit(images)
        keep = torch.rand(n) >= self.p  # drawn on the CPU like the ops: no device sync
        for op_index, magnitude in self.draw(n, height, width):
            op_index = op_index.masked_fill(keep, -1)
            # one torchvision call per distinct (op, magnitude): equal draws share the call
            draws = torch.stack([op_index.float(), magnitude], dim=1)
            distinct, group = torch.unique(draws, dim=0, return_inverse=True)
            for g, (op_value, value) in enumerate(distinct.tolist()):
                if op_value < 0 or self.op_names[int(op_value)] == "Identity":
                    continue
                index = (group == g).nonzero().flatten().to(images.device)
                pixels[index] = self.transform._apply_image_or_video_transform(
                    pixels[index],
                    self.op_names[int(op_value)],
                    value,
                    interpolation=self.transform.interpolation,
                    fill=self.transform._fill,
                )
        return self.from_unit(pixels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, {self.transform!r})"


class RandAugment(_PolicyOp):
    """torchvision's RandAugment (``num_ops``, ``magnitude``, ``num_magnitude_bins``, ``interpolation``,
    ``fill``) with its ops and signs drawn per sample; ``p``: share of samples augmented."""

    policy_class = v2.RandAugment

    def draw(self, n: int, height: int, width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        t = self.transform
        steps = []
        for _ in range(t.num_ops):
            op_index = torch.randint(len(self.op_names), (n,))
            table = torch.zeros(len(self.op_names))
            for i, op in enumerate(self.op_names):
                values = self.magnitudes(op, t.num_magnitude_bins, height, width)
                table[i] = 0.0 if values is None else values[t.magnitude]
            steps.append((op_index, table[op_index] * self.signed(op_index)))
        return steps


class TrivialAugmentWide(_PolicyOp):
    """torchvision's TrivialAugmentWide (``num_magnitude_bins``, ``interpolation``, ``fill``): one op and
    one magnitude bin drawn per sample; ``p``: share of samples augmented."""

    policy_class = v2.TrivialAugmentWide

    def draw(self, n: int, height: int, width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        bins = self.transform.num_magnitude_bins
        op_index = torch.randint(len(self.op_names), (n,))
        bin_index = torch.randint(bins, (n,))
        table = torch.zeros(len(self.op_names), bins)
        for i, op in enumerate(self.op_names):
            values = self.magnitudes(op, bins, height, width)
            if values is not None:
                table[i] = values
        return [(op_index, table[op_index, bin_index] * self.signed(op_index))]


class AutoAugment(_PolicyOp):
    """torchvision's AutoAugment (``policy``: imagenet, cifar10 or svhn; ``interpolation``, ``fill``): one
    sub-policy per sample, each of its two ops applied with its own probability; ``p``: share of samples."""

    policy_class = v2.AutoAugment

    def __init__(self, p: float = 1.0, **kwargs: Any) -> None:
        if isinstance(kwargs.get("policy"), str):
            name = kwargs["policy"].upper()
            if name not in v2.AutoAugmentPolicy.__members__:
                raise UserError(
                    f"data.augment item AutoAugment: policy {kwargs['policy']!r} is not one of "
                    f"{[m.lower() for m in v2.AutoAugmentPolicy.__members__]}"
                )
            kwargs["policy"] = v2.AutoAugmentPolicy[name]
        super().__init__(p=p, **kwargs)

    def draw(self, n: int, height: int, width: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        policies = self.transform._policies
        chosen = torch.randint(len(policies), (n,))
        steps = []
        for step in range(2):
            op_index = torch.tensor([self.op_names.index(p[step][0]) for p in policies])[chosen]
            probability = torch.tensor([float(p[step][1]) for p in policies])[chosen]
            table = torch.zeros(len(policies))
            for k, policy in enumerate(policies):
                values = self.magnitudes(policy[step][0], 10, height, width)
                if values is not None and policy[step][2] is not None:
                    table[k] = values[policy[step][2]]
            op_index = op_index.masked_fill(torch.rand(n) > probability, -1)
            steps.append((op_index, table[chosen] * self.signed(op_index)))
        return steps


class RandomErasing(BatchOp):
    """torchvision's RandomErasing (``p``, ``scale``, ``ratio``, ``value``: a number in normalised units or
    ``random``) with an independent box per sample, erased in one masked write.

    The boxes follow ``RandomErasing.make_params`` (area share uniform in ``scale``, log aspect ratio
    uniform in ``log(ratio)``, the first of 10 tries that fits, else nothing erased), drawn for the whole
    batch at once instead of one Python call per sample.
    """

    tries = 10

    def __init__(self, **kwargs: Any) -> None:
        self.transform = _build(v2.RandomErasing, "RandomErasing", kwargs)

    def boxes(self, n: int, height: int, width: int) -> torch.Tensor:
        """``(N, 4)`` long ``top, left, h, w`` per sample; ``h = w = 0`` where nothing is erased."""
        scale, log_ratio = self.transform.scale, self.transform._log_ratio
        area = height * width * torch.empty(n, self.tries).uniform_(scale[0], scale[1])
        ratio = torch.exp(torch.empty(n, self.tries).uniform_(float(log_ratio[0]), float(log_ratio[1])))
        h = torch.sqrt(area * ratio).round().long()
        w = torch.sqrt(area / ratio).round().long()
        fits = (h < height) & (w < width)
        first = fits.float().argmax(dim=1, keepdim=True)  # the first try that fits (0 when none does)
        chosen = fits.any(dim=1) & (torch.rand(n) < self.transform.p)
        h = h.gather(1, first).squeeze(1) * chosen
        w = w.gather(1, first).squeeze(1) * chosen
        top = (torch.rand(n) * (height - h + 1)).long()
        left = (torch.rand(n) * (width - w + 1)).long()
        return torch.stack([top, left, h, w], dim=1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, c, height, width = images.shape
        if self.transform.value is not None and len(self.transform.value) not in (1, c):
            raise UserError(
                f"data.augment item RandomErasing: value has {len(self.transform.value)} numbers for "
                f"{c}-channel images; give 1 or {c} (or 'random')."
            )
        boxes = self.boxes(n, height, width).to(images.device)
        top, left, h, w = (part.view(n, 1, 1) for part in boxes.unbind(1))
        ys = torch.arange(height, device=images.device).view(1, height, 1)
        xs = torch.arange(width, device=images.device).view(1, 1, width)
        inside = ((ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)).unsqueeze(1)
        if self.transform.value is None:
            values = torch.randn_like(images)
        else:
            values = torch.tensor(self.transform.value, device=images.device, dtype=images.dtype)
            values = values.view(1, -1, 1, 1).expand_as(images)
        return torch.where(inside, values, images)

    def __repr__(self) -> str:
        return f"RandomErasing({self.transform!r})"


AUTO_OPS: dict[str, type[BatchOp]] = {
    cls.__name__: cls for cls in (RandAugment, TrivialAugmentWide, AutoAugment, RandomErasing)
}
