"""Every optimizer and scheduler config runs; lr multipliers, warmup, lambda expressions, OneCycle, plateau."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from lit_vision.data.digits import DigitsDataModule
from lit_vision.optim.optimizers import build_optimizer, build_scheduler
from lit_vision.optim.schedulers import LinearWarmupLR, LrExpression, add_group_to_scheduler
from lit_vision.tasks import base as tasks_base
from tests.helpers import CONF_DIR, compose_cfg, without_hydra

OPTIMIZERS = sorted(p.stem for p in (CONF_DIR / "optim").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (CONF_DIR / "scheduler").glob("*.yaml"))


def task_from(overrides: list[str], tmp_path):
    cfg = without_hydra(compose_cfg(["model=mlp", *overrides], output_dir=tmp_path))
    return instantiate(cfg.model), cfg


def run_steps(task, scheduler_cfg, steps: int = 3) -> list[float]:
    """Three optimizer steps on random digits-shaped data, stepping the scheduler as Lightning would."""
    optimizer = build_optimizer(task.hparams.optimizer, task, task.hparams.lr_multipliers)
    config = build_scheduler(scheduler_cfg, optimizer, task.hparams.monitor, total_steps=steps)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    before = [p.detach().clone() for p in task.parameters()]
    lrs = []
    for _ in range(steps):
        optimizer.zero_grad()
        task.loss_fn(task(x), y).backward()
        optimizer.step()
        if config is not None:
            sched = config["scheduler"]
            sched.step(0.5) if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) else sched.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert any(not torch.equal(a, b) for a, b in zip(before, task.parameters(), strict=True))
    assert all(math.isfinite(lr) and lr >= 0 for lr in lrs)
    return lrs


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_config_trains(name, tmp_path):
    task, cfg = task_from([f"optim={name}", "data.image_size=8"], tmp_path)
    run_steps(task, None)
    optimizer = build_optimizer(task.hparams.optimizer, task)
    assert type(optimizer).__name__ == OmegaConf.select(cfg, "optim._target_").rsplit(".", 1)[1]
    if name == "sgd_nesterov":
        assert optimizer.defaults["nesterov"] is True


@pytest.mark.parametrize(
    ("target", "fused"),
    [("torch.optim.Adam", None), ("torch.optim.SGD", None), ("torch.optim.RMSprop", None)],
)
def test_fused_auto_keeps_the_default_step_on_cpu_and_accepts_any_class(target, fused):
    net = torch.nn.Linear(4, 2)
    optimizer = build_optimizer({"_target_": target, "lr": 0.1, "fused": "auto"}, net)
    assert optimizer.defaults.get("fused") is fused
    net(torch.randn(3, 4)).sum().backward()
    before = net.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, net.weight)


def test_fused_auto_only_picks_the_fused_step_on_cuda():
    from lit_vision.optim.optimizers import fused_supported

    floats = [{"params": [torch.nn.Parameter(torch.zeros(2))]}]
    assert not fused_supported(torch.optim.Adam, floats)  # CPU: torch's default step measured faster
    assert not fused_supported(torch.optim.RMSprop, floats)  # no fused implementation
    assert not fused_supported(torch.optim.Adam, [])


def test_fused_true_is_passed_through_on_cpu():
    net = torch.nn.Linear(4, 2)
    optimizer = build_optimizer({"_target_": "torch.optim.Adam", "lr": 0.1, "fused": True}, net)
    assert optimizer.defaults["fused"] is True


@pytest.mark.parametrize("name", SCHEDULERS)
def test_every_scheduler_config_steps(name, tmp_path):
    task, cfg = task_from([f"scheduler={name}", "trainer.max_epochs=25"], tmp_path)
    lrs = run_steps(task, task.hparams.scheduler, steps=25)
    changed = any(lr != pytest.approx(cfg.optim.lr) for lr in lrs)
    # auto: the task's own schedule, a constant rate for classification (see the next test)
    assert changed is (name not in ("none", "auto")), lrs


@pytest.mark.parametrize(("model", "expected"), [("unet", "OneCycleLR"), ("cnn", None), ("mlp", None)])
def test_scheduler_auto_is_the_tasks_recommended_schedule(model, expected, tmp_path, monkeypatch):
    data = "data=cats" if model == "unet" else "data=digits"
    cfg = without_hydra(compose_cfg([f"model={model}", data], output_dir=tmp_path))
    assert cfg.scheduler == {"auto": True}  # the default choice
    task = instantiate(cfg.model)
    built = []
    real_build = tasks_base.build_scheduler

    def build_with_steps(config, optimizer, monitor, total_steps=None):
        built.append(config)
        return real_build(config, optimizer, monitor, total_steps=20)  # no trainer here to count steps

    monkeypatch.setattr(tasks_base, "build_scheduler", build_with_steps)
    configured = task.configure_optimizers()
    if expected is None:
        assert isinstance(configured, torch.optim.Optimizer) and built == [None]
    else:
        scheduler = configured["lr_scheduler"]
        assert type(scheduler["scheduler"]).__name__ == expected and scheduler["interval"] == "step"
    # an explicit choice replaces it
    cfg = without_hydra(compose_cfg([f"model={model}", data, "scheduler=none"], output_dir=tmp_path))
    assert isinstance(instantiate(cfg.model).configure_optimizers(), torch.optim.Optimizer)


def test_lr_multipliers_name_the_head_whatever_it_is_called(tmp_path):
    task, cfg = task_from(["model=resnet", "+model.lr_multipliers={head: 10}"], tmp_path)
    optimizer = build_optimizer(task.hparams.optimizer, task, task.hparams.lr_multipliers)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs == pytest.approx({"base": cfg.optim.lr, "net.fc": 10 * cfg.optim.lr})


def test_onecycle_keeps_each_groups_multiple():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    optimizer = build_optimizer({"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9}, model, {"1": 10})
    config = {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "max_lr": None, "pct_start": 0.5}
    sched = build_scheduler(config, optimizer, "val/acc", total_steps=10)
    assert sched["interval"] == "step"
    history = []
    for _ in range(9):
        optimizer.step()
        sched["scheduler"].step()
        history.append([g["lr"] for g in optimizer.param_groups])
    assert [max(h[i] for h in history) for i in (0, 1)] == pytest.approx([0.1, 1.0])
    assert all(b == pytest.approx(10 * a) for a, b in history)


def test_linear_warmup_then_constant_or_cosine():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = LinearWarmupLR(opt, warmup_iters=4, start_factor=0.2)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    opt = torch.optim.SGD([param], lr=1.0)
    after = {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": None, "eta_min": 0.0}
    sched = LinearWarmupLR(opt, warmup_iters=2, start_factor=0.5, after=after, total_iters=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:3] == pytest.approx([0.5, 0.75, 1.0])
    assert lrs[3:] == pytest.approx([0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3)])


def test_lambda_expressions_are_evaluated_safely():
    assert LrExpression("0.95 ** epoch")(3) == pytest.approx(0.95**3)
    assert LrExpression("min(1.0, (epoch + 1) / 5) * 0.5 ** (epoch // 30)")(31) == pytest.approx(0.5)
    assert LrExpression("1 if epoch < 3 else 0.1")(3) == pytest.approx(0.1)
    assert LrExpression("0.5 * (1 + cos(pi * step / 10))")(10) == pytest.approx(0.0, abs=1e-12)
    for bad in ("__import__('os').system('true')", "epoch.real", "lr * 2", "'a' * 3", "[1][0]", "0.9 **"):
        with pytest.raises(ValueError):
            LrExpression(bad)


def test_groups_added_later_are_scheduled():
    for config in (
        {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": 4},
        {"_target_": "lit_vision.optim.schedulers.ExpressionLR", "expression": "0.5 ** epoch"},
        {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "patience": 0, "mode": "max"},
        {
            "_target_": "lit_vision.optim.schedulers.LinearWarmupLR",
            "warmup_iters": 2,
            "_recursive_": False,
            "after": {"_target_": "torch.optim.lr_scheduler.ExponentialLR", "gamma": 0.5},
        },
    ):
        a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([a], lr=1.0)
        sched = build_scheduler(config, opt, "val/acc")["scheduler"]
        opt.step()
        sched.step(0.5) if "Plateau" in config["_target_"] else sched.step()
        opt.add_param_group({"params": [b], "lr": 0.1 * opt.param_groups[0]["lr"], "initial_lr": 0.1})
        add_group_to_scheduler(sched, opt, opt.param_groups[-1])
        for _ in range(3):
            opt.step()
            sched.step(0.5) if "Plateau" in config["_target_"] else sched.step()
        first, added = (g["lr"] for g in opt.param_groups)
        assert added == pytest.approx(0.1 * first), config["_target_"]


@pytest.mark.parametrize("scheduler", ["plateau", "onecycle", "warmup_cosine"])
def test_schedulers_under_lightning(scheduler, tmp_path):
    cfg = without_hydra(
        compose_cfg(
            ["model=mlp", f"scheduler={scheduler}", "trainer.max_epochs=3", "optim=sgd"], output_dir=tmp_path
        )
    )
    if scheduler == "plateau":  # no val/acc gain can exceed 1.0: the lr drops from the second epoch on
        cfg.scheduler.patience = 0
        cfg.scheduler.threshold = 1.0
        with open_dict(cfg):
            cfg.scheduler.threshold_mode = "abs"
    task = instantiate(cfg.model)
    trainer = L.Trainer(
        max_epochs=3,
        limit_train_batches=3,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=DigitsDataModule(batch_size=16))
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert trainer.global_step == 9 and lr != pytest.approx(cfg.optim.lr)
