"""The model graph (TensorBoard's GRAPHS tab), traced once with the first training batch."""

from __future__ import annotations

import warnings

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn

from lit_vision.callbacks.base import MonitorCallback
from lit_vision.viz.images import single_view


class ModelGraph(MonitorCallback):
    """Traces ``pl_module.net`` (or the module itself) with one image of the first training batch.

    Nets that cannot be traced (data-dependent control flow, compiled modules...) give a warning, not a
    crash; training goes on.
    """

    def __init__(self) -> None:
        super().__init__(every_n_epochs=1, max_overhead=None)
        self._done = False

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        if self._done or not self.enabled(trainer):
            return
        self._done = True
        writer = self.writer(trainer)
        example = batch[0] if isinstance(batch, (tuple, list)) else batch
        if writer is None or not hasattr(example, "shape"):
            return
        net = getattr(pl_module, "net", pl_module)
        was_training = net.training
        net.eval()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer chatter about constants and control flow
                writer.add_graph(net, single_view(example[:1]))
        except Exception as error:  # any tracing failure only costs the graph
            rank_zero_warn(f"ModelGraph could not trace {type(net).__name__}: {error}; no graph is logged.")
        finally:
            net.train(was_training)
