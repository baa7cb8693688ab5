"""Loading weights into nets: partial state-dict loading by name and shape, and torchvision weights enums.

Both kinds of loading are skipped while a task is rebuilt from a checkpoint (``no_pretrained_loading``):
the checkpoint holds the trained weights, and the original file or download may no longer be reachable.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_vision.errors import UserError

log = logging.getLogger("lit_vision")

_SKIP_PRETRAINED: contextvars.ContextVar[bool] = contextvars.ContextVar("skip_pretrained", default=False)

# Wrappers that prefix every key: Lightning tasks (net.), DataParallel/DDP (module.), torch.compile
# (_orig_mod.), and checkpoints saved from a `model` attribute. Our TorchvisionClassifier adds backbone.
STRIP_PREFIXES = ("", "net.", "module.", "model.", "_orig_mod.", "net.backbone.", "backbone.")
ADD_PREFIXES = ("", "backbone.")
# Containers in which training scripts commonly store the state dict inside a checkpoint file.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


@contextlib.contextmanager
def no_pretrained_loading() -> Iterator[None]:
    """Within this block nets skip ``weights`` downloads and ``pretrained_path`` files."""
    token = _SKIP_PRETRAINED.set(True)
    try:
        yield
    finally:
        _SKIP_PRETRAINED.reset(token)


def pretrained_loading_enabled() -> bool:
    """False while a task is being rebuilt from a checkpoint."""
    return not _SKIP_PRETRAINED.get()


def local_file_replaces_downloads(
    pretrained_path: str | os.PathLike | None,
) -> contextlib.AbstractContextManager:
    """Around building a net: with a ``pretrained_path`` the net's own ``weights`` are not downloaded (nor
    read from the torch hub cache), since the local file is loaded into it right after."""
    return no_pretrained_loading() if pretrained_path else contextlib.nullcontext()


@dataclass
class LoadReport:
    """What a partial load copied and what it skipped (and why)."""

    source: str
    key_mapping: str = "names as they are"
    loaded: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form (shapes as lists)."""
        return {
            "source": self.source,
            "key_mapping": self.key_mapping,
            "loaded": list(self.loaded),
            "shape_mismatch": [[n, list(a), list(b)] for n, a, b in self.shape_mismatch],
            "missing": list(self.missing),
            "unexpected": list(self.unexpected),
        }

    def summary(self, limit: int = 8) -> str:
        """A few lines for the log: counts, then the names that were skipped."""

        def some(names: list[str]) -> str:
            more = f" ... (+{len(names) - limit})" if len(names) > limit else ""
            return ", ".join(names[:limit]) + more

        lines = [
            f"Loaded {len(self.loaded)} tensors from {self.source} ({self.key_mapping}); "
            f"skipped {len(self.shape_mismatch)} with another shape, {len(self.unexpected)} unused, "
            f"{len(self.missing)} of the model not in the file (kept as initialised)."
        ]
        if self.shape_mismatch:
            shapes = [f"{n} {tuple(a)} vs model {tuple(b)}" for n, a, b in self.shape_mismatch]
            lines.append("  other shape: " + some(shapes))
        if self.unexpected:
            lines.append("  unused: " + some(self.unexpected))
        if self.missing:
            lines.append("  not in file: " + some(self.missing))
        return "\n".join(lines)


def read_state_dict(path: str | os.PathLike, key: str = "model.pretrained_path") -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file or a ``.pt``/``.pth``/``.bin``/``.ckpt`` file (a bare
    state dict or a checkpoint holding one under ``state_dict``, ``model_state_dict``, ``model``, ``net`` or
    ``weights``), as plain tensors only: nothing in the file can run code. ``key`` names the setting in
    error messages."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{key}={str(path)!r} does not exist. Point {key} at a weights file (.safetensors, or a "
            ".pt/.pth/.bin/.ckpt state dict), or set it to null to start from the initialisation."
        )
    if path.suffix == ".safetensors":
        return _read_safetensors(path, key)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-torch files
        raise UserError(
            f"{key}={str(path)!r} could not be read as a PyTorch file ({type(exc).__name__}: "
            f"{exc}). Save weights with torch.save(model.state_dict(), path)."
        ) from exc
    for _ in range(2):  # a Lightning checkpoint may nest the dict one level down
        if isinstance(content, Mapping) and not _is_state_dict(content):
            inner = next((content[k] for k in STATE_DICT_KEYS if isinstance(content.get(k), Mapping)), None)
            if inner is None:
                break
            content = inner
    if not isinstance(content, Mapping) or not _is_state_dict(content):
        raise UserError(
            f"{key}={str(path)!r} holds no state dict (expected a mapping of parameter names to "
            f"tensors, or a checkpoint with one under {list(STATE_DICT_KEYS)})."
        )
    return {str(k): v for k, v in content.items() if isinstance(v, torch.Tensor)}


def _read_safetensors(path: Path, key: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{key}={str(path)!r} could not be read as a safetensors file ({type(exc).__name__}: {exc}). "
            "Check that the download is complete, or give a .pt/.pth state dict instead."
        ) from exc


def _is_state_dict(content: Mapping) -> bool:
    return bool(content) and any(isinstance(v, torch.Tensor) for v in content.values())


