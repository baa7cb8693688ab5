"""Using a trained checkpoint: batched prediction to files, preprocessing of new inputs, export.

``python -m lit_vision.cli.predict`` and ``python -m lit_vision.cli.export`` are the command lines over
:func:`predict` and :func:`export_model`; :func:`load_model` and :class:`ImagePreprocessor` are the pieces
for your own code (README, section Inference).
"""

from lit_vision.inference.api import predict
from lit_vision.inference.checkpoint import LoadedModel, load_model
from lit_vision.inference.export import ExportCheckFailed, ExportResult, export_model
from lit_vision.inference.preprocess import ImagePreprocessor

__all__ = [
    "ExportCheckFailed",
    "ExportResult",
    "ImagePreprocessor",
    "LoadedModel",
    "export_model",
    "load_model",
    "predict",
]
