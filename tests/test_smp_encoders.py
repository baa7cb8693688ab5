"""smp encoders by name, offline (``encoder_weights=null``), and a local weights file loaded into the encoder
(``model.net.encoder_path``): names and shapes checked, clear errors, not read again from a checkpoint."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import load_task_from_checkpoint
from lit_vision.nets.smp import smp_model
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra


def unet(encoder_name="resnet18", **kwargs):
    return smp_model("Unet", encoder_name=encoder_name, encoder_weights=None, out_channels=1, **kwargs)


def assert_encoders_equal(a, b):
    sa, sb = a.encoder.state_dict(), b.encoder.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


@pytest.mark.parametrize(
    ("name", "close"),
    [("resnet-34", "resnet34"), ("efficientnet_b0", "efficientnet-b0"), ("tu-resnet-18", "tu-resnet18")],
)
def test_unknown_encoder_lists_close_names(name, close):
    with pytest.raises(UserError) as info:
        unet(name)
    message = str(info.value)
    assert f"model.net.encoder_name={name!r}" in message and close in message


def test_unknown_architecture_is_a_user_error():
    with pytest.raises(UserError, match=r"model\.net\.arch='Unetx'.*Architectures: Unet"):
        smp_model("Unetx", encoder_name="resnet18")


@pytest.mark.parametrize("layout", ["encoder.safetensors", "whole_model.pth", "lit_checkpoint.pth"])
def test_encoder_file_is_loaded(tmp_path, layout):
    source = unet()
    if layout.startswith("encoder"):
        # the encoder's own names plus an ImageNet classifier it does not have (skipped)
        weights = {
            **source.encoder.state_dict(),
            "fc.weight": torch.zeros(1000, 512),
            "fc.bias": torch.zeros(1000),
        }
    elif layout.startswith("whole"):
        weights = source.state_dict()  # encoder.*, decoder.*, segmentation_head.*
    else:
        weights = {"state_dict": {f"net.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / layout
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in weights.items()}, str(path))
    else:
        torch.save(weights, path)
    loaded = unet(encoder_path=str(path))
    assert_encoders_equal(loaded, source)
    fresh = unet()
    assert any(
        not torch.equal(a, b)
        for a, b in zip(fresh.encoder.parameters(), source.encoder.parameters(), strict=True)
    )


def test_timm_file_loads_into_a_tu_encoder(tmp_path):
    import timm

    source = timm.create_model("test_resnet", pretrained=False)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    net = unet("tu-test_resnet", encoder_path=str(path))
    encoder = net.encoder.state_dict()
    for name, value in source.state_dict().items():
        if f"model.{name}" in encoder:
            assert torch.equal(encoder[f"model.{name}"], value), name
    assert sum(1 for n in source.state_dict() if f"model.{n}" in encoder) == len(encoder)


def test_rgb_encoder_file_is_adapted_to_one_channel(tmp_path):
    source = unet()
    path = tmp_path / "encoder.pth"
    torch.save(source.encoder.state_dict(), path)
    grey = unet(encoder_path=str(path), in_channels=1)
    torch.testing.assert_close(
        grey.encoder.conv1.weight, source.encoder.conv1.weight.sum(dim=1, keepdim=True)
    )
    assert torch.equal(grey.encoder.layer1[0].conv1.weight, source.encoder.layer1[0].conv1.weight)


def test_encoder_file_errors_are_clear(tmp_path):
    torch.save(unet("resnet18").encoder.state_dict(), tmp_path / "resnet18.pth")
    other = tmp_path / "resnet34.pth"
    torch.save(unet("resnet34").encoder.state_dict(), other)
    # resnet18's tensors are all in resnet34's file, but so are layers resnet18 does not have
    with pytest.raises(
        UserError, match=r"does not fit encoder 'resnet18'.*have no place in it.*encoder_name"
    ):
        unet(encoder_path=str(other))
    with pytest.raises(UserError, match=r"does not fit encoder 'resnet34': 96 of its 216 tensors are not"):
        unet("resnet34", encoder_path=str(tmp_path / "resnet18.pth"))
    unrelated = tmp_path / "unrelated.safetensors"
    save_file({"x": torch.zeros(3)}, str(unrelated))
    with pytest.raises(UserError, match="no tensor name matches encoder 'resnet18'"):
        unet(encoder_path=str(unrelated))
    with pytest.raises(UserError, match=r"model.net.encoder_path=.*missing.pth' does not exist"):
        unet(encoder_path=str(tmp_path / "missing.pth"))
    with pytest.raises(UserError, match="set encoder_weights=null"):
        smp_model(encoder_name="resnet18", encoder_weights="imagenet", encoder_path=str(other))


def test_fit_with_an_encoder_file_and_rebuild_without_it(tmp_path):
    path = tmp_path / "encoder.safetensors"
    source = unet()
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, str(path))
    cfg = compose_cfg(
        [
            "model=smp",
            "model.net.encoder_name=resnet18",
            f"model.net.encoder_path={path}",
            "data=cats",
            f"data.root={tmp_path / 'data' / 'cats'}",
            f"data.default_root={tmp_path / 'data' / 'cats'}",
            "data.image_size=32",
            "logger=none",
            "callbacks=[model_checkpoint]",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1",
        ],
        output_dir=tmp_path / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    assert metrics["status"] == "completed" and 0.0 <= metrics["test/iou"] <= 1.0
    path.unlink()  # the checkpoint holds the trained weights: the file is not needed any more
    task = load_task_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", None)
    assert task.hparams.net["encoder_path"] == str(path)
    assert task.eval().net(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)
