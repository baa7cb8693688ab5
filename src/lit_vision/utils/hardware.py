"""Speed defaults chosen from the hardware: mixed precision and memory layout.

- ``trainer.precision`` defaults to ``${auto_precision:${trainer.accelerator}}``: ``bf16-mixed`` where the
  device computes bf16 natively (a CUDA GPU with bf16 support; a CPU with AVX-512 BF16 or AMX), else
  ``32-true``. Elsewhere bf16 is emulated and many times slower than float32 (measured on an AVX2-only
  CPU: 7-25x for convolution nets; see the ``precision`` benchmark). Any explicit value overrides it.
  ``LIT_VISION_AUTO_PRECISION=bf16-mixed`` or ``=32-true`` forces what ``auto`` resolves to on any machine
  (the test suite runs its precision-sensitive tests under both); unset or ``detect``: the hardware decides.
- ``model.channels_last: auto`` stores convolution nets in NHWC where that layout is the fast one: on CPUs
  (oneDNN's convolution and pooling kernels are NHWC-native) and on GPUs under 16/bf16 precision (tensor
  cores); not for nets without 2-D convolutions, and not for float32 on a GPU.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import nn

from lit_vision.errors import UserError

AUTO = "auto"
# Environment variable that forces what ``auto`` precision resolves to, and the values it takes.
AUTO_PRECISION_ENV = "LIT_VISION_AUTO_PRECISION"
AUTO_PRECISION_CHOICES = ("bf16-mixed", "32-true")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX tiles), as torch reports it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        probe = getattr(torch.cpu, name, None)
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:  # an unsupported query on this build
            continue
    return False


def cuda_has_native_bf16() -> bool:
    """Whether the current CUDA device supports bf16 natively (Ampere or newer)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def accelerator_kind(accelerator: Any) -> str:
    """``cuda``, ``cpu`` or ``other`` for a Trainer ``accelerator`` value (``auto`` picks CUDA when present)."""
    name = str(getattr(accelerator, "name", accelerator) or AUTO).lower()
    if name in ("gpu", "cuda") or (name == AUTO and torch.cuda.is_available()):
        return "cuda"
    if name in ("cpu", AUTO):
        return "cpu"
    return "other"


def forced_auto_precision() -> str | None:
    """The precision ``LIT_VISION_AUTO_PRECISION`` forces ``auto`` to, or None (unset / ``detect``)."""
    value = os.environ.get(AUTO_PRECISION_ENV, "").strip().lower()
    if value in ("", "detect"):
        return None
    if value not in AUTO_PRECISION_CHOICES:
        raise UserError(
            f"{AUTO_PRECISION_ENV}={value!r} is not one of {', '.join(AUTO_PRECISION_CHOICES)} (or detect): it "
            "forces what the default trainer.precision resolves to; unset it to let the hardware decide, or "
            "set trainer.precision=... for one run."
        )
    return value


def auto_precision(accelerator: Any = AUTO) -> str:
    """The precision ``trainer.precision`` resolves to by default for ``accelerator``
    (``LIT_VISION_AUTO_PRECISION`` overrides the hardware's choice)."""
    forced = forced_auto_precision()
    if forced is not None:
        return forced
    kind = accelerator_kind(accelerator)
    if kind == "cuda" and cuda_has_native_bf16():
        return "bf16-mixed"
    if kind == "cpu" and cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


def has_conv2d(net: nn.Module) -> bool:
    """Whether ``net`` contains a 2-D convolution (the layers the NHWC layout speeds up)."""
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def wants_channels_last(
    setting: bool | str | None, net: nn.Module, device: torch.device, precision: Any
) -> bool:
    """Resolve ``model.channels_last`` (true / false / ``auto``) for ``net`` trained on ``device``."""
    if isinstance(setting, str) and setting.lower() != AUTO:
        raise ValueError(f"channels_last must be true, false or 'auto', got {setting!r}")
    if not isinstance(setting, str):
        return bool(setting)
    if not has_conv2d(net):
        return False
    if device.type == "cpu":
        return True
    half = any(tag in str(precision) for tag in ("16", "bf16"))
    return device.type == "cuda" and half


