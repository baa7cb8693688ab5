"""timm backbones (``model=timm``): built offline by name, unknown names answered with close matches,
freeze -> unfreeze and the head lr multiplier on timm's own classifier, local weight files (safetensors or
a torch state dict) loaded into the net, and a tiny fit whose checkpoint rebuilds without the network."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import save_file

from lit_vision.callbacks.finetuning import BackboneFreeze
from lit_vision.data.digits import DigitsDataModule
from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import load_model
from lit_vision.nets.timm_classifier import TimmClassifier
from lit_vision.optim.optimizers import build_optimizer
from lit_vision.runs.run import train
from lit_vision.tasks.classification import ClassificationTask
from tests.helpers import compose_cfg, without_hydra

BASE_LR = 0.05
# timm's test_resnet: a four-stage ResNet of ~50k parameters (BatchNorm included), classifier `fc`
NAME = "test_resnet"


def timm_task(lr_multipliers=None, pretrained_path=None, in_channels=1, num_classes=10) -> ClassificationTask:
    return ClassificationTask(
        net={
            "_target_": "lit_vision.nets.timm_classifier.TimmClassifier",
            "name": NAME,
            "num_classes": num_classes,
            "in_channels": in_channels,
        },
        num_classes=num_classes,
        optimizer={"_target_": "torch.optim.SGD", "lr": BASE_LR, "momentum": 0.9},
        lr_multipliers=lr_multipliers,
        pretrained_path=pretrained_path,
    )


def count(params) -> int:
    return sum(p.numel() for p in params)


class Counts(Callback):
    """Per epoch: trainable parameter count and the parameter count in the optimizer per group."""

    def __init__(self) -> None:
        self.trainable: list[int] = []
        self.groups: list[dict[str, int]] = []
        self.lrs: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.trainable.append(count(p for p in pl_module.parameters() if p.requires_grad))
            groups = trainer.optimizers[0].param_groups
            self.groups.append({g["name"]: count(g["params"]) for g in groups})
            self.lrs.append({g["name"]: g["lr"] for g in groups})


def test_unknown_timm_name_lists_close_matches():
    with pytest.raises(UserError) as info:
        TimmClassifier("resnet-18", num_classes=3)
    message = str(info.value)
    assert "model.net.name='resnet-18'" in message and "resnet18" in message and "timm.list_models" in message


def test_pretrained_tag_is_accepted_and_bad_kwargs_are_user_errors():
    assert TimmClassifier("test_resnet.r160_in1k", num_classes=3).head_name == "backbone.fc"
    with pytest.raises(UserError, match=r"does not accept the arguments.*bogus.*model.net.model_kwargs"):
        TimmClassifier(NAME, num_classes=3, model_kwargs={"bogus": 1})


@pytest.mark.parametrize(
    ("name", "head"),
    [("test_resnet", "backbone.fc"), ("test_convnext", "backbone.head.fc"), ("test_vit", "backbone.head")],
)
def test_head_is_timms_classifier(name, head):
    net = TimmClassifier(
        name, num_classes=3, in_channels=1, model_kwargs={"img_size": 32} if "vit" in name else None
    )
    assert net.head_name == head
    assert net.get_submodule(head).weight.shape[0] == 3
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 3)


def test_freeze_then_unfreeze_parameter_counts_and_head_lr():
    task = timm_task(lr_multipliers={"head": 10})
    net = task.net
    total = count(net.parameters())
    head = count(net.backbone.fc.parameters())
    assert 0 < head < total
    counts = Counts()
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[BackboneFreeze(unfreeze_at_epoch=2, backbone_lr_factor=0.1), counts],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(task, datamodule=DigitsDataModule(batch_size=16))
    # frozen (epochs 0, 1): only timm's classifier trains, at 10x the base lr
    assert counts.trainable[:2] == [head, head]
    assert counts.groups[0] == {"net.backbone.fc": head}
    assert counts.lrs[0] == pytest.approx({"net.backbone.fc": BASE_LR * 10})
    # unfrozen (epoch 2): everything trains, the backbone in its own group at 0.1x
    assert counts.trainable[2] == total
    assert counts.groups[2] == {"net.backbone.fc": head, "backbone": total - head}
    assert counts.lrs[2] == pytest.approx({"net.backbone.fc": BASE_LR * 10, "backbone": BASE_LR * 0.1})


def test_head_lr_multiplier_without_freezing():
    task = timm_task(lr_multipliers={"head": 5})
    optimizer = build_optimizer(task.hparams.optimizer, task, task.hparams.lr_multipliers)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"net.backbone.fc", "base"}
    assert groups["net.backbone.fc"]["lr"] == pytest.approx(BASE_LR * 5)
    assert groups["base"]["lr"] == pytest.approx(BASE_LR)
    assert count(groups["net.backbone.fc"]["params"]) == count(task.net.backbone.fc.parameters())


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weight_file_is_loaded(tmp_path, suffix):
    """A timm-format file (keys without our ``backbone.`` prefix, a 1000-class classifier) loads by name."""
    import timm

    source = timm.create_model(NAME, pretrained=False, num_classes=1000)
    weights = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"model{suffix}"
    save_file(weights, str(path)) if suffix == ".safetensors" else torch.save(weights, path)

    task = timm_task(pretrained_path=str(path), in_channels=3)
    loaded = task.net.backbone.state_dict()
    for key, value in weights.items():
        if not key.startswith("fc."):  # the file's 1000-class classifier does not fit 10 classes
            assert torch.equal(loaded[key], value), key
    report = task.pretrained_report
    assert sorted(n for n, _, _ in report["shape_mismatch"]) == ["backbone.fc.bias", "backbone.fc.weight"]
    assert len(report["loaded"]) == len(weights) - 2


def test_rgb_weight_file_is_adapted_to_one_channel(tmp_path):
    import timm

    source = timm.create_model(NAME, pretrained=False, num_classes=10)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    task = timm_task(pretrained_path=str(path), in_channels=1)
    first = task.net.backbone.pretrained_cfg["first_conv"]
    rgb = source.get_submodule(first).weight
    grey = task.net.backbone.get_submodule(first).weight
    assert grey.shape[1] == 1
    torch.testing.assert_close(grey, rgb.sum(dim=1, keepdim=True))
    assert task.pretrained_report["shape_mismatch"] == []  # the classifier has 10 classes on both sides


def test_bad_weight_files_are_user_errors(tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match=r"model.pretrained_path=.*broken.safetensors.*safetensors"):
        timm_task(pretrained_path=str(broken))
    unrelated = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(3)}, str(unrelated))
    with pytest.raises(UserError, match="no tensor name matches"):
        timm_task(pretrained_path=str(unrelated))


def test_tiny_fit_and_checkpoint_rebuilds(tmp_path):
    cfg = compose_cfg(
        [
            "model=timm",
            f"model.net.name={NAME}",
            "data=digits",
            "logger=none",
            "callbacks=[default,finetune]",
            "callbacks.finetune.unfreeze_at_epoch=1",
            "debug=limit_batches",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=3",
        ],
        output_dir=tmp_path / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    assert 0.0 <= metrics["test/acc"] <= 1.0 and metrics["global_step"] == 6
    model = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert isinstance(model.task.net, TimmClassifier) and model.task.net.name == NAME
    assert model.task.net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


# The table of tested timm backbones in docs/classification.md: each builds offline, names timm's classifier
# as its head, runs forward and backward on a small grey batch, and the fine-tuning callback's backbone is
# exactly everything but that head.
DOCS_TABLE = {
    "resnet18": ("backbone.fc", {}),
    "convnext_atto": ("backbone.head.fc", {}),
    "efficientnet_b0": ("backbone.classifier", {}),
    "mobilenetv3_small_050": ("backbone.classifier", {}),
    "regnetx_002": ("backbone.head.fc", {}),
    "vit_tiny_patch16_224": ("backbone.head", {"img_size": 32}),
    "deit_tiny_distilled_patch16_224": ("backbone.head", {"img_size": 32}),
}


@pytest.mark.parametrize("name", sorted(DOCS_TABLE))
def test_backbones_of_the_docs_table(name):
    head, kwargs = DOCS_TABLE[name]
    task = ClassificationTask(
        net={
            "_target_": "lit_vision.nets.timm_classifier.TimmClassifier",
            "name": name,
            "num_classes": 5,
            "in_channels": 1,
            "model_kwargs": kwargs,
        },
        num_classes=5,
    )
    net = task.net
    assert net.head_name == head
    batch = torch.randn(2, 1, 32, 32)
    logits = net(batch)
    assert logits.shape == (2, 5)
    assert net.forward_features(batch).shape == (2, net.num_features)  # what the embedding projector reads
    logits.sum().backward()
    heads = [head, *net.aux_head_names]
    head_params = count(p for h in heads for p in net.get_submodule(h).parameters())
    frozen = BackboneFreeze().backbone_modules(task)
    assert (
        count(p for m in frozen for p in m.parameters(recurse=False)) == count(net.parameters()) - head_params
    )
