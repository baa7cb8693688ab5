"""The four Lightning dataloader hooks of a DataModule whose splits are named train/val/test."""

from __future__ import annotations

from abc import abstractmethod

import lightning as L
from torch.utils.data import DataLoader


class SplitDataModule(L.LightningDataModule):
    """A DataModule that builds every loader with one :meth:`_loader`; prediction reads the test split."""

    @abstractmethod
    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        """The loader of split ``stage`` (``train``, ``val`` or ``test``)."""

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
