"""What a DataModule tells the rest of lit_vision: the typed data contract.

:class:`DataInfo` is what inference needs to prepare inputs the way training did (task kind, classes,
channels, image size, normalisation, evaluation transforms, the tabular preprocessing). A DataModule's
``data_info()`` returns it; the task stores it in checkpoints as a plain dict (:meth:`DataInfo.to_dict`:
only str/int/float/bool/None/list/dict, so ``torch.load(weights_only=True)`` can read it) and reads it back
with :meth:`DataInfo.from_dict`, which also accepts the dicts of checkpoints written before this class.
Read its fields as attributes; it is also a read-only mapping over :meth:`~DataInfo.to_dict` (``info["mean"]``,
``info.get("palette")``), so code written against the plain dicts keeps working.

:class:`DescribesData` and :class:`DiscoversData` are the hooks the run uses (instead of ``hasattr``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lit_vision.errors import UserError

# Data families (``DataInfo.kind``) and the task kind each one trains.
TASK_OF_KIND = {
    "classification": "classification",
    "multilabel": "multilabel",
    "segmentation": "segmentation",
    "image_regression": "regression",
    "tabular": "regression",
}
# Fields a checkpoint's dict always holds for each data family (None when unknown), as before DataInfo.
CORE_FIELDS = {
    "classification": ("num_classes", "in_channels", "image_size", "mean", "std", "class_names"),
    "multilabel": ("num_classes", "in_channels", "image_size", "mean", "std", "class_names"),
    "segmentation": (
        "num_classes",
        "in_channels",
        "image_size",
        "eval_transforms",
        "mean",
        "std",
        "class_names",
        "ignore_index",
        "palette",
    ),
    "image_regression": (
        "in_channels",
        "image_size",
        "eval_transforms",
        "mean",
        "std",
        "target_names",
        "target_mean",
        "target_std",
    ),
    "tabular": ("feature_names", "target_names", "target_mean", "target_std"),
}
# Keys of the tabular preprocessor's description (lit_vision.data.tabular.TabularPreprocessor.to_info)
# besides those DataInfo has fields for.
TABULAR_KEYS = (
    "numeric_columns",
    "categorical",
    "feature_mean",
    "feature_std",
    "unknown_category",
    "date_columns",
)


def _tuple(values: Sequence[Any] | None, cast: type | None = None) -> tuple[Any, ...] | None:
    if values is None:
        return None
    return tuple(cast(v) if cast else v for v in values)


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively (the checkpoint holds builtin JSON-like types only)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, eq=False)
class DataInfo(Mapping[str, Any]):
    """What inference needs from a DataModule, stored in every checkpoint.

    Attributes:
        kind: the data family: ``classification``, ``multilabel``, ``segmentation``, ``image_regression`` or
            ``tabular``.
        num_classes, class_names: classes (classification, segmentation).
        in_channels, image_size: the net's input images (``image_size``: a side or ``(height, width)``).
        mean, std: per-channel normalisation of images scaled to [0, 1].
        eval_transforms: the evaluation transforms (torchvision.transforms.v2 names or ``{_target_: ...}``)
            that run before normalisation.
        folder_names: the class folders' names (image folders), for labels next to class names.
        ignore_index, palette: segmentation's ignored mask value and one RGB colour per class.
        target_names, target_mean, target_std: regression targets and their standardisation.
        feature_names: a table's input features in net order (numeric columns, then one-hot columns).
        tabular: the rest of the fitted tabular preprocessing (see ``TABULAR_KEYS``).
        augment, dataset: informational (the training batch augmentation, the torchvision data set).
        extra: keys this class does not know (a newer checkpoint), kept so they are written back.
    """

    kind: str
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    in_channels: int | None = None
    image_size: int | tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    eval_transforms: tuple[Any, ...] | None = None
    folder_names: tuple[str, ...] | None = None
    ignore_index: int | None = None
    palette: tuple[tuple[int, ...], ...] | None = None
    target_names: tuple[str, ...] | None = None
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    tabular: Mapping[str, Any] | None = None
    augment: tuple[Any, ...] | None = None
    dataset: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in TASK_OF_KIND:
            raise UserError(f"data_info kind {self.kind!r} is not one of {sorted(TASK_OF_KIND)}")
        if self.kind == "tabular" and self.tabular is not None:
            missing = [k for k in ("numeric_columns", "feature_mean", "feature_std") if k not in self.tabular]
            if missing:
                raise UserError(f"tabular data_info lacks {missing}: the preprocessing cannot be rebuilt")

    @classmethod
    def create(cls, kind: str, **values: Any) -> DataInfo:
        """A DataInfo from plain values (lists become tuples, numbers are cast); None values stay None."""
        casts: dict[str, Any] = {
            "num_classes": int,
            "in_channels": int,
            "ignore_index": int,
            "class_names": lambda v: _tuple(v, str),
            "folder_names": lambda v: _tuple(v, str),
            "target_names": lambda v: _tuple(v, str),
            "feature_names": lambda v: _tuple(v, str),
            "mean": lambda v: _tuple(v, float),
            "std": lambda v: _tuple(v, float),
            "target_mean": lambda v: _tuple(v, float),
            "target_std": lambda v: _tuple(v, float),
            "image_size": lambda v: int(v) if isinstance(v, (int, float)) else _tuple(v, int),
            "eval_transforms": _tuple,
            "augment": _tuple,
            "palette": lambda v: tuple(_tuple(c, int) for c in v),
            "dataset": str,
        }
        converted = {k: (casts[k](v) if k in casts and v is not None else v) for k, v in values.items()}
        return cls(kind=kind, **converted)

    # ------------------------------------------------------------------ derived
    @property
    def task(self) -> str:
        """The task kind this data trains: ``classification``, ``multilabel``, ``segmentation`` or
        ``regression``."""
        return TASK_OF_KIND[self.kind]

    @property
    def is_tabular(self) -> bool:
        """Whether inputs are table rows (not images)."""
        return self.kind == "tabular"

    # ------------------------------------------------------------------ the checkpoint boundary
    def to_dict(self) -> dict[str, Any]:
        """Plain builtins for the checkpoint; the keys are those checkpoints have always held."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "segmentation":
            out["task"] = "segmentation"  # how checkpoints before DataInfo marked segmentation data
        core = CORE_FIELDS[self.kind]
        for f in dataclasses.fields(self):
            if f.name in ("kind", "tabular", "extra"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in core:
                out[f.name] = _plain(value)
        out.update(_plain(dict(self.tabular or {})))
        out.update(_plain(dict(self.extra)))
        return out

    @classmethod
    def from_dict(cls, info: Mapping[str, Any] | DataInfo | None) -> DataInfo | None:
        """The DataInfo a checkpoint's plain dict describes (None for an empty one); old dicts work too."""
        if info is None or isinstance(info, DataInfo):
            return info
        info = dict(info)
        if not info:
            return None
        kind = _kind_of(info)
        names = {f.name for f in dataclasses.fields(cls)} - {"kind", "tabular", "extra"}
        values = {k: info.pop(k) for k in list(info) if k in names}
        tabular = {k: info.pop(k) for k in list(info) if k in TABULAR_KEYS} or None
        info.pop("kind", None)
        info.pop("task", None)
        return cls.create(kind, tabular=tabular, extra=info, **values)

    # ------------------------------------------------------------------ read-only mapping view
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def replace(self, **changes: Any) -> DataInfo:
        """A copy with ``changes`` (plain values, converted as in :meth:`create`)."""
        return DataInfo.from_dict({**self.to_dict(), **_plain(changes)})


def _kind_of(info: Mapping[str, Any]) -> str:
    """The data family of a plain data_info dict, including those written before ``kind`` was always set."""
    kind = info.get("kind")
    if kind in TASK_OF_KIND:
        return str(kind)
    if info.get("task") == "segmentation":
        return "segmentation"
    if "target_names" in info or "target_mean" in info:
        return "tabular" if "numeric_columns" in info else "image_regression"
    return "classification"


def classification_info(datamodule: Any, **extra: Any) -> DataInfo:
    """The :class:`DataInfo` of an image classification DataModule: its classes (``"0"``, ``"1"``... when
    it has no names), channels, image size and normalisation, plus ``extra`` (e.g. ``eval_transforms``)."""
    count = datamodule.num_classes or 0
    return DataInfo.create(
        "classification",
        num_classes=datamodule.num_classes,
        in_channels=datamodule.in_channels,
        image_size=datamodule.image_size,
        mean=datamodule.mean,
        std=datamodule.std,
        class_names=datamodule.class_names or [str(i) for i in range(count)],
        **extra,
    )


@runtime_checkable
class DescribesData(Protocol):
    """A DataModule that describes its data for the task and the checkpoint."""

    def data_info(self) -> DataInfo:
        """What inference needs (see :class:`DataInfo`)."""
        ...


@runtime_checkable
class DiscoversData(Protocol):
    """A DataModule that finds what the config may leave null (``num_classes``, ``in_channels``,
    ``image_size``, ``num_features``, ``num_targets``) by reading its files; after :meth:`discover` those
    attributes hold the values. ``not_applicable_keys`` are the keys its kind of data does not have (a
    table has no image size): they stay null."""

    not_applicable_keys: tuple[str, ...]

    def discover(self) -> None:
        """Read what is needed to fill the discoverable attributes (idempotent)."""
        ...
