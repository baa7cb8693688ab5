"""Start-up checks of the ``data`` and ``optim`` keys, by type and range, before anything heavy runs.

The Trainer keys are typed by the schema in :mod:`lit_vision.config.schema`; ``data`` and ``optim`` are free
dicts handed to constructors, so a wrong value used to surface late (a torch traceback, a silently truncated
float, a TypeError after the imports and the data scan). Each check here raises one
:class:`~lit_vision.errors.UserError` paragraph that names the key, says what it must be and how to fix it.

- :func:`check_override_keys`: a command-line key that does not exist (``optim.learning_rate=0.01``) gets
  "did you mean ``optim.lr``" instead of Hydra's struct error (called before Hydra composes the run).
- :func:`validate_config`: ``data.*`` numbers (batch sizes, workers, image size, split fractions) and
  ``optim.*`` (every key an argument of the optimizer class, numbers numeric and in range).
- :func:`check_discovered_data`: what the DataModule found (a classification set needs two classes).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lit_vision.errors import UserError

# Names people type for a key that is spelled otherwise here (difflib does not find these).
SYNONYMS = {
    "learning_rate": "lr",
    "learningrate": "lr",
    "lr_rate": "lr",
    "wd": "weight_decay",
    "decay": "weight_decay",
    "bs": "batch_size",
    "batchsize": "batch_size",
    "workers": "num_workers",
    "n_workers": "num_workers",
    "img_size": "image_size",
    "imgsize": "image_size",
    "size": "image_size",
    "epochs": "max_epochs",
    "n_classes": "num_classes",
    "classes": "num_classes",
    "channels": "in_channels",
}


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``name`` was probably meant to be (a known synonym or a close spelling), else None."""
    candidates = [str(c) for c in candidates]
    alias = SYNONYMS.get(name.lower())
    if alias in candidates:
        return alias
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


# ------------------------------------------------------------------------------- unknown command-line keys
# Hydra flags after which the rest of the command line is Hydra's business (help, shell completion...).
_HYDRA_FLAG_PREFIX = "-"
_MULTIRUN_FLAGS = ("-m", "--multirun")


def _unknown_key(message: str) -> str | None:
    """The key of Hydra's "Could not override 'KEY'." composition error, else None."""
    prefix = "Could not override '"
    if not message.startswith(prefix):
        return None
    return message[len(prefix) :].split("'", 1)[0]


