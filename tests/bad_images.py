"""Every kind of upload the prediction page must survive, built in memory (nothing is read from disk).

`upload_cases()` maps a name to an `UploadCase`: the file's bytes, the name it is uploaded under,
and the outcome: `expected_error` is a phrase of the `ImageError` message, or `None` when the file
must give a prediction. Every file name has an extension the prediction page's uploader accepts, so
each case reaches the decoder. Unit tests and browser tests both use these.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image


class UploadCase(NamedTuple):
    data: bytes
    filename: str
    expected_error: str | None  # a phrase of the ImageError message; None: the file converts


def garment_photo(
    width: int = 240, height: int = 300, garment_level: int = 40, background_level: int = 235
) -> np.ndarray:
    """uint8 `(height, width, 3)`: a dark T-shirt silhouette on a light background, like a catalog shot."""
    photo = np.full((height, width, 3), background_level, dtype=np.uint8)
    x, y = width / 240, height / 300
    outline = [
        (70, 40),
        (100, 30),
        (140, 30),
        (170, 40),
        (215, 95),
        (185, 120),
        (165, 100),
        (165, 270),
        (75, 270),
        (75, 100),
        (55, 120),
        (25, 95),
    ]
    points = np.array([(round(px * x), round(py * y)) for px, py in outline], dtype=np.int32)
    cv2.fillPoly(photo, [points], (garment_level, garment_level + 10, garment_level + 30))
    return photo


def encode(array: np.ndarray, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` grey pixels (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * (width + 1) * 4)  # a few rows; the claim is what matters
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def _save(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def cmyk_jpeg() -> bytes:
    return _save(Image.fromarray(garment_photo()).convert("CMYK"), "JPEG")


def sixteen_bit_png() -> bytes:
    grey = cv2.cvtColor(garment_photo(), cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257  # full 16-bit range
    return _save(Image.fromarray(grey), "PNG")


def palette_png_with_transparency() -> bytes:
    """A palette PNG: a garment in colour 1 on colour 0, which is transparent."""
    indices = (cv2.cvtColor(garment_photo(), cv2.COLOR_RGB2GRAY) < 128).astype(np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([255, 255, 255, 30, 40, 90] + [0] * 762)
    return _save(image, "PNG", transparency=0)


def animated_gif() -> bytes:
    """Two frames: the garment, then a blank frame; the first is the one classified."""
    frames = [Image.fromarray(garment_photo()), Image.fromarray(np.full((300, 240, 3), 128, np.uint8))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)


def fully_transparent_png() -> bytes:
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = garment_photo(200, 200)
    return encode(rgba, "PNG")


SVG = (
    b'<?xml version="1.0"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="80" height="90"/></svg>\n'
)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
HTML = b"<!DOCTYPE html>\n<html><head><title>Not a photo</title></head><body>Hello</body></html>\n"
TEXT = b"This is a plain text file that someone renamed to photo.png.\n" * 3


@functools.cache
def upload_cases() -> dict[str, UploadCase]:
    """Every bad (and tricky but valid) upload, by name; built once per process."""
    photo = garment_photo()
    jpeg = encode(photo, "JPEG", quality=90)
    png = encode(photo, "PNG")
    return {
        "zero bytes": UploadCase(b"", "empty.png", "empty (0 bytes)"),
        "text renamed .png": UploadCase(TEXT, "notes.png", "is text"),
        "HTML renamed .png": UploadCase(HTML, "page.png", "is text (or a web page)"),
        "truncated JPEG": UploadCase(jpeg[: len(jpeg) // 2], "cut.jpg", "truncated or corrupt"),
        "truncated PNG": UploadCase(png[: len(png) // 2], "cut.png", "truncated or corrupt"),
        "PNG header only": UploadCase(png[:40], "header.png", "truncated or corrupt"),
        "decompression bomb PNG": UploadCase(png_claiming_size(100_000, 100_000), "bomb.png", "decompression bomb"),
        "64 MP PNG header": UploadCase(png_claiming_size(8_000, 8_000), "big.png", "decompression bombs"),
        "too many bytes": UploadCase(b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024), "huge.jpg", "larger than 10 MB"),
        "1x1 image": UploadCase(encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "dot.png", "too small"),
        "5x5000 strip": UploadCase(encode(np.zeros((5000, 5, 3), np.uint8), "PNG"), "strip.png", "too small"),
        "50x2000 strip": UploadCase(encode(garment_photo(50, 2000), "PNG"), "strip.png", "thin strip"),
        "fully transparent PNG": UploadCase(fully_transparent_png(), "clear.png", "fully transparent"),
        "all-white image": UploadCase(
            encode(np.full((300, 300, 3), 255, np.uint8), "PNG"), "white.png", "one flat colour"
        ),
        "all-black image": UploadCase(
            encode(np.zeros((300, 300, 3), np.uint8), "JPEG"), "black.jpg", "one flat colour"
        ),
        # Renamed: the page's uploader refuses the .svg, .pdf and .heic extensions before any code sees them.
        "SVG": UploadCase(SVG, "drawing-svg.png", "SVG file"),
        "PDF": UploadCase(PDF, "scan-pdf.png", "PDF file"),
        "HEIC": UploadCase(HEIC, "IMG_0001-heic.jpg", "HEIC photos"),
        "CMYK JPEG": UploadCase(cmyk_jpeg(), "cmyk.jpg", None),
        "16-bit PNG": UploadCase(sixteen_bit_png(), "deep.png", None),
        "palette PNG with transparency": UploadCase(palette_png_with_transparency(), "palette.png", None),
        "animated GIF": UploadCase(animated_gif(), "moving.gif", None),
        "TIFF": UploadCase(encode(photo, "TIFF"), "scan.tif", None),
        "WebP": UploadCase(encode(photo, "WEBP"), "photo.webp", None),
        "BMP": UploadCase(encode(photo, "BMP"), "photo.bmp", None),
        "PNG named .jpg": UploadCase(png, "really-a-png.jpg", None),
        "JPEG named .png": UploadCase(jpeg, "really-a-jpeg.png", None),
    }
