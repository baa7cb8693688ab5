"""Error analysis: the gallery of the worst test mistakes (classification and segmentation) and Grad-CAM."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import ConcatDataset, Subset

from lit_vision.callbacks.error_gallery import ErrorGallery, sample_name
from lit_vision.callbacks.grad_cam import grad_cam_maps, last_conv_layer
from lit_vision.inference.checkpoint import load_model
from lit_vision.runs.run import train
from tests.helpers import compose_cfg, without_hydra


class FakeFiles:
    """A dataset whose items are files (as ImageFileDataset: ``samples[i].path``)."""

    def __init__(self, names: list[str]) -> None:
        self.samples = [SimpleNamespace(path=name, label=0) for name in names]

    def __len__(self) -> int:
        return len(self.samples)


class FakeTrainer(SimpleNamespace):
    """What the gallery reads of a Trainer (a class of its own: the callbacks keep weak references)."""

    __hash__ = object.__hash__


def fake_trainer(tmp_path: Path, dataset) -> FakeTrainer:
    return FakeTrainer(
        is_global_zero=True,
        fast_dev_run=False,
        sanity_checking=False,
        world_size=1,
        loggers=[],
        global_step=0,
        default_root_dir=str(tmp_path),
        test_dataloaders=SimpleNamespace(dataset=dataset),
    )


def fake_task(num_classes: int, **hparams) -> SimpleNamespace:
    names = [f"class{i}" for i in range(num_classes)]
    return SimpleNamespace(
        hparams={"num_classes": num_classes, **hparams},
        data_info={"class_names": names, "mean": [0.5], "std": [0.5]},
        temperature=None,
        device=torch.device("cpu"),
    )


def logits_with(confidence: float, predicted: int, classes: int = 3) -> torch.Tensor:
    """Logits whose softmax gives ``predicted`` probability ``confidence`` (the rest shared equally)."""
    probs = torch.full((classes,), (1 - confidence) / (classes - 1))
    probs[predicted] = confidence
    return probs.log()


def test_sample_name_finds_files_through_subsets_and_concatenations():
    files = FakeFiles([f"img{i}.png" for i in range(5)])
    assert sample_name(files, 3) == "img3.png"
    assert sample_name(Subset(files, [4, 2]), 1) == "img2.png"
    concatenated = ConcatDataset([FakeFiles(["a.png", "b.png"]), FakeFiles(["c.png"])])
    assert sample_name(concatenated, 2) == "c.png"
    assert sample_name(SimpleNamespace(names=["x", "y"]), 1) == "y"
    assert sample_name(torch.zeros(3), 2) == "test #2"


def test_classification_gallery_names_the_most_confident_mistakes_worst_first(tmp_path):
    names = [f"photo{i}.jpg" for i in range(7)]
    trainer, task = fake_trainer(tmp_path, Subset(FakeFiles(names[::-1]), list(range(7)))), fake_task(3)
    gallery = ErrorGallery(k=3, columns=2)
    # (confidence, predicted, true) per test image; the mistakes are 1 (0.7), 2 (0.95), 4 (0.5), 5 (0.99),
    # 6 (0.8): the gallery must hold 5, 2, 6 in that order, across batch boundaries.
    rows = [(0.9, 0, 0), (0.7, 1, 0), (0.95, 2, 1), (0.6, 1, 1), (0.5, 0, 2), (0.99, 1, 2), (0.8, 2, 0)]
    gallery.on_test_epoch_start(trainer, task)
    for batch_idx, (lo, hi) in enumerate([(0, 3), (3, 5), (5, 7)]):
        part = rows[lo:hi]
        logits = torch.stack([logits_with(c, p) for c, p, _ in part])
        target = torch.tensor([t for _, _, t in part])
        images = torch.rand(len(part), 1, 6, 6)
        outputs = {"loss": torch.tensor(0.0), "logits": logits, "target": target}
        gallery.on_test_batch_end(trainer, task, outputs, (images, target), batch_idx)
    gallery.on_test_epoch_end(trainer, task)

    written = json.loads((tmp_path / "errors" / "test.json").read_text())
    worst = written["worst"]
    # the dataset lists the files in reverse, through a Subset: image i is names[6 - i]
    assert [w["name"] for w in worst] == ["photo1.jpg", "photo4.jpg", "photo0.jpg"]
    assert [w["index"] for w in worst] == [5, 2, 6]
    assert [w["confidence"] for w in worst] == pytest.approx([0.99, 0.95, 0.8])
    assert [(w["predicted"], w["true"]) for w in worst] == [
        ("class1", "class2"),
        ("class2", "class1"),
        ("class2", "class0"),
    ]
    assert (tmp_path / "errors" / "test.png").stat().st_size > 1000


def test_segmentation_gallery_names_the_lowest_iou_images_first(tmp_path):
    trainer, task = fake_trainer(tmp_path, FakeFiles(["a.png", "b.png", "c.png", "d.png"])), fake_task(2)
    masks = torch.zeros(4, 8, 8, dtype=torch.long)
    masks[:, 2:6, 2:6] = 1  # a 16-pixel square
    preds = masks.clone()
    preds[0, 2:6, 2:4] = 0  # IoU 8/16
    preds[1] = 0  # IoU 0
    preds[3, 2:6, 2:5] = 0  # IoU 4/16
    gallery = ErrorGallery(k=3)
    gallery.on_test_epoch_start(trainer, task)
    outputs = {"loss": torch.tensor(0.0), "preds": preds}
    gallery.on_test_batch_end(trainer, task, outputs, (torch.rand(4, 3, 8, 8), masks), 0)
    gallery.on_test_epoch_end(trainer, task)
    worst = json.loads((tmp_path / "errors" / "test.json").read_text())["worst"]
    assert [w["name"] for w in worst] == ["b.png", "d.png", "a.png"]
    assert [w["iou"] for w in worst] == pytest.approx([0.0, 0.25, 0.5])
    assert (tmp_path / "errors" / "test.png").stat().st_size > 1000


def square_detector() -> nn.Module:
    """Conv (bright-pixel detector) -> ReLU -> global average pool -> linear: class 0 rises with bright
    pixels, class 1 falls with them."""
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)
    )
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].weight[0].fill_(1 / 9)
        net[0].bias.copy_(torch.tensor([-0.05, 0.0]))
        net[4].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net[4].bias.zero_()
    return net


def test_grad_cam_has_the_image_size_and_highlights_the_discriminative_square():
    images = torch.zeros(2, 1, 16, 16)
    images[0, 0, 2:6, 3:7] = 1.0  # top-left square
    images[1, 0, 9:14, 8:13] = 1.0  # bottom-right square
    net = square_detector()
    assert last_conv_layer(net) is net[0]
    maps = grad_cam_maps(net, images, [0, 0])
    assert maps.shape == (2, 16, 16)
    assert maps.min() >= 0 and maps.max() <= 1
    for i in range(2):
        inside = images[i, 0] > 0
        assert maps[i][inside].mean() > 0.5
        assert maps[i][~inside].mean() < 0.15
        # the peak lies on the square
        peak = divmod(int(maps[i].argmax()), 16)
        assert inside[peak]


def test_grad_cam_runs_inside_inference_mode():
    images = torch.zeros(1, 1, 16, 16)
    images[0, 0, 4:8, 4:8] = 1.0
    net = square_detector()  # built outside, as the Trainer's test runs a model built before it
    with torch.inference_mode():
        frozen = images.clone()
        maps = grad_cam_maps(net, frozen, [0])
    assert maps[0, 4:8, 4:8].mean() > 0.5


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("gallery")
    overrides = [
        "trainer.max_epochs=2",
        "+trainer.limit_train_batches=4",
        "trainer.num_sanity_val_steps=0",
        "trainer.precision=32-true",
        "logger=tensorboard",
        "callbacks=[default,grad_cam]",
        "callbacks.error_gallery.k=6",
    ]
    metrics, _ = train(without_hydra(compose_cfg(overrides, output_dir=run_dir)))
    assert metrics["status"] == "completed"
    return run_dir


def test_a_training_run_writes_the_gallery_of_its_worst_test_mistakes(digits_run):
    worst = json.loads((digits_run / "errors" / "test.json").read_text())["worst"]
    assert len(worst) == 6
    confidences = [w["confidence"] for w in worst]
    assert confidences == sorted(confidences, reverse=True)

    # recompute the tested model's test predictions independently
    cfg = without_hydra(compose_cfg(["trainer.precision=32-true"], output_dir=digits_run))
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    task = load_model(digits_run / "checkpoints" / "best.ckpt").task
    probs, labels = [], []
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            images, target = datamodule.on_after_batch_transfer(batch, 0)
            probs.append(task(images).float().softmax(dim=1))
            labels.append(target)
    confidence, predicted = torch.cat(probs).max(dim=1)
    labels = torch.cat(labels)
    listed = {w["index"] for w in worst}
    for entry in worst:
        i = entry["index"]
        assert entry["name"] == f"test #{i}"
        assert int(predicted[i]) != int(labels[i])
        assert entry["confidence"] == pytest.approx(float(confidence[i]), abs=1e-4)
    others = [
        float(confidence[i]) for i in (predicted != labels).nonzero().flatten().tolist() if i not in listed
    ]
    assert max(others, default=0.0) <= min(confidences) + 1e-4


def test_the_gallery_and_grad_cam_reach_the_run_folder_and_tensorboard(digits_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert (digits_run / "errors" / "test.png").stat().st_size > 1000
    assert (digits_run / "errors" / "grad_cam_test.png").stat().st_size > 1000
    events = EventAccumulator(str(digits_run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"errors/test", "grad_cam/test"} <= set(events.Tags()["images"])


def test_grad_cam_of_bf16_weights_runs_on_a_float_copy():
    images = torch.zeros(1, 1, 16, 16)
    images[0, 0, 8:12, 8:12] = 1.0
    net = square_detector().to(torch.bfloat16)  # trainer.precision=bf16-true
    maps = grad_cam_maps(net, images, [0])
    assert maps[0, 8:12, 8:12].mean() > 0.5
    assert next(net.parameters()).dtype == torch.bfloat16  # the run's own net is untouched
