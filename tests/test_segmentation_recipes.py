"""Training recipes for segmentation (issue #18 point 7): RandAugment / TrivialAugmentWide / AutoAugment and
RandomErasing in ``data.train_transforms`` move the mask with the image; mixing augmentations are refused;
``callbacks=[default,ema]`` validates, checkpoints and tests the averaged weights of a segmentation task."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torchvision import tv_tensors

from lit_vision.callbacks.weight_averaging import EMA
from lit_vision.data.segmentation.auto_augment import (
    GEOMETRIC_OPS,
    AutoAugment,
    RandAugment,
    TrivialAugmentWide,
    for_masks,
)
from lit_vision.data.segmentation.cats import CatsDataModule
from lit_vision.data.segmentation.labels import IGNORE_INDEX
from lit_vision.data.transforms import build_transforms
from lit_vision.errors import UserError
from lit_vision.inference.checkpoint import load_task_from_checkpoint
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra

CLASSES = [RandAugment, TrivialAugmentWide, AutoAugment]


def half_and_half() -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """A 32x32 image white on the left half, black on the right; its mask 1 on the left, 0 on the right."""
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    image[:, :, :16] = 255
    mask = torch.zeros(32, 32, dtype=torch.uint8)
    mask[:, :16] = 1
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def restricted(cls, ops: set[str]):
    """``cls`` drawing only ``ops`` (AutoAugment: a policy of those ops)."""
    transform = cls()
    if cls is AutoAugment:
        transform._policies = [((op, 1.0, 9), (op, 1.0, 5)) for op in sorted(ops)]
    else:
        transform._AUGMENTATION_SPACE = {k: v for k, v in transform._AUGMENTATION_SPACE.items() if k in ops}
    return transform


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_geometric_ops_move_the_mask_with_the_image(cls):
    torch.manual_seed(0)
    image, mask = half_and_half()
    transform = restricted(cls, set(GEOMETRIC_OPS))
    moved = 0
    for _ in range(40):
        out_image, out_mask = transform(image, mask)
        assert isinstance(out_mask, tv_tensors.Mask) and out_mask.shape == mask.shape
        assert set(out_mask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
        inside = out_mask != IGNORE_INDEX  # pixels moved in from outside: ignored, the image there is fill
        white = out_image[0] > 127
        # nearest resampling of both: each labelled pixel keeps the colour its label says
        assert (white[inside] == (out_mask[inside] == 1)).float().mean() > 0.97
        moved += not torch.equal(out_mask, mask)
    assert moved > 20


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_colour_ops_leave_the_mask_alone(cls):
    torch.manual_seed(0)
    image, mask = half_and_half()
    image = tv_tensors.Image((image.float() * 0.5 + 40).to(torch.uint8))  # mid greys: colour ops change it
    transform = restricted(cls, {"Brightness", "Contrast", "Posterize", "Solarize", "Equalize"})
    changed = 0
    for _ in range(20):
        out_image, out_mask = transform(image, mask)
        assert torch.equal(out_mask, mask)
        changed += not torch.equal(out_image, image)
    assert changed > 5


def test_plain_names_become_mask_aware_and_mixing_is_refused():
    items = [
        {"RandAugment": {"num_ops": 2}},
        "TrivialAugmentWide",
        {"_target_": "torchvision.transforms.v2.AutoAugment"},
        {"RandomApply": {"transforms": [{"RandAugment": {}}], "p": 0.5}},
        {"RandomErasing": {"p": 0.5}},
    ]
    pipeline = build_transforms(for_masks(items))
    kinds = [type(t) for t in pipeline.transforms]
    assert kinds[:3] == [RandAugment, TrivialAugmentWide, AutoAugment]
    assert type(pipeline.transforms[3].transforms[0]) is RandAugment
    image, mask = half_and_half()
    _, out_mask = pipeline(image, mask)
    assert out_mask.shape == (32, 32)
    for name in ("MixUp", "CutMix", "AugMix"):
        with pytest.raises(UserError, match=rf"data.train_transforms: {name} mixes several images"):
            for_masks([{name: {}}])


def test_cats_datamodule_trains_with_randaugment_and_random_erasing(tmp_path):
    """Before the mask-aware classes, torchvision's RandAugment raised TypeError on the (Image, Mask) pair."""
    default = tmp_path / "data" / "cats"
    dm = CatsDataModule(
        root=default,
        default_root=default,
        image_size=32,
        batch_size=4,
        split_seed=0,
        train_transforms=[{"RandAugment": {"num_ops": 2, "magnitude": 12}}, {"RandomErasing": {"p": 1.0}}],
    )
    dm.setup("fit")
    torch.manual_seed(0)
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8
    assert set(masks.unique().tolist()) <= {0, 1, IGNORE_INDEX}


