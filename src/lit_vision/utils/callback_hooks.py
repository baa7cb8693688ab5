"""Keeping callbacks that do nothing per batch out of Lightning's per-batch hook dispatch.

Lightning calls every per-batch hook of every callback (``on_train_batch_start``, ``on_before_backward``,
``on_before_optimizer_step``...), about a dozen calls per training step for each callback, each inside a
profiler context whose name is formatted with the callback's ``state_key`` (for ``ModelCheckpoint`` a
repr of its settings). With the 17 default callbacks that is some 100 calls per step that do nothing:
0.03-0.05 ms of CPU per hook, about 0.2-0.3 ms per training step, 2 % of the tutorial CNN's step at batch
64 (docs/benchmarks.md, per-step cost). Lightning skips a hook that is not callable, so a callback
whose class inherits a per-batch hook unchanged from ``Callback`` gets ``None`` in its place on the
instance. Hooks a callback overrides, and every per-epoch or per-run hook, are untouched.
"""

from __future__ import annotations

from collections.abc import Iterable

from lightning.pytorch.callbacks import Callback

# The hooks Lightning calls once (or more) per batch; the others run a few times per epoch at most.
PER_BATCH_HOOKS: tuple[str, ...] = (
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_before_zero_grad",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_test_batch_start",
    "on_test_batch_end",
    "on_predict_batch_start",
    "on_predict_batch_end",
)


def inherits_noop(callback: Callback, hook: str) -> bool:
    """Whether ``callback``'s class takes ``hook`` unchanged from Lightning's ``Callback`` (a no-op)."""
    return getattr(type(callback), hook, None) is getattr(Callback, hook)


def skip_noop_batch_hooks(callbacks: Iterable[Callback]) -> int:
    """Set each per-batch hook a callback only inherits to ``None`` on that callback; the number set.

    Idempotent; an instance attribute already there (set by hand or by an earlier call) is left as it is.
    """
    skipped = 0
    for callback in callbacks:
        for hook in PER_BATCH_HOOKS:
            if hook not in vars(callback) and inherits_noop(callback, hook):
                setattr(callback, hook, None)
                skipped += 1
    return skipped