def usable_cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else all of them)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _requested_count(devices: Any) -> tuple[int | None, list[int]]:
    """``(count, explicit indices)`` asked for by a Trainer ``devices`` value; count None for ``auto``/-1."""
    if isinstance(devices, str):
        text = devices.strip()
        if text.lower() in ("auto", "-1", ""):
            return None, []
        if "," in text:
            indices = [int(part) for part in text.split(",") if part.strip()]
            return len(indices), indices
        devices = int(text)
    if isinstance(devices, (list, tuple)) or hasattr(devices, "__iter__"):
        indices = [int(d) for d in devices]
        return len(indices), indices
    count = int(devices)
    return (None, []) if count == -1 else (count, [])


def check_devices(accelerator: Any, devices: Any) -> None:
    """Raise :class:`UserError` when ``trainer.devices`` asks for more than this machine has: CPU cores for a
    CPU run (each device is a process), visible CUDA GPUs for a GPU run. Checked before any process starts."""
    try:
        count, indices = _requested_count(devices)
    except (TypeError, ValueError):
        raise UserError(
            f"trainer.devices={devices!r} is not a device count: use a number (trainer.devices=2), a list of "
            "GPU indices (trainer.devices=[0,1]), -1 (all) or auto."
        ) from None
    if count is None:
        return
    if count < 1:
        raise UserError(f"trainer.devices={devices!r}: at least one device is needed (or -1 / auto for all).")
    kind = accelerator_kind(accelerator)
    if kind == "cpu":
        have = usable_cpu_count()
        if count > have:
            raise UserError(
                f"trainer.devices={devices!r} asks for {count} CPU processes, but this machine has {have} CPU "
                f"core(s) this process may use: set trainer.devices to at most {have} (each device is one "
                "training process)."
            )
    elif kind == "cuda":
        have = torch.cuda.device_count()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        if have == 0:
            raise UserError(
                f"trainer.accelerator={accelerator!r} with trainer.devices={devices!r} asks for GPUs, but no "
                f"CUDA GPU is visible{where}: use trainer=cpu, or run on a machine with a GPU."
            )
        beyond = [i for i in indices if not 0 <= i < have]
        if count > have or beyond:
            asked = f"GPU indices {indices}" if indices else f"{count} GPUs"
            raise UserError(
                f"trainer.devices={devices!r} asks for {asked}, but {have} CUDA GPU(s) are visible{where}: "
                f"set trainer.devices to at most {have} (or indices 0..{have - 1})."
            )


# Lightning sets this at import so that `torch.cuda.is_available()` asks NVML instead of initialising CUDA
# (which would poison forked DataLoader workers).
NVML_CHECK_ENV = "PYTORCH_NVML_BASED_CUDA_CHECK"
NVML_LIBRARY = "libnvidia-ml.so.1"


def nvml_library_present() -> bool:
    """Whether NVML's shared library can be loaded (a machine with an NVIDIA driver)."""
    import ctypes  # only here: nothing else in lit_vision talks to native libraries

    try:
        ctypes.CDLL(NVML_LIBRARY)
    except OSError:
        return False
    return True


def drop_failing_nvml_check() -> bool:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` where NVML cannot be loaded; True when it was unset.

    Every optimizer step asks ``torch.accelerator.current_accelerator(check_available=True)``. With the
    variable set (Lightning sets it at import) and no NVML library, each ask tries to ``dlopen`` NVML, fails,
    and falls back to the CUDA runtime's device count anyway: on the 2-core AMD EPYC with a CUDA build of
    torch, 0.035 ms of CPU and 0.13-0.27 ms of wall time per step (more while the disk is busy). Without
    NVML the answer is the same either way, so the variable only costs time there; where NVML loads, it is
    left alone.
    """
    if os.environ.get(NVML_CHECK_ENV) != "1" or not torch.backends.cuda.is_built():
        return False
    if nvml_library_present():
        return False
    del os.environ[NVML_CHECK_ENV]
    return True
