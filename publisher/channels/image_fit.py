"""Images made to fit a network's size limit: re-encoded and scaled down with Pillow.

An image already under the limit in a format every network takes (JPEG, PNG, WebP)
is sent as it is; anything else is turned upright (EXIF orientation), flattened onto
white, and saved as JPEG at falling quality, then at falling size, until it fits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from publisher.errors import ChannelError

KEPT_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
QUALITIES = (85, 75, 65, 55)
LONGEST_SIDE = 2000  # what the networks show at most; larger only costs bytes
SMALLEST_SIDE = 64


@dataclass(frozen=True)
class FittedImage:
    """Image bytes under a size limit, with what a network needs to show them."""

    data: bytes
    mime_type: str
    width: int
    height: int


def fit_image(data: bytes, max_bytes: int, *, name: str = "image") -> FittedImage:
    """`data` as an image of at most `max_bytes` bytes; `name` only appears in errors."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image_format = opened.format or ""
            image = opened.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ChannelError(f"{name}: not an image the networks take ({error})", permanent=True) from error
    if len(data) <= max_bytes and image_format in KEPT_FORMATS:
        return FittedImage(data, KEPT_FORMATS[image_format], image.width, image.height)
    image = _flattened(ImageOps.exif_transpose(image))
    if max(image.size) > LONGEST_SIDE:
        image.thumbnail((LONGEST_SIDE, LONGEST_SIDE), Image.Resampling.LANCZOS)
    while True:
        for quality in QUALITIES:
            encoded = _jpeg(image, quality)
            if len(encoded) <= max_bytes:
                return FittedImage(encoded, "image/jpeg", image.width, image.height)
        width, height = (round(side * 0.75) for side in image.size)
        if min(width, height) < SMALLEST_SIDE:
            raise ChannelError(f"{name}: cannot make it smaller than {max_bytes:,} bytes", permanent=True)
        image = image.resize((width, height), Image.Resampling.LANCZOS)


def _flattened(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=True, progressive=True)
    return buffer.getvalue()
