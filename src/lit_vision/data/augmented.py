"""In-memory image DataModules with per-batch, per-sample random augmentation on the training device."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lit_vision.data.batch_augment import BatchAugment, build_batch_augment
from lit_vision.data.contract import DataInfo
from lit_vision.data.in_memory import InMemoryImageDataModule
from lit_vision.data.mixing import BatchMix, parse_mix


class AugmentedInMemoryDataModule(InMemoryImageDataModule):
    """:class:`InMemoryImageDataModule` plus ``augment``: a list of batch ops (see ``data/batch_augment.py``)
    applied to training batches after normalisation, on whatever device the batch is on; and ``mix``:
    MixUp/CutMix of those batches after the ops (see ``data/mixing.py``), which makes training batches
    ``(images, labels, soft targets)``."""

    def __init__(
        self,
        augment: Sequence[Mapping[str, Any] | str] | None = None,
        mix: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.augment_items = [_plain(item) for item in (augment or [])]
        # Built now so a typo in the config fails at instantiation, before any data is read.
        self.batch_augment: BatchAugment | None = build_batch_augment(self.augment_items)
        self.mix_settings = parse_mix(_plain(mix))
        self.batch_mix: BatchMix | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.batch_augment is not None:
            self.batch_augment.set_normalization(self.mean, self.std)
        if self.mix_settings is not None and self.batch_mix is None:
            self.batch_mix = self.mix_settings.build(int(self.num_classes))

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = super().on_after_batch_transfer(batch, dataloader_idx)
        if self.batch_mix is not None and self.trainer is not None and self.trainer.training:
            return self.batch_mix(images, labels)
        return images, labels

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """Apply the configured ops to a normalised training batch (identity when none)."""
        if self.batch_augment is None:
            return images
        return self.batch_augment(images)

    def data_info(self) -> DataInfo:
        return super().data_info().replace(augment=self.augment_items)


def _plain(item: Any) -> Any:
    """OmegaConf nodes -> builtin dicts/lists (JSON-able for checkpoints)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(item, (DictConfig, ListConfig)):
        return OmegaConf.to_container(item, resolve=True)
    return item
