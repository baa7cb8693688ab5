"""Transform pipelines built from config items."""

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from lit_vision.data.transforms import build_transform, build_transforms


def test_short_and_hydra_forms_build_the_same_transform():
    a = build_transform({"RandomCrop": {"size": 4, "padding": 2}})
    b = build_transform({"_target_": "torchvision.transforms.v2.RandomCrop", "size": 4, "padding": 2})
    assert type(a) is type(b) is v2.RandomCrop and a.padding == b.padding


def test_nested_containers_and_joint_mask_transform():
    pipeline = build_transforms(
        [
            {"RandomApply": {"transforms": [{"RandomHorizontalFlip": {"p": 1.0}}], "p": 1.0}},
            {"Resize": {"size": [4, 4], "antialias": True}},
        ]
    )
    image = tv_tensors.Image(torch.arange(64, dtype=torch.uint8).view(1, 8, 8))
    mask = tv_tensors.Mask((torch.arange(64) % 3).view(8, 8).to(torch.uint8))
    out_image, out_mask = pipeline(image, mask)
    assert out_image.shape == (1, 4, 4) and out_mask.shape == (4, 4)
    assert set(out_mask.unique().tolist()) <= {0, 1, 2}  # masks are resampled nearest: no new values


def test_unknown_transform_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown transform 'RandomCrap'"):
        build_transforms(["RandomCrap"])


def test_empty_pipeline_is_none():
    assert build_transforms([]) is None and build_transforms(None) is None