def _best_key_mapping(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]):
    """Choose the prefix rewrite (strip one wrapper prefix, add one) under which most names match."""
    best = (-1, "", "")
    for strip in STRIP_PREFIXES:
        for add in ADD_PREFIXES:
            hits = sum(1 for k in source if k.startswith(strip) and (add + k[len(strip) :]) in target)
            if hits > best[0]:
                best = (hits, strip, add)
    _, strip, add = best
    return strip, add


def load_matching_state_dict(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> LoadReport:
    """Copy into ``module`` every tensor whose name and shape match; report everything else.

    Names are matched as they are or after removing a wrapper prefix (``net.``, ``module.``, ``model.``,
    ``_orig_mod.``) and/or adding ``backbone.``, whichever rewrite matches the most names.
    """
    target = module.state_dict()
    strip, add = _best_key_mapping(state_dict, target)
    mapping = "names as they are"
    if strip or add:
        mapping = f"names with {strip or 'no prefix'!r} replaced by {add or 'no prefix'!r}"
    report = LoadReport(source=source, key_mapping=mapping)
    selected: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        name = add + key[len(strip) :] if key.startswith(strip) else key
        if name not in target:
            report.unexpected.append(key)
        elif tuple(target[name].shape) != tuple(tensor.shape):
            report.shape_mismatch.append((name, tuple(tensor.shape), tuple(target[name].shape)))
        else:
            selected[name] = tensor
    report.loaded = sorted(selected)
    report.missing = [k for k in target if k not in selected and not _is_mismatched(k, report)]
    module.load_state_dict(selected, strict=False)
    return report


def _is_mismatched(name: str, report: LoadReport) -> bool:
    return any(name == n for n, _, _ in report.shape_mismatch)


def load_pretrained_file(module: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Partially load ``path`` into ``module`` (see :func:`load_matching_state_dict`) and log the report."""
    state_dict = read_state_dict(path)
    adapt = getattr(module, "adapt_pretrained", None)
    if callable(adapt):  # e.g. a timm net fitting the first conv of an RGB file to its input channels
        state_dict = adapt(state_dict)
    report = load_matching_state_dict(module, state_dict, source=str(path))
    if not report.loaded:
        raise UserError(
            f"pretrained_path {str(path)!r}: no tensor name matches the model "
            f"(file has e.g. {report.unexpected[:3]}, model has e.g. {list(module.state_dict())[:3]})."
        )
    log.info("%s", report.summary())
    return report


# ---------------------------------------------------------------------------- torchvision weights enums
def resolve_torchvision_weights(model_name: str, weights: str):
    """The torchvision weights enum member for ``model_name`` named ``weights``.

    Accepts a member name (``IMAGENET1K_V1``, ``DEFAULT``) or a full name (``ResNet18_Weights.IMAGENET1K_V1``).
    """
    from torchvision.models import get_model_weights, get_weight

    if "." in weights:
        try:
            return get_weight(weights)
        except (ValueError, KeyError, AttributeError) as exc:
            raise UserError(f"unknown torchvision weights {weights!r}: {exc}") from exc
    try:
        enum = get_model_weights(model_name)
    except (ValueError, KeyError) as exc:
        raise UserError(f"torchvision has no weights for model {model_name!r}") from exc
    try:
        return enum[weights]
    except KeyError:
        names = [m.name for m in enum] + ["DEFAULT"]
        raise UserError(
            f"model {model_name!r} has no weights {weights!r}; torchvision offers {names} (or null for none)"
        ) from None


def weights_cache_path(weights) -> Path:
    """Where torch.hub keeps the downloaded file of a weights enum member."""
    name = os.path.basename(str(weights.url).split("?")[0])
    return Path(torch.hub.get_dir()) / "checkpoints" / name


# Seconds a silent connection may block the weights download (offline behind a firewall that drops packets,
# urllib would otherwise wait for the operating system's TCP timeout, minutes).
DOWNLOAD_TIMEOUT_S = 30.0


def torchvision_state_dict(weights) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights member: from the torch hub cache, else downloaded.

    When the file is neither cached nor downloadable (offline), this stops with a UserError giving the ways
    out: train from scratch (``model.net.weights=null``), load a local copy (``model.pretrained_path=FILE``),
    or put the file into the torch hub cache.
    """
    cached = weights_cache_path(weights)
    previous_timeout = socket.getdefaulttimeout()
    if not cached.is_file():
        log.info("Downloading %s to %s", weights.url, cached)
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        # weights_only: the cached file is data, never code to run (torch.hub defaults to full unpickling)
        return weights.get_state_dict(progress=False, check_hash=False, weights_only=True, map_location="cpu")
    except Exception as exc:  # URLError, socket errors, hash or unpickling errors
        reason = (str(exc).strip().splitlines() or [""])[0]
        if cached.is_file():
            hint = (
                f"The cached file {cached} could not be loaded as plain tensors (it is damaged, or holds "
                "objects that would run code when unpickled); delete it and download it again."
            )
        else:
            hint = (
                "They are not in the torch hub cache and could not be downloaded. Either train from scratch "
                "with model.net.weights=null, or load a local copy with model.pretrained_path=FILE (FILE: "
                f"{weights.url} downloaded on another machine; it replaces the download), or copy that file "
                f"to {cached} (or set TORCH_HOME to a folder whose hub/checkpoints holds it)."
            )
        raise UserError(
            f"pretrained weights {weights} are not available ({type(exc).__name__}: {reason}). {hint}"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)
