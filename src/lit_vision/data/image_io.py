"""Reading single image files: a cheap header/completeness check and a decoder to uint8 CHW tensors.

JPEG files are decoded by torchvision.io (libjpeg-turbo, ~2x faster than PIL), everything else by PIL
(torchvision 0.29's PNG decoder crashes the whole process on a corrupt PNG instead of raising); EXIF
orientation is applied either way. Whatever the file's mode (grey, grey+alpha, RGBA, palette,
16-bit, CMYK), the result has the requested number of channels (1 or 3) and dtype uint8.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

try:  # torchvision.io's decoders are deprecated since 0.29 (TorchCodec supersedes them) but still fastest
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
except ImportError:  # pragma: no cover - a torchvision without them: PIL decodes everything
    decode_jpeg = None

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm")
# Files that often sit among images and are never meant as data: ignored silently.
IGNORED_FILES = {"thumbs.db", "desktop.ini"}
_JPEG_SUFFIXES = {".jpg", ".jpeg"}
# PIL modes that need no conversion for 3 (RGB) or 1 (grey) channels.
NATIVE_MODES = {3: {"RGB"}, 1: {"L"}}


class BadImageError(Exception):
    """An image file that cannot be used; ``reason`` says why in words."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an image file says: its format, PIL mode, stored (width, height) and EXIF
    orientation (1 = as stored; 5 to 8 turn the picture by 90 degrees when it is shown)."""

    format: str
    mode: str
    size: tuple[int, int]
    orientation: int = 1

    @property
    def displayed_size(self) -> tuple[int, int]:
        """(width, height) once EXIF orientation is applied (what decoding and labelme give)."""
        return (self.size[1], self.size[0]) if self.orientation in (5, 6, 7, 8) else self.size


@contextlib.contextmanager
def pixel_limit() -> Iterator[None]:
    """Within this block a header claiming more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels is an error,
    not a warning: a damaged header would otherwise make the decoder allocate and loop for minutes."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def is_image_name(name: str) -> bool:
    """Whether the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def is_ignored_name(name: str) -> bool:
    """Hidden files (``.DS_Store``...) and OS thumbnails caches, which never count as data."""
    return name.startswith(".") or name.lower() in IGNORED_FILES


def inspect_image(path: str | Path) -> ImageHeader:
    """Parse the header and check the file is complete; raise :class:`BadImageError` otherwise.

    Cheap (no pixel decoding): a truncated JPEG lacks its end-of-image marker, a truncated PNG its IEND
    chunk, a truncated WebP is shorter than its RIFF header announces, a truncated GIF lacks its trailer.
    """
    path = Path(path)
    try:
        with pixel_limit(), Image.open(path) as image:
            header = ImageHeader(str(image.format), str(image.mode), tuple(image.size), _orientation(image))
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image file (no known image format recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(path, _too_large(err)) from None
    except Exception as err:  # PIL's plugins raise many types on damaged headers (struct.error, EOFError...)
        raise BadImageError(path, f"unreadable image header ({_describe(err)})") from None
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        f.seek(max(0, size - 64))
        tail = f.read()
    complete = True
    if header.format == "JPEG":
        complete = b"\xff\xd9" in tail
    elif header.format == "PNG":
        complete = b"IEND" in tail
    elif header.format == "GIF":
        complete = tail.rstrip(b"\x00").endswith(b";")
    elif header.format == "WEBP":
        complete = int.from_bytes(head[4:8], "little") + 8 <= size
    if not complete:
        raise BadImageError(path, f"truncated {header.format} file ({size} bytes; its end is missing)")
    return header


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: decoding decides whether the image is usable
        return 1
    return value if 1 <= value <= 8 else 1


def decode_image_file(path: str | Path, channels: int = 3, exif_orientation: bool = True) -> torch.Tensor:
    """Decode one file to a uint8 ``(channels, H, W)`` tensor, EXIF orientation applied (unless
    ``exif_orientation`` is false: the pixels as stored).

    Raises :class:`BadImageError` for anything that does not decode (corrupt, truncated, not an image).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = str(path)
    image = None
    if decode_jpeg is not None and os.path.splitext(path)[1].lower() in _JPEG_SUFFIXES:
        try:
            mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                image = decode_jpeg(read_file(path), mode=mode, apply_exif_orientation=exif_orientation)
        except RuntimeError:
            image = None  # damaged, or not a JPEG despite its name: PIL decides and explains
    if image is None:
        image = _decode_with_pil(path, channels, exif_orientation)
    return _to_uint8_channels(image, channels)


def decode_image_bytes(data: bytes, channels: int = 3, name: str = "image data") -> torch.Tensor:
    """Decode an encoded image held in memory (labelme's embedded ``imageData``) like
    :func:`decode_image_file`; ``name`` is how a :class:`BadImageError` names it."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    try:
        return _to_uint8_channels(_decode_with_pil(io.BytesIO(data), channels), channels)
    except BadImageError as err:
        raise BadImageError(name, err.reason) from None


def _decode_with_pil(path: str | io.BytesIO, channels: int, exif_orientation: bool = True) -> torch.Tensor:
    try:
        with pixel_limit(), Image.open(path) as image:
            image.load()
            if exif_orientation:
                # In place: no copy of the pixels when there is nothing to turn (most files).
                ImageOps.exif_transpose(image, in_place=True)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16/32-bit grey: scale to 8 bits (PIL's convert("L") would clip everything above 255).
                array = np.asarray(image, dtype=np.float64)
                top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
                grey = np.clip(np.rint(array * (255.0 / top)), 0, 255).astype(np.uint8)
                image = Image.fromarray(grey)
            mode = "RGB" if channels == 3 else "L"
            if image.mode != mode:
                image = image.convert(mode)
            # (H, W[, C]) array -> (C, H, W) view, as TF.pil_to_tensor gives, without its extra calls.
            array = np.array(image)
            pixels = torch.from_numpy(array if array.ndim == 3 else array[:, :, None])
            return pixels.permute(2, 0, 1)
    except UnidentifiedImageError:
        raise BadImageError(path, "not an image file (no known image format recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadImageError(path, _too_large(err)) from None
    except Exception as err:  # damaged pixel data surfaces as OSError, ValueError, SyntaxError, EOFError...
        raise BadImageError(path, f"cannot be decoded ({_describe(err)})") from None


def _describe(err: Exception) -> str:
    text = str(err)
    return (
        text
        if isinstance(err, (OSError, ValueError, SyntaxError)) and text
        else f"{type(err).__name__}: {text}"
    )


def _too_large(err: Exception) -> str:
    return (
        f"its header claims more pixels than PIL decodes safely ({err}); the header is damaged, or the image "
        "is really that large (then raise PIL.Image.MAX_IMAGE_PIXELS or shrink the file)"
    )


def _to_uint8_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    if image.dtype == torch.uint16:
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    elif image.dtype != torch.uint8:
        image = TF.to_dtype(image, torch.uint8, scale=True)
    have = image.shape[0]
    if have == channels:
        return image
    if channels == 1:
        return TF.rgb_to_grayscale(image[:3]) if have >= 3 else image[:1].clone()
    if have in (1, 2):  # grey or grey + alpha
        return image[:1].expand(3, -1, -1).clone()
    return image[:3].clone()  # RGBA -> RGB (alpha dropped, as PIL's convert does)
