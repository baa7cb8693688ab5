"""Fine-tuning recipes start from the tutorials' ImageNet weights; offline without them the run stops before
training with the ways out; a local file (``model.pretrained_path``) replaces the download; the torch hub
cache is read as data only."""

from __future__ import annotations

import json
import pathlib
import urllib.error

import pytest
import torch
import torchvision
from hydra.utils import instantiate
from omegaconf import open_dict

from lit_vision.errors import find_user_error
from lit_vision.nets.weights import resolve_torchvision_weights, weights_cache_path
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra
from tests.test_classification_experiments import flowers_files


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty torch hub cache and no network: every download attempt is recorded and fails."""
    attempts: list[str] = []

    def no_network(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return attempts


def resnet18_flowers(tmp_path, *extra: str):
    """flowers_finetune on three generated classes with a ResNet-18 (the recipe's ResNet-152 is slow)."""
    cfg = compose_cfg(
        ["experiment=flowers_finetune", "model.net.name=resnet18", *flowers_files(tmp_path / "data"), *extra],
        output_dir=tmp_path / "run",
    )
    with open_dict(cfg):
        cfg.data.num_classes = 3
    return cfg


@pytest.mark.parametrize("name", ["flowers_finetune", "cifar10_resnet34"])
def test_recipes_default_to_imagenet_weights(name):
    assert compose_cfg([f"experiment={name}"]).model.net.weights == "IMAGENET1K_V1"


def test_offline_without_cache_stops_before_training_with_both_ways_out(tmp_path, offline):
    cfg = compose_cfg(
        ["experiment=flowers_finetune", *flowers_files(tmp_path / "data")], output_dir=tmp_path / "run"
    )
    with pytest.raises(Exception) as caught:
        train(without_hydra(cfg))
    message = str(find_user_error(caught.value))
    assert "model.net.weights=null" in message and "model.pretrained_path=FILE" in message
    assert "resnet152" in message.lower() and offline  # the download was tried, then refused
    assert not (tmp_path / "run" / "checkpoints").exists()  # no training step ran
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_local_file_replaces_the_download(tmp_path, offline):
    source = torchvision.models.resnet18(num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    cfg = resnet18_flowers(tmp_path, f"model.pretrained_path={tmp_path / 'resnet18.pth'}")
    task = instantiate(cfg.model)
    assert offline == []  # nothing was downloaded
    loaded = task.net.backbone.conv1.weight if hasattr(task.net, "backbone") else task.net.conv1.weight
    assert torch.equal(loaded, source.conv1.weight)
    assert "fc.weight" not in task.pretrained_report["loaded"]  # 1000 classes vs 3: skipped


def test_cached_weights_load_without_network(tmp_path, offline):
    member = resolve_torchvision_weights("resnet18", "IMAGENET1K_V1")
    source = torchvision.models.resnet18(num_classes=1000)
    cached = weights_cache_path(member)
    cached.parent.mkdir(parents=True)
    torch.save(source.state_dict(), cached)
    task = instantiate(resnet18_flowers(tmp_path).model)
    assert offline == []
    state = task.net.state_dict()
    conv1 = next(v for k, v in state.items() if k.endswith("conv1.weight") and "layer" not in k)
    assert torch.equal(conv1, source.conv1.weight)


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_cached_file_is_read_as_data_only(tmp_path, offline):
    member = resolve_torchvision_weights("resnet18", "IMAGENET1K_V1")
    cached = weights_cache_path(member)
    cached.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"conv1.weight": _RunsCodeWhenUnpickled(marker)}, cached)
    with pytest.raises(Exception) as caught:
        instantiate(resnet18_flowers(tmp_path).model)
    assert "could not be loaded as plain tensors" in str(find_user_error(caught.value))
    assert not marker.exists()
