"""The penultimate features of a sample of test images in TensorBoard's PROJECTOR (PCA / t-SNE / UMAP).

Each point carries its image as a thumbnail and its true and predicted class as metadata, so clusters of
confused classes can be inspected by eye.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.callbacks.outputs import class_names_of, penultimate_features
from lit_vision.viz.images import single_view, unnormalize


class EmbeddingProjector(MonitorCallback):
    """Collects the first ``num_samples`` test images and logs their features with ``add_embedding``.

    Features come from ``net.forward_features`` or, failing that, from the input of the last linear layer
    (see :func:`~lit_vision.callbacks.outputs.penultimate_features`).

    Args:
        num_samples: points in the projector.
        thumbnail_size: side of each thumbnail in the sprite (images are resized to it).
        tag: the embedding's name in the projector.
    """

    def __init__(self, num_samples: int = 256, thumbnail_size: int = 32, tag: str = "test_features") -> None:
        super().__init__(every_n_epochs=1, max_overhead=None)
        self.num_samples = int(num_samples)
        self.thumbnail_size = int(thumbnail_size)
        self.tag = tag
        self._reset()

    def _reset(self) -> None:
        self._features: list[torch.Tensor] = []
        self._thumbnails: list[torch.Tensor] = []
        self._labels: list[int] = []
        self._predicted: list[int] = []
        self._num_classes = 0
        self._collecting = False

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._reset()
        self._collecting = self.enabled(trainer) and self.writer(trainer) is not None

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not self._collecting or len(self._labels) >= self.num_samples:
            return
        if not isinstance(batch, (tuple, list)) or len(batch) < 2 or batch[1].ndim != 1:
            self._collecting = False  # per-image class labels only
            return
        room = self.num_samples - len(self._labels)
        images, labels = single_view(batch[0][:room]), batch[1][:room]
        features = penultimate_features(pl_module, images)
        with torch.no_grad():
            logits = pl_module(images)
        if logits.ndim != 2:
            self._collecting = False  # not a classifier
            return
        self._features.append(features.cpu())
        self._thumbnails.append(self._thumbnail(unnormalize(images, getattr(pl_module, "data_info", None))))
        self._labels += labels.cpu().tolist()
        self._predicted += logits.argmax(dim=1).cpu().tolist()
        self._num_classes = int(logits.shape[1])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._collecting or not self._labels:
            return
        features = torch.cat(self._features)
        names = class_names_of(pl_module, self._num_classes)
        metadata = [
            [names[label], names[pred]] for label, pred in zip(self._labels, self._predicted, strict=True)
        ]
        writer = self.writer(trainer)
        writer.add_embedding(
            features,
            metadata=metadata,
            metadata_header=["label", "predicted"],
            label_img=torch.cat(self._thumbnails),
            global_step=trainer.global_step,
            tag=self.tag,
        )
        self._reset()

    def _thumbnail(self, images: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` images resized to the thumbnail size, grey ones repeated to RGB."""
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        images = images[:, :3]
        if images.shape[-1] != self.thumbnail_size or images.shape[-2] != self.thumbnail_size:
            mode = "nearest" if images.shape[-1] < self.thumbnail_size else "area"
            images = F.interpolate(images, size=(self.thumbnail_size, self.thumbnail_size), mode=mode)
        return images
