"""Monitoring callbacks beyond Lightning's own: what the tutorials draw in TensorBoard, switched by config.

Each is a ``conf/callbacks/<name>.yaml`` entry; ``callbacks=all`` turns every one on. TensorBoard-only
callbacks warn once and skip their output when no TensorBoard logger is configured; all of them draw on
global rank 0 only.
"""

from lit_vision.callbacks.base import EpochSchedule, MonitorCallback, tensorboard_writer
from lit_vision.callbacks.calibration import CalibrationReport, TemperatureScaling
from lit_vision.callbacks.confusion_matrix import ConfusionMatrixCallback
from lit_vision.callbacks.confusion_text import ConfusionMatrixText
from lit_vision.callbacks.conv_visuals import ConvKernelImages, FeatureMapImages
from lit_vision.callbacks.embedding import EmbeddingProjector
from lit_vision.callbacks.error_gallery import ErrorGallery
from lit_vision.callbacks.graph import ModelGraph
from lit_vision.callbacks.histograms import ParameterHistograms
from lit_vision.callbacks.hparams import HParamsSummary
from lit_vision.callbacks.pr_curves import PRCurves
from lit_vision.callbacks.prediction_grid import ClassificationPredictionGrid

__all__ = [
    "CalibrationReport",
    "ClassificationPredictionGrid",
    "ConfusionMatrixCallback",
    "ConfusionMatrixText",
    "ConvKernelImages",
    "EmbeddingProjector",
    "EpochSchedule",
    "ErrorGallery",
    "FeatureMapImages",
    "HParamsSummary",
    "ModelGraph",
    "MonitorCallback",
    "PRCurves",
    "ParameterHistograms",
    "TemperatureScaling",
    "tensorboard_writer",
]