def check_override_keys(argv: Sequence[str], config_name: str = "train") -> None:
    """Compose ``conf/<config_name>.yaml`` with the overrides in ``argv[1:]``; a key that does not exist
    becomes a UserError with the closest existing key ("did you mean").

    Anything else (a sweep, a Hydra flag, a bad group choice, a wrong type) is left to Hydra, which reports
    it as before; so is a command line this check cannot compose.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from lit_vision.config.compose import compose_config

    args = [a for a in argv[1:] if a not in _MULTIRUN_FLAGS]
    if not args or any(a.startswith(_HYDRA_FLAG_PREFIX) for a in args):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except HydraException:
        return  # Hydra's own message about the syntax
    if any(o.is_sweep_override() for o in parsed):
        return
    try:
        compose_config(config_name, args)
        return
    except (HydraException, OmegaConfBaseException) as exc:
        key = _unknown_key(str(exc))
    if key is None or "." not in key:
        return
    parent_key = key.rsplit(".", 1)[0]
    others = [a for a, o in zip(args, parsed, strict=True) if o.key_or_group.lstrip("+~") != key]
    try:
        parent = OmegaConf.select(compose_config(config_name, others), parent_key)
    except (HydraException, OmegaConfBaseException):
        return
    if not isinstance(parent, DictConfig):
        return
    known = [str(k) for k in parent]
    raise UserError(unknown_key_message(key, known, parent_key))


def unknown_key_message(key: str, known: Sequence[str], parent_key: str) -> str:
    """The paragraph for a key ``parent_key.<leaf>`` that the config does not have."""
    leaf = key.rsplit(".", 1)[-1]
    guess = did_you_mean(leaf, known)
    hint = f" Did you mean {parent_key}.{guess}?" if guess else ""
    listed = ", ".join(sorted(k for k in known if not k.startswith("_"))) or "(none)"
    text = f"{key}: {parent_key} has no key {leaf!r}.{hint} The keys of {parent_key} are: {listed}."
    if parent_key != "trainer":  # the Trainer schema lists every argument: nothing can be added there
        text += f" (`+{key}=...` adds a key, for a class that takes such an argument.)"
    return text


# ------------------------------------------------------------------------------- data and optim values
@dataclass(frozen=True)
class Rule:
    """What a numeric key must hold: ``kind`` int (a whole number) or float, within [minimum, maximum]."""

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    below_maximum: bool = False  # the maximum itself is excluded
    nullable: bool = False
    meaning: str = ""
    example: str = ""


DATA_RULES: dict[str, Rule] = {
    "batch_size": Rule(int, 1, meaning="samples per training batch", example="32"),
    "eval_batch_size": Rule(
        int, 1, nullable=True, meaning="samples per evaluation batch (null: data.batch_size)", example="64"
    ),
    "num_workers": Rule(
        int,
        0,
        nullable=True,
        meaning="DataLoader worker processes; 0 loads in the main process, null picks a number for this machine",
        example="4",
    ),
    "image_size": Rule(
        int,
        1,
        nullable=True,
        meaning="the side in pixels the images are resized or cropped to",
        example="224",
    ),
    "eval_resize": Rule(
        int,
        1,
        nullable=True,
        meaning="the side evaluation images are resized to before cropping",
        example="256",
    ),
    "in_channels": Rule(int, 1, nullable=True, meaning="image channels (1 grey, 3 colour)", example="3"),
    "num_classes": Rule(int, 1, nullable=True, meaning="the number of classes (null: counted)", example="10"),
    "val_fraction": Rule(
        float,
        0,
        1,
        below_maximum=True,
        meaning="the share of the data held out for validation",
        example="0.1",
    ),
    "test_fraction": Rule(
        float, 0, 1, below_maximum=True, meaning="the share of the data held out for testing", example="0.1"
    ),
}

# Optimizer arguments that must be positive rather than merely not negative.
_POSITIVE_OPTIM_KEYS = ("lr",)
# Keys of conf/optim/*.yaml that lit_vision's build_optimizer reads itself.
_OPTIM_OWN_KEYS = ("_target_",)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_value(key: str, value: Any, rule: Rule) -> None:
    """Raise a UserError when ``value`` of config key ``key`` does not satisfy ``rule``."""
    if value is None and rule.nullable:
        return
    what = f" ({rule.meaning})" if rule.meaning else ""
    fix = f"e.g. {key}={rule.example}" if rule.example else f"set {key}"
    if rule.nullable:
        fix += f", or {key}=null"
    whole = rule.kind is int
    if not _is_number(value) or (whole and not float(value).is_integer()):
        kind = "a whole number" if whole else "a number"
        raise UserError(f"{key}={_shown(value)} is not {kind}{what}: {fix}.")
    if not math.isfinite(float(value)):
        raise UserError(f"{key}={value} is not a finite number{what}: {fix}.")
    low, high = rule.minimum, rule.maximum
    too_low = low is not None and value < low
    too_high = high is not None and (value >= high if rule.below_maximum else value > high)
    if too_low or too_high:
        if high is None:
            bound = f"at least {low:g}"
        elif low is None:
            bound = f"{'below' if rule.below_maximum else 'at most'} {high:g}"
        else:
            bound = f"from {low:g} to {high:g}" + (" (excluded)" if rule.below_maximum else "")
        raise UserError(f"{key}={value} is out of range: it must be {bound}{what}; {fix}.")
    if whole and isinstance(value, float):
        # 3.0 is fine for a whole number, 3.5 was caught above; keep no float where an int is expected
        raise UserError(f"{key}={value} should be written as a whole number{what}: {key}={int(value)}.")


def validate_data(data: Mapping[str, Any]) -> None:
    """Check the numeric ``data.*`` keys present in ``data`` (see :data:`DATA_RULES`)."""
    for name, rule in DATA_RULES.items():
        if name in data:
            check_value(f"data.{name}", data[name], rule)


def _optimizer_class(target: Any) -> type:
    """The class ``optim._target_`` names (imported, never called); UserError when there is none."""
    module_name, _, name = str(target).rpartition(".")
    cls = None
    if module_name:
        try:
            cls = getattr(importlib.import_module(module_name), name, None)
        except ImportError:
            cls = None
    if not isinstance(cls, type):
        raise UserError(
            f"optim._target_={target!r} is not an optimizer class that can be imported: choose one with "
            "optim=<name> (adam, adamw, sgd, ...) or give a full path such as torch.optim.AdamW."
        )
    return cls


def validate_optim(optim: Mapping[str, Any]) -> None:
    """Check ``optim``: every key an argument of the optimizer class, numbers numeric and in range."""
    if not optim or "_target_" not in optim:
        return
    cls = _optimizer_class(optim["_target_"])
    params = {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name not in ("self", "params") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    accepts_more = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())
    for key, value in optim.items():
        key = str(key)
        if key in _OPTIM_OWN_KEYS:
            continue
        if key == "fused" and value == "auto":
            continue  # build_optimizer picks the fused step or drops the key
        if key not in params:
            if accepts_more:
                continue
            guess = did_you_mean(key, params)
            hint = f" Did you mean optim.{guess}?" if guess else ""
            raise UserError(
                f"optim.{key}: {cls.__name__} takes no argument {key!r}.{hint} Its arguments are: "
                f"{', '.join(params)}."
            )
        _check_optim_value(key, value, params[key].default, cls.__name__)


def _check_optim_value(key: str, value: Any, default: Any, class_name: str) -> None:
    full = f"optim.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{full}={_shown(value)} must be true or false ({class_name}'s {key}).")
    elif _is_number(default):
        minimum = 0.0
        if key in _POSITIVE_OPTIM_KEYS:
            example = "0.001" if key == "lr" else str(default)
            if not _is_number(value) or not math.isfinite(float(value)) or value <= 0:
                raise UserError(
                    f"{full}={_shown(value)} is not a positive number: give {class_name}'s {key} as one, e.g. "
                    f"{full}={example}."
                )
            return
        check_value(full, value, Rule(float, minimum, meaning=f"{class_name}'s {key}", example=str(default)))
    elif isinstance(default, tuple) and default and all(_is_number(d) for d in default):
        items = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        example = "[" + ",".join(f"{d:g}" for d in default) + "]"
        if not isinstance(items, (list, tuple)) or len(items) != len(default):
            raise UserError(
                f"{full}={_shown(items)} must be a list of {len(default)} numbers ({class_name}'s {key}), "
                f"e.g. {full}={example}."
            )
        for index, item in enumerate(items):
            check_value(
                f"{full}[{index}]",
                item,
                Rule(
                    float,
                    0,
                    1,
                    below_maximum=key == "betas",
                    meaning=f"{class_name}'s {key}",
                    example=str(default[index]),
                ),
            )


def validate_config(cfg: DictConfig) -> None:
    """Start-up check of a composed run config's ``data`` and ``optim`` keys (UserError naming the key)."""
    data = cfg.get("data")
    if isinstance(data, DictConfig):
        validate_data(OmegaConf.to_container(data, resolve=True))
    optim = cfg.get("optim")
    if isinstance(optim, DictConfig):
        validate_optim(OmegaConf.to_container(optim, resolve=True))


def check_discovered_data(cfg: DictConfig) -> None:
    """Check what the DataModule filled in: a classification task needs at least two classes."""
    target = str(OmegaConf.select(cfg, "model._target_", default="") or "")
    num_classes = OmegaConf.select(cfg, "data.num_classes", default=None)
    if not target.endswith("ClassificationTask") or num_classes is None or num_classes >= 2:
        return
    root = OmegaConf.select(cfg, "data.root", default=None)
    where = f" in data.root={root}" if root is not None else ""
    raise UserError(
        f"data.num_classes is {num_classes}{where}: classification needs at least two classes to tell apart. "
        "Give the data one sub-folder (or label) per class, at least two of them."
    )
