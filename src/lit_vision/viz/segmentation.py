"""Pictures of segmentation masks: palette PNGs, blended overlays, and image | truth | prediction panels.

The tutorial's two outputs per image are a palette ('P' mode) PNG of the predicted mask and the photo
blended 70/30 with the coloured mask (``PIL.Image.blend(photo, mask, 0.3)``), both at the photo's own
size. :func:`write_segmentation_outputs` writes exactly those from a photo and a mask;
:func:`probs_to_mask` turns a network's class probabilities into a mask at any size (probabilities are
resized bilinearly first, so the mask edge stays smooth when upscaled).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lit_vision.data.segmentation.labels import voc_colormap

DEFAULT_ALPHA = 0.3  # the mask's share in the tutorial's blend (the photo keeps 70 %)
# Training pictures: half the colour and a bright outline, visible on real photos (0.3 of a dark VOC colour
# is barely a tint there).
OVERLAY_ALPHA = 0.5
CONTOUR_COLOUR = (255, 255, 0)
COLUMN_TITLES = ("image", "truth", "prediction", "overlay")


@functools.lru_cache(maxsize=1)
def _voc_palette() -> np.ndarray:
    """The 256-entry VOC colour map, computed once (callers copy it)."""
    return voc_colormap(256)


def palette(colours: Sequence[Sequence[int]] | np.ndarray | None = None) -> np.ndarray:
    """A full 256-entry RGB palette: ``colours`` for the first classes, the VOC colour map after them."""
    full = _voc_palette().copy()
    if colours is not None:
        given = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
        full[: len(given)] = given
    return full


def to_mask_array(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    """A class-index mask as an ``(H, W)`` uint8 array."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be (H, W), got shape {mask.shape}")
    return mask.astype(np.uint8)


def mask_to_image(
    mask: np.ndarray | torch.Tensor, colours: Sequence[Sequence[int]] | None = None
) -> Image.Image:
    """A 'P' mode PIL image whose pixel values are the class indices and whose palette colours them."""
    image = Image.fromarray(to_mask_array(mask))  # 'L'; putpalette turns it into 'P', values unchanged
    image.putpalette(palette(colours).flatten().tolist())
    return image


def colorize(mask: np.ndarray | torch.Tensor, colours: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB picture of a class-index mask."""
    return palette(colours)[to_mask_array(mask)]


def resize_mask(mask: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask to ``size = (height, width)`` (class values are never mixed)."""
    array = to_mask_array(mask)
    if array.shape == tuple(size):
        return array
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.NEAREST))


def blend(
    image: Image.Image | np.ndarray,
    mask: np.ndarray | torch.Tensor,
    alpha: float = DEFAULT_ALPHA,
    colours: Sequence[Sequence[int]] | None = None,
) -> Image.Image:
    """The photo blended with its coloured mask: ``(1 - alpha) * photo + alpha * colours`` (RGB).

    The mask is resized (nearest) to the photo's size first.
    """
    photo = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    photo = photo.convert("RGB")
    mask = resize_mask(mask, (photo.height, photo.width))
    return Image.blend(photo, Image.fromarray(colorize(mask, colours)), float(alpha))


def bright(colours: np.ndarray) -> np.ndarray:
    """Each RGB colour scaled up until its largest channel is 255 (dark VOC colours become vivid; black stays)."""
    colours = colours.astype(np.float64)
    peak = colours.max(axis=-1, keepdims=True)
    scaled = np.where(peak > 0, colours * 255.0 / np.maximum(peak, 1.0), colours)
    return scaled.round().astype(np.uint8)


