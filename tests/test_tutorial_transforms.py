"""Every transform of the tutorials' list builds from a config item and runs on a uint8 image."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torchvision import tv_tensors

from lit_vision.data.transforms import build_transforms

# (config item, expected output shape for a 3 x 40 x 48 uint8 input)
TUTORIAL_LIST = [
    ({"RandomCrop": {"size": 32, "padding": 4}}, (3, 32, 32)),
    ({"RandomCrop": {"size": [32, 32], "padding": 4, "padding_mode": "reflect"}}, (3, 32, 32)),
    ({"RandomResizedCrop": {"size": 24, "scale": [0.08, 1.0], "ratio": [0.75, 1.333]}}, (3, 24, 24)),
    ({"CenterCrop": {"size": 24}}, (3, 24, 24)),
    ({"FiveCrop": {"size": 24}}, (5, 3, 24, 24)),
    ({"TenCrop": {"size": 24, "vertical_flip": False}}, (10, 3, 24, 24)),
    ({"RandomHorizontalFlip": {"p": 0.5}}, (3, 40, 48)),
    ({"RandomVerticalFlip": {"p": 0.5}}, (3, 40, 48)),
    ({"RandomRotation": {"degrees": 45}}, (3, 40, 48)),
    ({"RandomRotation": {"degrees": [-10, 10], "expand": True}}, None),
    ({"ColorJitter": {"brightness": 0.2, "contrast": 0.1, "saturation": 0.1, "hue": 0.1}}, (3, 40, 48)),
    ({"Grayscale": {"num_output_channels": 1}}, (1, 40, 48)),
    ({"RandomGrayscale": {"p": 0.025}}, (3, 40, 48)),
    (
        {"RandomAffine": {"degrees": 10, "translate": [0.1, 0.1], "scale": [0.9, 1.1], "shear": 5}},
        (3, 40, 48),
    ),
    ({"Pad": {"padding": 4, "fill": 0, "padding_mode": "constant"}}, (3, 48, 56)),
    ({"Resize": {"size": 20, "antialias": True}}, (3, 20, 24)),
    ({"Resize": {"size": [16, 16]}}, (3, 16, 16)),
    ({"RandomApply": {"transforms": [{"ColorJitter": {"brightness": 0.5}}], "p": 0.5}}, (3, 40, 48)),
    (
        {
            "RandomChoice": {
                "transforms": [{"RandomHorizontalFlip": {"p": 1.0}}, {"RandomVerticalFlip": {"p": 1.0}}]
            }
        },
        (3, 40, 48),
    ),
    (
        {"RandomOrder": {"transforms": [{"Pad": {"padding": 2}}, {"RandomRotation": {"degrees": 5}}]}},
        (3, 44, 52),
    ),
    ({"RandomPerspective": {"distortion_scale": 0.2, "p": 0.5}}, (3, 40, 48)),
    ({"RandomErasing": {"p": 1.0}}, (3, 40, 48)),
    ({"GaussianBlur": {"kernel_size": 3}}, (3, 40, 48)),
]


def stacked(out):
    return torch.stack(list(out)) if isinstance(out, (tuple, list)) else out


@pytest.mark.parametrize(
    ("item", "shape"), TUTORIAL_LIST, ids=lambda v: next(iter(v)) if isinstance(v, dict) else ""
)
def test_tutorial_transform_from_config(item, shape):
    torch.manual_seed(0)
    pipeline = build_transforms(OmegaConf.create([item]))  # as Hydra hands it over (ListConfig)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8))
    out = stacked(pipeline(image))
    assert out.dtype == torch.uint8
    if shape is not None:
        assert tuple(out.shape) == shape
    else:
        assert out.shape[0] == 3 and out.shape[-1] >= 48


def test_normalize_and_linear_transformation_on_float_images():
    pipeline = build_transforms(
        [
            "ToImage",
            {"_target_": "torchvision.transforms.v2.ToDtype", "dtype": torch.float32, "scale": True},
            {"Normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
        ]
    )
    image = tv_tensors.Image(torch.full((3, 4, 4), 255, dtype=torch.uint8))
    assert torch.allclose(pipeline(image), torch.full((3, 4, 4), 2.0))
    linear = build_transforms(
        [{"LinearTransformation": {"transformation_matrix": torch.eye(12), "mean_vector": torch.zeros(12)}}]
    )
    x = tv_tensors.Image(torch.rand(3, 2, 2))
    assert torch.allclose(linear(x), x)


def test_the_flowers_recipe_end_to_end_on_a_photo_sized_image():
    train = build_transforms(
        [
            {"RandomRotation": {"degrees": 45}},
            {"CenterCrop": {"size": 224}},
            {"RandomHorizontalFlip": {"p": 0.5}},
            {"RandomVerticalFlip": {"p": 0.5}},
            {"ColorJitter": {"brightness": 0.2, "contrast": 0.1, "saturation": 0.1, "hue": 0.1}},
            {"RandomGrayscale": {"p": 0.025}},
        ]
    )
    evaluate = build_transforms([{"Resize": {"size": 256}}, {"CenterCrop": {"size": 224}}])
    photo = tv_tensors.Image(torch.randint(0, 256, (3, 375, 500), dtype=torch.uint8))
    assert train(photo).shape == (3, 224, 224) and evaluate(photo).shape == (3, 224, 224)
