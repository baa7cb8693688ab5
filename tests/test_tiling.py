"""Sliding-window segmentation and test-time augmentation, in predict and in evaluate (the test step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from lit_vision.cli.evaluate import evaluate_argv
from lit_vision.errors import UserError
from lit_vision.inference.api import predict
from lit_vision.inference.checkpoint import load_model
from lit_vision.inference.preprocess import ImagePreprocessor
from lit_vision.inference.test_step import apply_test_time, options_from
from lit_vision.inference.test_time import TestTimeOptions, augmented, test_time_scorer
from lit_vision.inference.tiling import SlidingWindow, weight_window
from lit_vision.runs.run import train
from lit_vision.viz.segmentation import probs_to_mask
from tests.helpers import compose_cfg, train_tiny_segmenter, without_hydra

TINY_RUN = [
    "logger=none",
    "callbacks=[model_checkpoint]",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
]


def fixed_conv(kernel: int, seed: int = 0, channels_out: int = 2) -> torch.nn.Conv2d:
    """A conv net with fixed random weights whose output at a pixel depends only on its kernel x kernel
    neighbourhood (zero padding at the input's border)."""
    torch.manual_seed(seed)
    net = torch.nn.Conv2d(3, channels_out, kernel, padding=kernel // 2)
    net.requires_grad_(False)
    return net


# ------------------------------------------------------------------------------------------ sliding windows
@pytest.mark.parametrize("window", ["gaussian", "linear", "flat"])
def test_a_pointwise_net_tiled_equals_the_net_on_the_whole_3x_image(window):
    net = fixed_conv(1)
    image = torch.randn(2, 3, 96, 120)  # 3x the 32x40 tile
    tiled = SlidingWindow((32, 40), (16, 20), window=window, batch_size=5)(net, image)
    assert tiled.shape == (2, 2, 96, 120)  # the original size
    torch.testing.assert_close(tiled, net(image), atol=1e-5, rtol=1e-5)


def test_tiles_without_overlap_are_the_per_tile_predictions():
    net = fixed_conv(3)  # edge-dependent: a tile's border pixels differ from the whole image's
    image = torch.randn(1, 3, 96, 96)
    tiled = SlidingWindow(32, 32)(net, image)
    for y in range(0, 96, 32):
        for x in range(0, 96, 32):
            torch.testing.assert_close(
                tiled[..., y : y + 32, x : x + 32], net(image[..., y : y + 32, x : x + 32])
            )
    assert not torch.allclose(tiled, net(image), atol=1e-3)  # the test could fail: tile borders differ


def test_overlapping_tiles_match_the_per_tile_predictions_on_their_interiors():
    net = fixed_conv(3, seed=1)
    image = torch.randn(1, 3, 96, 96)
    sliding = SlidingWindow(32, 16)
    tiled = sliding(net, image)
    whole = net(image)  # equals each tile's own prediction at least 1 px inside that tile
    interior = torch.ones(96, 96, dtype=torch.bool)
    for y, x in sliding.boxes(96, 96):
        band = torch.zeros(96, 96, dtype=torch.bool)
        band[y : y + 32, x : x + 32] = True
        band[y + 1 : y + 31, x + 1 : x + 31] = False
        interior &= ~band  # blended with a tile's border pixel: not comparable
    band_pixels = int((~interior).sum())
    assert 0 < band_pixels < 96 * 96 // 4
    torch.testing.assert_close(tiled[..., interior], whole[..., interior], atol=1e-5, rtol=1e-5)
    # and each tile's own prediction, cut out, agrees there too
    tile = net(image[..., 32:64, 16:48])
    inner = interior[32:64, 16:48]
    torch.testing.assert_close(tiled[..., 32:64, 16:48][..., inner], tile[..., inner], atol=1e-5, rtol=1e-5)


def test_odd_sizes_and_images_smaller_than_the_tile_keep_their_size():
    net = fixed_conv(1)
    sliding = SlidingWindow(32, 20)
    odd = torch.randn(1, 3, 70, 50)
    assert sliding.boxes(70, 50) == [(y, x) for y in (0, 20, 38) for x in (0, 18)]  # last tiles flush
    torch.testing.assert_close(sliding(net, odd), net(odd), atol=1e-5, rtol=1e-5)
    small = torch.randn(1, 3, 20, 25)  # padded up to one 32x32 tile, the padding cut off again
    out = sliding(net, small)
    assert out.shape == (1, 2, 20, 25)
    torch.testing.assert_close(out, net(small), atol=1e-5, rtol=1e-5)
    tiny = torch.randn(1, 3, 5, 3)  # too small to reflect: edge pixels are repeated
    assert sliding(net, tiny).shape == (1, 2, 5, 3)


def test_bad_tile_and_stride_values_are_refused_with_the_key_named():
    with pytest.raises(UserError, match=r"stride=\[40, 40\] is larger than tile=\[32, 32\]"):
        SlidingWindow(32, 40)
    with pytest.raises(UserError, match="tile=0 must be a positive"):
        SlidingWindow(0)
    with pytest.raises(UserError, match="larger than tile"):
        TestTimeOptions.from_mapping({"tiling": True, "tile": 16, "stride": 32})
    with pytest.raises(UserError, match="larger than tile"):  # the default tile: the training size
        TestTimeOptions.from_mapping({"tiling": True, "stride": 64}).sliding_window([32, 32])
    with pytest.raises(UserError, match="tile_window='box'"):
        TestTimeOptions.from_mapping({"tile_window": "box"})
    with pytest.raises(UserError, match="tiling='yes' must be true or false"):
        TestTimeOptions.from_mapping({"tiling": "yes"})
    with pytest.raises(UserError, match="tta_flips has 'x'"):
        TestTimeOptions.from_mapping({"tta_flips": ["x"]})
    with pytest.raises(UserError, match="tta_scales"):
        TestTimeOptions.from_mapping({"tta_scales": [0]})
    with pytest.raises(UserError, match="no training image_size"):
        TestTimeOptions(tiling=True).sliding_window(None)
    with pytest.raises(UserError, match="this is a classification model"):
        TestTimeOptions(tiling=True).check_for("classification")


def test_the_blending_window_peaks_in_the_centre_and_never_reaches_zero():
    for kind in ("gaussian", "linear"):
        window = weight_window((32, 32), kind)
        assert window.min() >= 1e-3 and window.max() == 1.0
        assert window[16, 16] > window[8, 8] > window[0, 0]


# ------------------------------------------------------------------------------------------ TTA
def test_tta_averages_flipped_and_rescaled_views_mapped_back():
    net = fixed_conv(3, seed=2)  # a random 3x3 kernel is not flip-invariant
    image = torch.randn(1, 3, 32, 32)
    flips = augmented(net, image, ["h", "v"], [1.0], dense=True)
    expected = (net(image) + net(image.flip(-1)).flip(-1) + net(image.flip(-2)).flip(-2)) / 3
    torch.testing.assert_close(flips, expected)
    assert not torch.allclose(flips, net(image), atol=1e-3)
    scaled = augmented(net, image, [], [0.5, 1.0], dense=True)
    small = torch.nn.functional.interpolate(image, size=(16, 16), mode="bilinear", antialias=True)
    back = torch.nn.functional.interpolate(net(small), size=(32, 32), mode="bilinear")
    torch.testing.assert_close(scaled, (back + net(image)) / 2)


def test_tiling_composes_with_tta_per_tile():
    net = fixed_conv(1)  # pointwise: flips and tiles change nothing, so both together equal the net
    options = TestTimeOptions(tta=True, flips=("h", "hv"), tiling=True, tile=(32, 32))
    image = torch.randn(1, 3, 96, 80)
    calls: list[tuple[int, ...]] = []

    def recorded(x: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return net(x)

    out = test_time_scorer(recorded, options, "segmentation", None)(image)
    torch.testing.assert_close(out, net(image), atol=1e-5, rtol=1e-5)
    assert set(calls) <= {(16, 3, 32, 32), (len(SlidingWindow(32).boxes(96, 80)) % 16, 3, 32, 32)}
    assert len(calls) == 3 * -(-len(SlidingWindow(32).boxes(96, 80)) // 16)  # 3 views of every tile batch


# ------------------------------------------------------------------------------------------ predict
@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    """A small binary UNet trained one epoch on labelme cats of 32x40, at image_size 32."""
    return train_tiny_segmenter(tmp_path_factory.mktemp("segmenter"))


def test_tiled_predict_of_a_3x_photo_equals_the_sliding_window_at_the_photo_size(segmenter, tmp_path):
    ckpt, root, _ = segmenter
    big = tmp_path / "big"
    big.mkdir()
    photo = Image.open(root / "img_000.png").convert("RGB").resize((120, 96))
    photo.save(big / "cat.png")
    summary = predict(ckpt, big, tmp_path / "out", tiling=True, stride=20, tile_batch_size=3, batch_size=8)
    assert summary["tiling"] is True and summary["tile"] is None and summary["stride"] == [20, 20]
    mask = np.asarray(Image.open(tmp_path / "out" / "masks" / "cat.png"))
    assert mask.shape == (96, 120)  # the photo's own size, never squashed to 32x32
    task = load_model(ckpt).task
    preprocess = ImagePreprocessor(task.data_info, "segmentation", full_size=True)
    image, size = preprocess(str(big / "cat.png"))
    assert tuple(image.shape[-2:]) == size == (96, 120)
    x = preprocess.normalize(image[None])
    with torch.no_grad():
        probs = SlidingWindow(32, 20)(lambda t: task.probabilities(task(t)), x)
    np.testing.assert_array_equal(mask, probs_to_mask(probs[0], (96, 120), threshold=task.hparams.threshold))
    resized = predict(ckpt, big, tmp_path / "resized")
    assert resized["tiling"] is False
    assert np.asarray(Image.open(tmp_path / "resized" / "masks" / "cat.png")).shape == (96, 120)


def test_predict_refuses_tiling_for_other_tasks_and_bad_options(segmenter, tmp_path):
    ckpt, root, _ = segmenter
    with pytest.raises(UserError, match="larger than tile"):
        predict(ckpt, root / "img_000.png", tmp_path / "a", tiling=True, tile=16, stride=17)
    with pytest.raises(UserError, match="tta_flips"):
        predict(ckpt, root / "img_000.png", tmp_path / "b", tta=True, tta_flips=["diagonal"])


# ------------------------------------------------------------------------------------------ evaluate
def test_evaluate_takes_the_predict_keys_for_the_test_step():
    argv = evaluate_argv(
        ["evaluate", "ckpt=/x.ckpt", "tta=true", "tta_flips=[h,v]", "tiling=true", "tile=64"]
    )
    assert argv[1:] == [
        "ckpt_path=/x.ckpt",
        "test_time.tta=true",
        "test_time.tta_flips=[h,v]",
        "test_time.tiling=true",
        "test_time.tile=64",
        "train=false",
    ]
    with pytest.raises(UserError, match=r"test_time\.tilling is not a test-time option"):
        options_from({"tilling": True})


def test_evaluate_with_tta_scores_the_mean_of_the_flipped_outputs(segmenter, tmp_path):
    ckpt, root, cfg = segmenter
    task = load_model(ckpt).task
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = task(x)
        flipped = task(x.flip(-1)).flip(-1)
        datamodule = instantiate(cfg.data)
        assert apply_test_time({"tta": True}, task, datamodule) is not None
        out = task(x)
    assert set(task.state_dict()) == set(load_model(ckpt).task.state_dict())  # weights untouched
    assert not torch.allclose(plain, flipped, atol=1e-4)  # the net is not flip-invariant
    torch.testing.assert_close(out.sigmoid(), (plain.sigmoid() + flipped.sigmoid()) / 2, atol=1e-5, rtol=1e-4)

    def evaluate(*overrides: str) -> dict:
        run = compose_cfg(
            [
                "data=segmentation_folder",
                f"data.root={root}",
                "data.image_size=32",
                "data.num_workers=0",
                "train=false",
                f"ckpt_path='{ckpt}'",
                *TINY_RUN,
                *overrides,
            ],
            output_dir=tmp_path / f"run{len(overrides)}",
        )
        return train(without_hydra(run))[0]

    without, with_tta = evaluate(), evaluate("test_time.tta=true")
    assert "test_time" not in without and with_tta["test_time"]["tta"] is True
    assert with_tta["test/loss"] != pytest.approx(without["test/loss"], abs=1e-6)


def test_evaluate_with_tiling_scores_the_photos_at_their_own_size(segmenter, tmp_path):
    ckpt, _, cfg = segmenter
    task = load_model(ckpt).task
    datamodule = instantiate(cfg.data)
    described = apply_test_time({"tiling": True, "stride": 16}, task, datamodule)
    assert described is not None and described["full_size"] is True and described["stride"] == [16, 16]
    images, masks = next(iter(datamodule.test_dataloader()))
    assert images.shape == (1, 3, 32, 40) and masks.shape == (1, 32, 40)  # the labelme photos are 32x40
    x = datamodule.normalize(images)
    with torch.no_grad():
        out = task(x)
        expected = SlidingWindow(32, 16)(lambda t: task.net(t).sigmoid(), x)
    assert out.shape == (1, 1, 32, 40)
    torch.testing.assert_close(out.sigmoid(), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(UserError, match=r"test_time\.full_size"):
        apply_test_time({"full_size": "yes"}, task, datamodule)


def test_evaluate_full_size_alone_is_the_resize_baseline_scored_at_the_photo_size(segmenter):
    ckpt, _, cfg = segmenter
    task = load_model(ckpt).task
    datamodule = instantiate(cfg.data)
    described = apply_test_time({"full_size": True}, task, datamodule)
    assert described == {"tta": False, "tiling": False, "full_size": True}
    images, masks = next(iter(datamodule.test_dataloader()))
    assert masks.shape == (1, 32, 40)
    x = datamodule.normalize(images)
    small = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True)
    with torch.no_grad():
        out = task(x)
        expected = torch.nn.functional.interpolate(task.net(small).sigmoid(), size=(32, 40), mode="bilinear")
    torch.testing.assert_close(out.sigmoid(), expected, atol=1e-5, rtol=1e-4)


def test_classification_tta_in_the_test_step_averages_softmax_probabilities():
    from lit_vision.inference.test_step import TestTimeForward

    torch.manual_seed(0)
    linear = torch.nn.Linear(3 * 8 * 8, 4)
    forward = lambda x: linear(x.flatten(1))  # noqa: E731  # position-dependent: not flip-invariant
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        out = TestTimeForward(forward, TestTimeOptions(tta=True, flips=("h", "v")), "classification", 8)(x)
        expected = (
            forward(x).softmax(1) + forward(x.flip(-1)).softmax(1) + forward(x.flip(-2)).softmax(1)
        ) / 3
    torch.testing.assert_close(out.softmax(1), expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(UserError, match="a classification model takes one input size"):
        TestTimeForward(forward, TestTimeOptions(tta=True, scales=(0.5, 1.0)), "classification", 8)(x)


def test_predict_command_line_takes_tile_lists_and_refuses_bad_flags(segmenter, tmp_path, capsys):
    from lit_vision.cli.predict import main

    ckpt, root, _ = segmenter
    args = [f"ckpt='{ckpt}'", f"input={root / 'img_000.png'}"]
    assert main([*args, f"out={tmp_path / 'out'}", "tiling=true", "tile=[32,24]", "stride=[16,12]"]) == 0
    saved = (tmp_path / "out" / "predict.json").read_text()
    assert '"tile": [\n    32,\n    24\n  ]' in saved and '"tiling": true' in saved
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"out={tmp_path / 'bad'}", "tiling=yes"])
    assert exit_info.value.code == 2 and "tiling='yes' must be true or false" in capsys.readouterr().err