def boundaries(mask: np.ndarray | torch.Tensor, background: int | None = 0) -> np.ndarray:
    """``(H, W)`` bool: pixels of a non-``background`` region that touch another class (4-neighbourhood)
    or the picture's edge."""
    array = to_mask_array(mask)
    padded = np.pad(array, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(array.shape, dtype=bool)
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        edge |= shifted != centre
    return edge & (array != background) if background is not None else edge


def contour_overlay(
    image: Image.Image | np.ndarray,
    mask: np.ndarray | torch.Tensor,
    alpha: float = OVERLAY_ALPHA,
    colours: Sequence[Sequence[int]] | None = None,
    contour: Sequence[int] = CONTOUR_COLOUR,
    background: int | None = 0,
) -> np.ndarray:
    """``(H, W, 3)`` uint8: the photo with each non-background class filled in a vivid version of its colour
    at ``alpha`` and outlined in ``contour``; background pixels keep the photo as it is."""
    photo = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    photo_array = np.asarray(photo.convert("RGB"), dtype=np.float64)
    array = resize_mask(mask, photo_array.shape[:2])
    fill = bright(palette(colours))[array].astype(np.float64)
    covered = (
        (array != background)[..., None] if background is not None else np.ones_like(fill[..., :1], bool)
    )
    out = np.where(covered, (1.0 - alpha) * photo_array + alpha * fill, photo_array)
    out[boundaries(array, background)] = np.asarray(contour, dtype=np.float64)
    return out.round().clip(0, 255).astype(np.uint8)


def probs_to_mask(
    probs: torch.Tensor, size: tuple[int, int] | None = None, threshold: float | None = None
) -> np.ndarray:
    """Class probabilities ``(C, h, w)`` -> uint8 mask ``(H, W)`` at ``size`` (default: unchanged).

    With two classes and a ``threshold`` the foreground is ``p(class 1) > threshold``; otherwise argmax.
    """
    probs = probs.detach().float().cpu()
    if probs.ndim != 3:
        raise ValueError(f"probabilities must be (C, H, W), got shape {tuple(probs.shape)}")
    if size is not None and tuple(size) != tuple(probs.shape[-2:]):
        probs = F.interpolate(probs[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
    if threshold is not None and probs.shape[0] == 2:
        return (probs[1] > threshold).to(torch.uint8).numpy()
    return probs.argmax(dim=0).to(torch.uint8).numpy()


def write_segmentation_outputs(
    image: Image.Image | np.ndarray,
    mask: np.ndarray | torch.Tensor,
    out_dir: str | Path,
    stem: str,
    alpha: float = DEFAULT_ALPHA,
    colours: Sequence[Sequence[int]] | None = None,
) -> dict[str, Path]:
    """Write ``<stem>.png`` (palette mask) and ``<stem>_overlay.png`` (blend) at the photo's size."""
    photo = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    mask = resize_mask(mask, (photo.height, photo.width))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"mask": out_dir / f"{stem}.png", "overlay": out_dir / f"{stem}_overlay.png"}
    mask_to_image(mask, colours).save(paths["mask"])
    blend(photo, mask, alpha, colours).save(paths["overlay"])
    return paths


def comparison_panel(
    image: np.ndarray,
    target: np.ndarray | torch.Tensor | None,
    prediction: np.ndarray | torch.Tensor,
    alpha: float = OVERLAY_ALPHA,
    colours: Sequence[Sequence[int]] | None = None,
    gap: int = 2,
) -> np.ndarray:
    """One row ``image | ground truth | prediction | outlined overlay of the prediction`` as ``(H, W', 3)``
    uint8 (see :func:`contour_overlay`).

    ``image`` is ``(H, W, 3)`` uint8; ignored target pixels keep the palette's ignore colour.
    """
    height, width = image.shape[:2]
    tiles = comparison_tiles(image, target, prediction, alpha, colours)
    separator = np.full((height, gap, 3), 255, dtype=np.uint8)
    row: list[np.ndarray] = []
    for tile in tiles:
        if row:
            row.append(separator)
        row.append(tile[:height, :width])
    return np.concatenate(row, axis=1)


def comparison_tiles(
    image: np.ndarray,
    target: np.ndarray | torch.Tensor | None,
    prediction: np.ndarray | torch.Tensor,
    alpha: float = OVERLAY_ALPHA,
    colours: Sequence[Sequence[int]] | None = None,
) -> list[np.ndarray]:
    """The tiles of a comparison row: image, truth (when given), prediction, outlined overlay."""
    tiles = [image]
    if target is not None:
        tiles.append(colorize(target, colours))
    tiles += [colorize(prediction, colours), contour_overlay(image, prediction, alpha, colours)]
    return tiles


@functools.lru_cache(maxsize=4)
def _font(size: int):
    """PIL's built-in scalable font at ``size`` points, loaded once."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def comparison_grid(
    rows: Sequence[Sequence[np.ndarray]],
    row_labels: Sequence[str] | None = None,
    titles: Sequence[str] = COLUMN_TITLES,
    title: str | None = None,
    min_tile: int = 64,
    gap: int = 4,
    font_size: int = 12,
) -> np.ndarray:
    """``(H, W, 3)`` uint8 grid of comparison rows (from :func:`comparison_tiles`) on white: the columns
    titled ``titles`` above the first row, each row labelled on its left (e.g. its IoU), ``title`` on top.

    Tiles are enlarged (nearest neighbour) to at least ``min_tile`` pixels high so the text fits beside
    small training crops. Drawn with PIL: a few milliseconds, cheap enough for every validation epoch.
    """
    from PIL import ImageDraw

    font = _font(font_size)
    tile_h, tile_w = rows[0][0].shape[:2]
    scale = max(1, -(-min_tile // tile_h))  # ceil
    tile_h, tile_w = tile_h * scale, tile_w * scale
    n_cols = max(len(r) for r in rows)
    labels = list(row_labels or [])
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    line = text_size("Ag")[1] + 6
    label_w = max((text_size(t)[0] for t in labels), default=0) + (2 * gap if labels else 0)
    top = line + (line if title else 0)
    width = label_w + n_cols * tile_w + (n_cols - 1) * gap + gap
    height = top + len(rows) * tile_h + (len(rows) - 1) * gap + gap
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text(((width - text_size(title)[0]) // 2, 2), title, fill=(0, 0, 0), font=font)
    for c in range(n_cols):
        x = label_w + c * (tile_w + gap)
        if c < len(titles):
            draw.text(
                (x + (tile_w - text_size(titles[c])[0]) // 2, top - line + 2),
                titles[c],
                fill=(0, 0, 0),
                font=font,
            )
    for r, tiles in enumerate(rows):
        y = top + r * (tile_h + gap)
        if r < len(labels):
            draw.text((gap, y + (tile_h - line) // 2), labels[r], fill=(0, 0, 0), font=font)
        for c, tile in enumerate(tiles):
            enlarged = np.repeat(np.repeat(np.asarray(tile, dtype=np.uint8), scale, axis=0), scale, axis=1)
            canvas.paste(Image.fromarray(enlarged), (label_w + c * (tile_w + gap), y))
    return np.asarray(canvas)