# ------------------------------------------------------------------------------------------------ EMA
class TestedWeights(L.Callback):
    """Remembers the weights the test stage starts with."""

    seen: dict[str, torch.Tensor] = {}

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        TestedWeights.seen = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_ema_for_segmentation_is_validated_checkpointed_and_tested(tmp_path: Path):
    cfg = compose_cfg(
        [
            "model=unet",
            "data=cats",
            f"data.root={tmp_path / 'data' / 'cats'}",
            f"data.default_root={tmp_path / 'data' / 'cats'}",
            "data.image_size=32",
            "model.net.init_features=4",
            "model.net.depth=2",
            "callbacks=[default,ema]",
            "callbacks.ema.decay=0.5",
            f"+callbacks.tested._target_={__name__}.TestedWeights",
            "data.train_transforms=[{RandAugment: {num_ops: 2}}, {RandomHorizontalFlip: {p: 0.5}}]",
            "logger=none",
            "trainer.max_epochs=2",
            "+trainer.limit_train_batches=4",
            "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=2",
            "optim.lr=0.01",
        ],
        output_dir=tmp_path / "run",
    )
    metrics, _ = train(without_hydra(cfg))
    assert metrics["status"] == "completed" and 0.0 <= metrics["test/iou"] <= 1.0
    best = torch.load(metrics["best_model_path"], map_location="cpu", weights_only=True)
    raw, average = best["current_model_state"], best["state_dict"]
    assert any(not torch.equal(raw[k], average[k]) for k in raw if raw[k].is_floating_point())
    assert int(best["averaging_state"]["n_averaged"]) > 0
    for name, value in best["state_dict"].items():
        assert torch.equal(TestedWeights.seen[name], value), name
    rebuilt = load_task_from_checkpoint(metrics["best_model_path"], None)
    for name, value in rebuilt.state_dict().items():
        assert torch.equal(value, best["state_dict"][name]), name


def test_ema_warns_when_the_run_is_too_short_for_its_decay():
    """Without the decay warm-up, the cats recipe (810 steps) with decay 0.999 ends with 44% of the starting
    weights in the average (measured: the averaged UNet then predicts no cat); 0.99 leaves 0.03%. With the
    warm-up (the default) the start is forgotten whatever the decay, and nothing is said."""
    trainer = SimpleNamespace(estimated_stepping_batches=810)
    with pytest.warns(
        UserWarning, match=r"~810 averaging updates .* 44% of the starting weights.*at most 0.9938"
    ):
        EMA(decay=0.999, decay_warmup=False).on_fit_start(trainer, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EMA(decay=0.999).on_fit_start(trainer, None)
        EMA(decay=0.99, decay_warmup=False).on_fit_start(trainer, None)
        EMA(decay=0.999, decay_warmup=False).on_fit_start(
            SimpleNamespace(estimated_stepping_batches=float("inf")), None
        )
    # a warm-up shortens the averaged part of the run
    with pytest.warns(UserWarning, match=r"~110 averaging updates"):
        EMA(decay=0.99, decay_warmup=False, warmup_steps=700).on_fit_start(trainer, None)
