"""Learning-rate schedules torch does not spell directly: LambdaLR from a safe expression, linear warmup
(then constant or into another schedule), and keeping schedulers in step when a param group is added.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiplicativeLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
)

# ----------------------------------------------------------------------------- safe expressions
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "cos": math.cos,
    "sin": math.sin,
    "floor": math.floor,
    "ceil": math.ceil,
}
CONSTANTS = {"pi": math.pi, "e": math.e}
VARIABLES = ("epoch", "step")


@functools.lru_cache(maxsize=64)
def _parse(expression: str) -> ast.Expression:
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"lr expression {expression!r} is not valid: {exc.msg}") from None
    for node in ast.walk(tree):
        _check_node(node, expression)
    return tree


def _check_node(node: ast.AST, expression: str) -> None:
    allowed = (
        ast.Expression,
        ast.BinOp,
        ast.UnaryOp,
        ast.BoolOp,
        ast.Compare,
        ast.IfExp,
        ast.Call,
        ast.Name,
        ast.Constant,
        ast.Load,
        ast.And,
        ast.Or,
        *_BINARY,
        *_UNARY,
        *_COMPARE,
    )
    if not isinstance(node, allowed):
        raise ValueError(f"lr expression {expression!r} uses {type(node).__name__}, which is not allowed")
    if isinstance(node, ast.Name) and node.id not in (*VARIABLES, *FUNCTIONS, *CONSTANTS):
        names = [*VARIABLES, *CONSTANTS, *FUNCTIONS]
        raise ValueError(f"lr expression {expression!r} uses unknown name {node.id!r}; known: {names}")
    if isinstance(node, ast.Call) and (not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS):
        raise ValueError(f"lr expression {expression!r} calls something other than {sorted(FUNCTIONS)}")
    if isinstance(node, ast.Call) and node.keywords:
        raise ValueError(f"lr expression {expression!r}: function calls take positional arguments only")
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
        raise ValueError(f"lr expression {expression!r} may only contain numbers, not {node.value!r}")


def _evaluate(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, env), _evaluate(node.right, env))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, env))
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, env)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, env)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _evaluate(node.body if _evaluate(node.test, env) else node.orelse, env)
    if isinstance(node, ast.Call):
        return env[node.func.id](*(_evaluate(a, env) for a in node.args))
    raise ValueError(f"unsupported expression node {type(node).__name__}")  # unreachable after _check_node


class LrExpression:
    """A learning-rate factor written as an arithmetic expression of ``epoch`` (alias ``step``).

    Numbers, ``+ - * / // % **``, comparisons, ``and``/``or``/``not``, ``a if cond else b``, the constants
    ``pi``/``e`` and the functions min, max, abs, exp, log, sqrt, cos, sin, floor, ceil are allowed;
    anything else (attributes, other names, strings) is rejected when the config is read. Only the
    expression text is stored, so scheduler state dicts stay plain data.
    """

    def __init__(self, expression: str) -> None:
        self.expression = str(expression)
        _parse(self.expression)

    def __call__(self, epoch: int) -> float:
        env = {**FUNCTIONS, **CONSTANTS, "epoch": epoch, "step": epoch}
        return float(_evaluate(_parse(self.expression), env))

    def __repr__(self) -> str:
        return f"LrExpression({self.expression!r})"


class ExpressionLR(LambdaLR):
    """``LambdaLR`` whose factor is an expression of ``epoch`` (e.g. ``0.95 ** epoch``), for every group."""

    def __init__(self, optimizer: Optimizer, expression: str, last_epoch: int = -1) -> None:
        super().__init__(optimizer, lr_lambda=LrExpression(expression), last_epoch=last_epoch)


# ----------------------------------------------------------------------------- warmup
class LinearWarmupLR(SequentialLR):
    """Ramp the lr linearly from ``start_factor`` x lr to lr over ``warmup_iters`` epochs (or steps, with
    ``interval: step``), then keep it (``after`` null) or hand over to the scheduler configured in ``after``.

    A CosineAnnealingLR in ``after`` whose ``T_max`` is null gets ``total_iters - warmup_iters``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_iters: int,
        start_factor: float = 0.1,
        after: Mapping[str, Any] | None = None,
        total_iters: int | None = None,
    ) -> None:
        warmup_iters = int(warmup_iters)
        if warmup_iters < 1:
            raise ValueError(f"warmup_iters must be >= 1, got {warmup_iters}")
        warmup = LinearLR(
            optimizer, start_factor=float(start_factor), end_factor=1.0, total_iters=warmup_iters
        )
        if after:
            after = (
                OmegaConf.to_container(after, resolve=True) if isinstance(after, DictConfig) else dict(after)
            )
            if str(after.get("_target_", "")).endswith("CosineAnnealingLR") and after.get("T_max") is None:
                if total_iters is None:
                    raise ValueError(
                        "LinearWarmupLR: give `total_iters` or `after.T_max` for CosineAnnealingLR"
                    )
                after["T_max"] = max(1, int(total_iters) - warmup_iters)
            following = instantiate(after, optimizer=optimizer, _convert_="all")
        else:
            following = ConstantLR(optimizer, factor=1.0, total_iters=0)
        super().__init__(optimizer, schedulers=[warmup, following], milestones=[warmup_iters])


