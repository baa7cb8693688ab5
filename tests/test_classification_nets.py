"""Classification nets: shapes, penultimate features, named heads, init schemes, partial and pretrained loading."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import nn

from lit_vision.errors import UserError
from lit_vision.nets.cnn import SimpleCNN
from lit_vision.nets.heads import head_module_names
from lit_vision.nets.init import SCHEMES, init_weights
from lit_vision.nets.lenet import LeNet
from lit_vision.nets.mlp import MLP
from lit_vision.nets.mnist_net import MnistNet
from lit_vision.nets.resnet import ResNet
from lit_vision.nets.torchvision_classifier import TorchvisionClassifier
from lit_vision.nets.weights import load_matching_state_dict, load_pretrained_file, weights_cache_path
from lit_vision.tasks.classification import ClassificationTask

NETS = {
    "mlp": (lambda: MLP(num_classes=10), (1, 28, 28), "head", 256),
    "cnn": (lambda: SimpleCNN(), (1, 28, 28), "classifier", 32 * 7 * 7),
    "lenet": (lambda: LeNet(), (1, 28, 28), "fc3", 84),
    "mnist_net": (lambda: MnistNet(), (1, 28, 28), "fc2", 128),
    "resnet18_cifar": (lambda: ResNet(18, num_classes=10, cifar_stem=True), (3, 32, 32), "fc", 512),
    "resnet50_grey": (lambda: ResNet(50, num_classes=10, in_channels=1), (1, 64, 64), "fc", 2048),
    "tv_mobilenet": (lambda: TorchvisionClassifier("mobilenet_v3_small", 10), (3, 64, 64), "head", 1024),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_net_shapes_features_and_head(name):
    build, shape, head, features = NETS[name]
    net = build().eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert net(x).shape == (2, 10)
        assert net.forward_features(x).shape == (2, features)
    assert head_module_names(net)[0] == head
    assert net.get_submodule(head)(torch.randn(2, features)).shape == (2, 10)


def test_mnist_net_outputs_log_probabilities():
    out = MnistNet().eval()(torch.randn(3, 1, 28, 28))
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize(("name", "size", "aux"), [("googlenet", 64, 2), ("squeezenet1_1", 64, 0)])
def test_torchvision_heads_replaced_including_auxiliary(name, size, aux):
    net = TorchvisionClassifier(name, num_classes=7, model_kwargs={"init_weights": False} if aux else None)
    assert len(head_module_names(net)) == 1 + aux
    out = net.train()(torch.randn(2, 3, size, size))
    outputs = out if isinstance(out, tuple) else (out,)
    assert len(outputs) == 1 + aux and all(o.shape == (2, 7) for o in outputs)
    assert net.eval()(torch.randn(2, 3, size, size)).shape == (2, 7)


def test_auxiliary_loss_is_weighted():
    task = ClassificationTask(net={"_target_": "lit_vision.nets.mlp.MLP", "image_size": 4}, num_classes=3)
    main, aux = torch.randn(4, 3), torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 0])
    ce = nn.functional.cross_entropy
    loss, logits = task.compute_loss((main, aux), labels)
    assert logits is main
    assert loss.item() == pytest.approx((ce(main, labels) + 0.4 * ce(aux, labels)).item(), rel=1e-6)


def test_multi_crop_batches_average_the_crops():
    task = ClassificationTask(
        net={"_target_": "lit_vision.nets.mlp.MLP", "image_size": 4}, num_classes=3
    ).eval()
    crops = torch.randn(2, 5, 1, 4, 4)
    expected = torch.stack([task(crops[i]).mean(dim=0) for i in range(2)])
    assert torch.allclose(task.predict_logits(crops), expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------ init
def layer_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: m.weight.detach().clone() for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    }


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_init_scheme_rewrites_conv_and_linear_weights(scheme):
    torch.manual_seed(0)
    net = LeNet()
    before = layer_weights(net)
    touched = init_weights(net, {"scheme": scheme, "bias": 0.0})
    assert touched == list(before)
    after = layer_weights(net)
    for name in before:
        assert not torch.equal(before[name], after[name]) or scheme == "constant"
        assert torch.count_nonzero(net.get_submodule(name).bias) == 0


def test_init_distributions_and_options():
    torch.manual_seed(0)
    net = MLP(num_classes=10, hidden=[512], in_features=1024)
    init_weights(net, {"scheme": "kaiming_normal", "exclude": ["head"]})
    assert net.layers[1].weight.std().item() == pytest.approx((2 / 1024) ** 0.5, rel=0.05)
    head_before = net.head.weight.clone()
    init_weights(net, {"scheme": "orthogonal", "modules": ["layers"]})
    w = net.layers[1].weight
    assert torch.allclose(w @ w.T, torch.eye(512), atol=1e-4)
    assert torch.equal(net.head.weight, head_before)  # outside `modules`
    init_weights(net, {"scheme": "constant", "val": 0.3, "bias": None, "modules": ["head"]})
    assert torch.all(net.head.weight == 0.3)
    init_weights(net, {"scheme": "xavier_uniform", "gain": "relu"})
    bound = (2**0.5) * (6 / (1024 + 512)) ** 0.5
    assert net.layers[1].weight.abs().max().item() <= bound + 1e-6
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_weights(net, "glorot")


def test_init_from_the_model_config():
    net_cfg = {"_target_": "lit_vision.nets.cnn.SimpleCNN", "in_channels": 1, "image_size": 8}
    task = ClassificationTask(net=net_cfg, num_classes=10, init={"scheme": "constant", "val": 0.01})
    assert torch.all(task.net.classifier.weight == 0.01)


# ------------------------------------------------------------------------------------------------ loading
def test_partial_loading_copies_matching_tensors_and_reports_the_rest(tmp_path):
    torch.manual_seed(0)
    source = ResNet(18, num_classes=1000)  # an ImageNet-shaped ResNet-18 (torchvision's names)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    target = ResNet(18, num_classes=10, cifar_stem=True)
    report = load_pretrained_file(target, path)
    skipped = {name for name, _, _ in report.shape_mismatch}
    assert skipped == {"conv1.weight", "fc.weight", "fc.bias"}
    assert len(report.loaded) == len(source.state_dict()) - 3 and not report.unexpected
    assert torch.equal(target.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert not torch.equal(target.fc.bias, source.fc.bias[:10])
    assert "conv1.weight (64, 3, 7, 7) vs model (64, 3, 3, 3)" in report.summary()


def test_partial_loading_strips_and_adds_wrapper_prefixes(tmp_path):
    torch.manual_seed(0)
    trained = ClassificationTask(net={"_target_": "lit_vision.nets.lenet.LeNet"}, num_classes=10)
    path = tmp_path / "run.ckpt"
    torch.save({"epoch": 3, "state_dict": trained.state_dict()}, path)  # Lightning-style: keys start "net."
    task = ClassificationTask(
        net={"_target_": "lit_vision.nets.lenet.LeNet", "num_classes": 5},
        num_classes=5,
        pretrained_path=str(path),
    )
    assert torch.equal(task.net.conv2.weight, trained.net.conv2.weight)
    assert {n for n, _, _ in task.pretrained_report["shape_mismatch"]} == {"fc3.weight", "fc3.bias"}
    assert "'net.'" in task.pretrained_report["key_mapping"]
    # a torchvision-style file (no prefix) into TorchvisionClassifier (names under backbone.)
    tv = TorchvisionClassifier("resnet18", num_classes=3)
    report = load_matching_state_dict(tv, ResNet(18, num_classes=1000).state_dict())
    assert len(report.loaded) == len(tv.state_dict()) - 2 and report.missing == ["head.weight", "head.bias"]


def test_pretrained_path_errors_are_clear(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_pretrained_file(LeNet(), tmp_path / "missing.pth")
    torch.save({"x": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="no tensor name matches"):
        load_pretrained_file(LeNet(), tmp_path / "other.pth")


def test_torchvision_weights_offline_fail_clearly_and_load_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    with pytest.raises(UserError) as info:
        TorchvisionClassifier("resnet18", num_classes=4, weights="IMAGENET1K_V1")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "torch") in message
    with pytest.raises(UserError, match="no weights 'IMAGENET9K'"):
        TorchvisionClassifier("resnet18", num_classes=4, weights="IMAGENET9K")

    import torchvision

    member = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = weights_cache_path(member)
    cached.parent.mkdir(parents=True, exist_ok=True)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), cached)
    net = TorchvisionClassifier("resnet18", num_classes=4, weights="IMAGENET1K_V1")
    assert torch.equal(net.backbone.layer2[0].conv1.weight, reference.layer2[0].conv1.weight)
    with pytest.raises(ValueError, match="overwrite the pretrained weights"):
        ClassificationTask(
            net={
                "_target_": "lit_vision.nets.torchvision_classifier.TorchvisionClassifier",
                "weights": "DEFAULT",
            },
            num_classes=10,
            init="kaiming_normal",
        )

    # A checkpoint rebuilds the model without the weight file (offline or deleted).
    task = ClassificationTask(
        net={
            "_target_": "lit_vision.nets.torchvision_classifier.TorchvisionClassifier",
            "name": "resnet18",
            "num_classes": 4,
            "weights": "IMAGENET1K_V1",
        },
        num_classes=4,
    )
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    cached.unlink()
    restored = ClassificationTask.load_from_checkpoint(tmp_path / "model.ckpt")
    assert torch.equal(restored.net.head.weight, task.net.head.weight)