# ----------------------------------------------------------------------------- groups added later
def add_group_to_scheduler(scheduler: Any, optimizer: Optimizer, group: dict[str, Any]) -> None:
    """Make ``scheduler`` drive ``group``, a param group appended to ``optimizer`` after it was built.

    torch schedulers size their per-group lists (``base_lrs``, lambdas, ``min_lrs``...) when created; a
    group added later (e.g. an unfrozen backbone) would otherwise be ignored or raise an IndexError.
    ``group["initial_lr"]`` is the lr the schedule treats as the group's starting value.
    """
    group.setdefault("initial_lr", group["lr"])
    if isinstance(scheduler, SequentialLR):
        for child in scheduler._schedulers:
            add_group_to_scheduler(child, optimizer, group)
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
        return
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.min_lrs.append(scheduler.min_lrs[0] if scheduler.min_lrs else 0.0)
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
        return
    if isinstance(scheduler, OneCycleLR):
        first = optimizer.param_groups[0]
        ratio_initial = first["initial_lr"] / first["max_lr"]
        ratio_min = first["min_lr"] / first["max_lr"]
        group["max_lr"] = group["initial_lr"]
        group["initial_lr"] = group["max_lr"] * ratio_initial
        group["min_lr"] = group["max_lr"] * ratio_min
        for key in ("max_momentum", "base_momentum"):
            if key in first:
                group[key] = first[key]
        if "betas" in first and "betas" in group:
            group["betas"] = tuple(first["betas"])
        elif "momentum" in first and "momentum" in group:
            group["momentum"] = first["momentum"]
    if isinstance(scheduler, (LambdaLR, MultiplicativeLR)):
        scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
    if hasattr(scheduler, "max_lrs"):  # CyclicLR
        scheduler.max_lrs.append(scheduler.max_lrs[0] * group["initial_lr"] / scheduler.base_lrs[0])
    if isinstance(scheduler, LRScheduler):
        scheduler.base_lrs.append(group["initial_lr"])
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]


def scheduled_group_count(scheduler: Any) -> int | None:
    """How many param groups ``scheduler`` knows about (None when it keeps no per-group state)."""
    if isinstance(scheduler, SequentialLR):
        return scheduled_group_count(scheduler._schedulers[0])
    if isinstance(scheduler, ReduceLROnPlateau):
        return len(scheduler.min_lrs)
    base_lrs = getattr(scheduler, "base_lrs", None)
    return None if base_lrs is None else len(base_lrs)
