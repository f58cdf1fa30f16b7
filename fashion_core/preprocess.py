"""Photos and drawings made into 28x28 images like Fashion-MNIST's.

Fashion-MNIST was made from catalog shots on a light background (Xiao, Rasul and Vollgraf 2017,
arXiv:1708.07747, section 2): trim the edges whose colour is close to the corner pixels', resize the
longest edge to 28, sharpen (Gaussian, sigma 1.0), extend the short edge to 28 with the garment
centred, negate and keep 8-bit grey. A model trained on it sees a light garment on an exactly black
background that fills the 28 pixels on its long side.

Real photos differ: a garment lies on a bed, a rug or a floor, hangs on a door, or is a small part of
a large frame. `photo_steps` therefore first separates the garment from its background (the
colours of the photo's border, refined with OpenCV's GrabCut, or the photo's own transparency),
crops tightly to it, and then follows the paper's steps; the garment's grey levels are stretched to
the range dataset garments have. Uploads are checked before they are decoded (size in bytes,
format, pixel count), and every problem raises `ImageError` with what to do about it.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_core.data import IMAGE_SIZE

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # matches `server.maxUploadSize = 10` (MB) in .streamlit/config.toml
# Decompression-bomb guard, checked from the header before any pixel is decoded. 50 MP admits the
# 48 MP photos of current phones (8064x6048); a 50 MP RGB image takes 150 MB once decoded.
MAX_PIXELS = 50_000_000
MIN_SIDE = 16  # pixels; a smaller image cannot show a garment (Fashion-MNIST's own 28x28 images pass)
MAX_ASPECT_RATIO = 8.0  # long side / short side; no garment photo is a thin strip
# Decoded by content, never by file name. Other formats Pillow knows (EPS, PSD, ICO, ...) are refused
# before decoding: some need external programs, none is a photo format people upload.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")  # Pillow's JPEG opener also reads MPO
ACCEPTED_FORMATS_TEXT = "PNG, JPEG, WebP, GIF, BMP or TIFF"

ORIGINAL_MAX_SIDE = 400  # `PhotoConversion.original` is downscaled to this longest edge
SEGMENTATION_SIDE = 112  # the garment is found on a copy this size: fast, and enough for a 28x28 result
BORDER_RING_FRACTION = 0.04  # the photo's outer ring, as a share of its short side, samples the background
BACKGROUND_CLUSTERS = 5  # colours (k-means) the ring's pixels are grouped into
MIN_BACKGROUND_CLUSTER_SHARE = 0.05  # a ring colour rarer than this is the garment touching the edge
BACKGROUND_DISTANCE_THRESHOLD = 2.5  # in units of each background colour's own spread (Lab)
MAX_BACKGROUND_SHARE_OF_MIDDLE = 0.3  # a ring colour covering more of the frame's middle is the garment's
GRABCUT_ITERATIONS = 1  # a second pass costs 40% more time and changed nothing measurable
BOX_GRABCUT_ITERATIONS = 3  # from a bare rectangle GrabCut needs a few passes to settle
MIN_BOX_SIDE = 4  # pixels of `PhotoConversion.original`; a smaller box cannot hold a garment
MIN_BOX_GARMENT_SHARE = 0.1  # GrabCut keeping less of the box than this failed: the whole box is used
MIN_GARMENT_FRACTION = 0.01  # a mask smaller than this share of the photo is a failed segmentation
BLANK_RANGE = 16  # an image whose every channel spans fewer grey levels than this shows nothing

SHARPEN_SIGMA = 1.0  # the paper's Gaussian radius and sigma
# Dataset garments' grey levels: the 2nd..98th percentiles of a garment are stretched to these.
GARMENT_LOW_LEVEL = 60
GARMENT_HIGH_LEVEL = 245
MIN_GARMENT_CONTRAST = 120  # grey levels; a plain garment's few levels are not stretched beyond this
DRAWING_BLUR_SIGMA = 0.6  # canvas strokes are hard-edged; dataset images are soft
DRAWING_INK_LEVEL = 32  # canvas pixels at least this bright are strokes

PHOTO_TIPS = (
    "One item per photo, laid flat or on a hanger.",
    "A plain background that contrasts with the item (a white sheet for a dark item, a dark floor for a light one).",
    "The whole item in the frame, filling most of it; nothing else in the picture.",
    "Even light without strong shadows; take the photo from straight above or in front.",
)


class ImageError(ValueError):
    """Raised when an upload or a drawing cannot be made into a 28x28 image; the message says why."""


@dataclass(frozen=True)
class PhotoConversion:
    """A photo made into a Fashion-MNIST image, with what happened on the way.

    Attributes:
        image: uint8 `(28, 28)`, light garment on black: what the model sees.
        steps: `(name, image)` pairs of the intermediate images, in order (uint8, RGB or grey).
        original: uint8 `(H, W, 3)` RGB of the photo after its EXIF orientation is applied and any
            transparency is put on white, downscaled to at most `ORIGINAL_MAX_SIDE` pixels on its
            longest edge (never upscaled).
        crop_box: `(left, top, right, bottom)` of the garment's crop in `original`'s pixels (right
            and bottom exclusive).
        content_box: `(left, top, right, bottom)` of where that crop landed inside `image`.
        whole_photo: whether no garment could be told from the background, so the whole photo was used.
    """

    image: np.ndarray
    steps: list[tuple[str, np.ndarray]] = field(repr=False)
    original: np.ndarray = field(repr=False)
    crop_box: tuple[int, int, int, int]
    content_box: tuple[int, int, int, int]
    whole_photo: bool = False


# ---------------------------------------------------------------------------------------------------
# Decoding and checks


def _format_from_signature(data: bytes) -> str | None:
    """Names the file type from its first bytes, for formats people upload by mistake."""
    head = bytes(data[:512])
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%PDF"):
        return "PDF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC"
        if brand in (b"avif", b"avis"):
            return "AVIF"
        return "video"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG"
    if text.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    for signature, name in ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"RIFF", "WEBP")):
        if head.startswith(signature):
            return name
    return None


def _unreadable_message(data: bytes) -> str:
    """What to tell a user whose file Pillow could not identify."""
    kind = _format_from_signature(data)
    if kind in ("SVG", "PDF"):
        article = "an" if kind == "SVG" else "a"
        return (
            f"This is {article} {kind} file, not a photo: it cannot be classified. Export it as a PNG or JPEG "
            f"image and upload that. Received: format={kind}"
        )
    if kind == "HEIC":
        return (
            "HEIC photos (the iPhone's default format) cannot be read here. Upload a JPEG or PNG instead "
            "(on an iPhone: Settings > Camera > Formats > Most Compatible, or share the photo as JPEG). "
            f"Received: format={kind}"
        )
    if kind == "AVIF":
        return f"AVIF images cannot be read here. Save it as JPEG or PNG, then upload that. Received: format={kind}"
    if kind == "video":
        return f"This is a video or another ISO media file, not a photo. Upload a JPEG or PNG. Received: format={kind}"
    if kind in ("PNG", "JPEG", "GIF", "WEBP"):
        return (
            f"This {kind} file is truncated or corrupt: its header cannot be read. Upload the photo again, "
            f"or export it again from the app that made it. Received: format={kind}, size={len(data)} bytes"
        )
    if kind == "HTML" or _looks_like_text(data):
        return (
            "This file is text (or a web page), not an image; perhaps it was renamed to look like one. "
            f"Upload a {ACCEPTED_FORMATS_TEXT} photo. Received: first bytes={data[:16]!r}"
        )
    return (
        f"This file is not an image that can be read. Upload a {ACCEPTED_FORMATS_TEXT} photo. "
        f"Received: first bytes={data[:16]!r}"
    )


def _looks_like_text(data: bytes) -> bool:
    try:
        sample = data[:1024].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(character.isprintable() or character.isspace() for character in sample)


def _check_byte_size(data: bytes) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ImageError(f"Expected the file's bytes. Received: type={type(data).__name__}")
    if len(data) == 0:
        raise ImageError("The file is empty (0 bytes). Upload the photo again. Received: size=0 bytes")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(
            f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB. Upload a smaller photo "
            f"(a phone's 'medium' or 'large' size is plenty). Received: size={len(data)} bytes"
        )


def _check_dimensions(width: int, height: int) -> None:
    """Raises `ImageError` for a size no garment photo has: huge, tiny, or a thin strip."""
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image has {width}x{height} = {width * height / 1e6:.0f} million pixels, more than the "
            f"{MAX_PIXELS / 1e6:.0f} million allowed (a guard against decompression bombs). Resize it and "
            f"upload it again. Received: size={width}x{height}"
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"The image is too small to show a garment: it needs at least {MIN_SIDE} pixels on each side. "
            f"Upload a larger photo. Received: size={width}x{height}"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageError(
            f"The image is a thin strip ({max(width, height) / min(width, height):.0f} times longer than wide), "
            f"not a photo of a garment. Upload a photo at most {MAX_ASPECT_RATIO:.0f} times longer than wide. "
            f"Received: size={width}x{height}"
        )


def _open_image(data: bytes) -> Image.Image:
    """Opens (but does not decode) an image of an accepted format and checks its size."""
    try:
        image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageError(
            "The image claims so many pixels that decoding it could exhaust the server's memory (a "
            f"decompression bomb). Upload a normal photo. Received: {error}"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError(_unreadable_message(bytes(data))) from error
    except Exception as error:  # Pillow's header parsers raise many types for malformed files
        raise ImageError(
            f"The image's header is corrupt ({type(error).__name__}: {error}). Upload the photo again. "
            f"Received: size={len(data)} bytes"
        ) from error
    _check_dimensions(*image.size)
    return image


def _decode_first_frame(image: Image.Image) -> Image.Image:
    """Decodes the first frame (GIF, WebP and TIFF may hold several), reduced on the fly for big JPEGs."""
    if image.format in ("JPEG", "MPO"):
        # libjpeg decodes at 1/2, 1/4 or 1/8 scale directly: a phone photo decodes in milliseconds.
        image.draft(image.mode, (ORIGINAL_MAX_SIDE, ORIGINAL_MAX_SIDE))
    try:
        image.load()
    except Exception as error:  # truncated data raises OSError, bad chunks SyntaxError or ValueError
        raise ImageError(
            f"The {image.format} image is truncated or corrupt and cannot be decoded ({error}). Upload the "
            f"photo again, or export it again from the app that made it. Received: format={image.format}"
        ) from error
    # A malformed EXIF block keeps the photo as stored rather than refuse it; in place: no copy.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(image, in_place=True)
    return image


def _as_uint8_grey(array: np.ndarray, mode: str) -> np.ndarray:
    """16-bit, 32-bit and float grey pixels as 0..255 (Pillow's own conversion clips them at 255)."""
    if mode.startswith("I;16"):
        return (array.astype(np.uint16) >> 8).astype(np.uint8)
    values = array.astype(np.float32)
    if values.max() > 255 or values.min() < 0:
        low, high = values.min(), values.max()
        values = (values - low) * (255.0 / max(high - low, 1e-9))
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _as_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """The image in mode `RGB`, or `RGBA` when it has transparency (palette, grey+alpha, ...)."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        return Image.fromarray(_as_uint8_grey(np.asarray(image), image.mode), mode="L").convert("RGB")
    if image.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA")
    return image if image.mode in ("RGB", "RGBA") else image.convert("RGB")


def _composited_on_white(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 RGB `(H, W, 3)` of `(H, W, 3)` RGB or `(H, W, 4)` RGBA pixels, and the alpha if not all opaque."""
    if pixels.shape[2] == 3:
        return pixels, None
    alpha = pixels[..., 3]
    weight = alpha[..., None].astype(np.float32) / 255.0
    rgb = np.rint(pixels[..., :3] * weight + 255.0 * (1.0 - weight)).astype(np.uint8)
    return rgb, (alpha if alpha.min() < 255 else None)


def _downscaled(array: np.ndarray, max_side: int) -> np.ndarray:
    height, width = array.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return array
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


def decode_photo(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """Decodes an upload by its content into RGB and alpha, after checking it is safe to.

    Args:
        data: the file's bytes.

    Returns:
        `(rgb, alpha)`: uint8 `(H, W, 3)` RGB, EXIF-oriented, transparency on white, downscaled to at
        most `ORIGINAL_MAX_SIDE` on the longest edge; and the uint8 `(H, W)` alpha, or `None` when the
        image is fully opaque.

    Raises:
        ImageError: for an empty, too large, unreadable, unsupported, truncated, tiny or thin image.
    """
    _check_byte_size(data)
    image = _decode_first_frame(_open_image(data))
    try:
        image = _as_rgb_or_rgba(image)
    except (ValueError, OSError) as error:  # a colour mode Pillow cannot turn into RGB (LAB TIFFs, ...)
        raise ImageError(
            f"The image's colour mode cannot be read ({error}). Save it as an ordinary RGB JPEG or PNG and "
            f"upload that. Received: mode={image.mode}"
        ) from error
    # Downscaled before anything else, so a 50 MP upload costs no more memory than its decoded pixels;
    # Pillow weighs colours by alpha when it resizes, so transparent pixels do not bleed into the edges.
    image.thumbnail((ORIGINAL_MAX_SIDE, ORIGINAL_MAX_SIDE), Image.Resampling.BOX)
    return _composited_on_white(np.asarray(image))


def _check_not_blank(small_rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    if alpha is not None and alpha.max() < 128:
        raise ImageError(
            "The image is fully transparent: there is nothing to classify. Upload a photo of a garment. "
            f"Received: largest alpha={int(alpha.max())}"
        )
    spread = int((small_rgb.max(axis=(0, 1)).astype(int) - small_rgb.min(axis=(0, 1))).max())
    if spread < BLANK_RANGE:
        level = int(small_rgb.mean())
        raise ImageError(
            f"The image is one flat colour (grey level about {level}): there is nothing to classify. Upload a "
            f"photo of a garment. Received: range of values={spread}"
        )


# ---------------------------------------------------------------------------------------------------
# Finding the garment


def _border_ring(shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    ring_width = max(2, round(BORDER_RING_FRACTION * min(height, width)))
    ring = np.zeros((height, width), dtype=bool)
    ring[:ring_width] = ring[-ring_width:] = True
    ring[:, :ring_width] = ring[:, -ring_width:] = True
    return ring


def background_distance(lab: np.ndarray) -> np.ndarray:
    """How far each pixel's colour is from the photo's background colours, in their spreads.

    The background is sampled from the photo's outer ring and grouped into `BACKGROUND_CLUSTERS`
    colours (a bed's sheet, its shadow, the floor beyond). A ring colour is not background when it
    is rare in the ring (under `MIN_BACKGROUND_CLUSTER_SHARE`), or when it also covers the middle of
    the frame while holding less than half the ring: that is the garment touching the photo's edge.

    Args:
        lab: uint8 `(H, W, 3)` CIELAB image.

    Returns:
        float32 `(H, W)`: the distance to the nearest background colour divided by that colour's mean
        spread; about 1 on the background, large on the garment; `inf` everywhere when no ring colour
        is background.
    """
    ring = lab[_border_ring(lab.shape[:2])].astype(np.float32)  # (R, 3)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)  # k-means++ seeding: the same photo always gives the same mask
    _, labels, centres = cv2.kmeans(ring, BACKGROUND_CLUSTERS, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    pixels = lab.reshape(-1, 3).astype(np.float32)  # (H*W, 3)
    middle = _centre_prior(lab.shape[:2]).ravel()
    distance = np.full(len(pixels), np.inf, dtype=np.float32)
    for index, centre in enumerate(centres):
        members = ring[labels == index]
        ring_share = len(members) / len(ring)
        if ring_share < MIN_BACKGROUND_CLUSTER_SHARE:
            continue
        spread = max(float(np.linalg.norm(members - centre, axis=1).mean()), 4.0)
        cluster_distance = np.linalg.norm(pixels - centre, axis=1) / spread
        middle_share = float((cluster_distance[middle] < BACKGROUND_DISTANCE_THRESHOLD).mean())
        if middle_share > MAX_BACKGROUND_SHARE_OF_MIDDLE and ring_share < 0.5:
            continue
        distance = np.minimum(distance, cluster_distance)
    return distance.reshape(lab.shape[:2])


def _centre_prior(shape: tuple[int, int]) -> np.ndarray:
    """An ellipse over the middle of the frame: where a garment that fills the photo surely is."""
    height, width = shape
    rows, columns = np.ogrid[:height, :width]
    return ((rows - height / 2) / (0.35 * height)) ** 2 + ((columns - width / 2) / (0.35 * width)) ** 2 <= 1


def _refined_with_grabcut(small_rgb: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """GrabCut's colour models and smoothness term, started from a rough garment mask."""
    labels = np.where(initial, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[:2] = labels[-2:] = cv2.GC_BGD  # a garment cut off by the frame loses at most 2 pixels
    labels[:, :2] = labels[:, -2:] = cv2.GC_BGD
    if GRABCUT_ITERATIONS == 0 or not (labels == cv2.GC_PR_FGD).any():
        return initial
    background_model = np.zeros((1, 65), dtype=np.float64)
    foreground_model = np.zeros((1, 65), dtype=np.float64)
    bgr = np.ascontiguousarray(small_rgb[..., ::-1])
    cv2.grabCut(bgr, labels, None, background_model, foreground_model, GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    refined = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return refined if refined.mean() >= MIN_GARMENT_FRACTION else initial


def _largest_component_filled(mask: np.ndarray) -> np.ndarray:
    """The biggest 8-connected region of a mask, with its enclosed holes filled."""
    count, components, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    largest = (components == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    outside = np.pad(largest, 1)
    cv2.floodFill(outside, None, (0, 0), 2)  # everything reachable from the frame without crossing the region
    return outside[1:-1, 1:-1] != 2


Box = tuple[int, int, int, int]  # (x0, y0, x1, y1): left, top, right, bottom; right and bottom exclusive


def check_box(box, shape: tuple[int, int]) -> Box:
    """A user's garment box clipped to the photo, as whole pixels.

    Args:
        box: `(x0, y0, x1, y1)` in the pixels of `PhotoConversion.original` (left, top, right,
            bottom; right and bottom exclusive).
        shape: `(height, width)` of that photo.

    Raises:
        ImageError: for a box that is not four numbers, is empty, or lies outside the photo.
    """
    try:
        x0, y0, x1, y1 = (round(float(value)) for value in box)
    except (TypeError, ValueError) as error:
        raise ImageError(f"The garment box must be four numbers (x0, y0, x1, y1). Received: box={box!r}") from error
    height, width = shape
    x0, x1 = sorted((min(max(x0, 0), width), min(max(x1, 0), width)))
    y0, y1 = sorted((min(max(y0, 0), height), min(max(y1, 0), height)))
    if x1 - x0 < MIN_BOX_SIDE or y1 - y0 < MIN_BOX_SIDE:
        raise ImageError(
            f"The garment box must cover at least {MIN_BOX_SIDE}x{MIN_BOX_SIDE} pixels of the {width}x{height} photo; "
            f"draw it around the whole garment. Received: box={tuple(box)!r}"
        )
    return x0, y0, x1, y1


def _scaled_box(box: Box, scale: float, shape: tuple[int, int]) -> Box:
    """A box moved to a resized copy of the photo, at least 2 pixels wide and inside it."""
    height, width = shape
    x0, y0 = min(int(box[0] * scale), width - 2), min(int(box[1] * scale), height - 2)
    x1, y1 = max(math.ceil(box[2] * scale), x0 + 2), max(math.ceil(box[3] * scale), y0 + 2)
    return x0, y0, min(x1, width), min(y1, height)


def garment_mask_in_box(small_rgb: np.ndarray, box: Box) -> np.ndarray:
    """Finds the garment inside a user's box with GrabCut's rectangle mode; all outside it is background.

    GrabCut learns the background's colours from outside the box and the garment's from inside it,
    which separates a garment from the person wearing it (head, arms, legs) once the box leaves
    them out. When the box touches the frame on every side there is no outside to learn from, so
    the frame's outer 2 pixels count as outside.

    Args:
        small_rgb: uint8 `(h, w, 3)` RGB, about `SEGMENTATION_SIDE` on its longest edge.
        box: `(x0, y0, x1, y1)` in `small_rgb`'s pixels.

    Returns:
        bool `(h, w)`: the garment's largest region, holes filled, never outside the box; the whole
        box when GrabCut finds too little in it.
    """
    height, width = small_rgb.shape[:2]
    x0, y0, x1, y1 = box
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x0 == 0 and y0 == 0 and x1 == width and y1 == height:
        x0, y0, x1, y1 = 2, 2, width - 2, height - 2
    inside = np.zeros((height, width), dtype=bool)
    inside[y0:y1, x0:x1] = True
    labels = np.zeros((height, width), dtype=np.uint8)
    background_model = np.zeros((1, 65), dtype=np.float64)
    foreground_model = np.zeros((1, 65), dtype=np.float64)
    bgr = np.ascontiguousarray(small_rgb[..., ::-1])
    cv2.setRNGSeed(0)
    cv2.grabCut(
        bgr,
        labels,
        (x0, y0, x1 - x0, y1 - y0),
        background_model,
        foreground_model,
        BOX_GRABCUT_ITERATIONS,
        cv2.GC_INIT_WITH_RECT,
    )
    mask = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)) & inside
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    mask = _largest_component_filled(mask) & inside
    if mask.sum() < MIN_BOX_GARMENT_SHARE * inside.sum():
        return inside
    return mask


def garment_mask(small_rgb: np.ndarray, alpha: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """Finds the garment in a small photo.

    With a transparency mask (a cut-out catalog image) that mask is the garment. Otherwise the
    pixels far from the border's colours are a first guess, GrabCut refines it, and the largest
    region with its holes filled is kept. When the border's colours are everywhere (a garment that
    fills the frame, or one the colour of its background) the guess starts from the frame's centre.

    Args:
        small_rgb: uint8 `(h, w, 3)` RGB, about `SEGMENTATION_SIDE` on its longest edge.
        alpha: uint8 `(h, w)` transparency of the same size, or `None`. Defaults to `None`.

    Returns:
        `(mask, whole_photo)`: bool `(h, w)` garment mask, and whether it fell back to the whole photo.
    """
    if alpha is not None and MIN_GARMENT_FRACTION <= (alpha > 127).mean() < 1.0:
        return _largest_component_filled(alpha > 127), False
    smooth = cv2.GaussianBlur(small_rgb, (3, 3), 0)  # fabric texture and JPEG noise are not the garment's edge
    initial = background_distance(cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB)) > BACKGROUND_DISTANCE_THRESHOLD
    if initial.mean() < MIN_GARMENT_FRACTION:
        initial = _centre_prior(initial.shape)
    mask = _refined_with_grabcut(small_rgb, initial)
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    mask = _largest_component_filled(mask)
    if mask.mean() < MIN_GARMENT_FRACTION:
        return np.ones_like(mask, dtype=bool), True
    return mask, False


def full_size_mask(small_mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The garment mask at the photo's size: float32 `(H, W)` in [0, 1], soft (anti-aliased) at the edges."""
    height, width = shape
    return cv2.resize(small_mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


# ---------------------------------------------------------------------------------------------------
# From the garment's crop to 28x28


def garment_grey_levels(crop_rgb: np.ndarray, crop_mask: np.ndarray, background_luminance: float) -> np.ndarray:
    """The garment's grey levels as the dataset shows them: contrast to the background, stretched.

    The paper negates catalog shots on white, so a garment's level is how much darker it is than
    its background. A garment lighter than a dark background (or a dataset image itself, light on
    black) keeps its luminance instead. The garment's 2nd..98th percentiles are then stretched to
    `GARMENT_LOW_LEVEL`..`GARMENT_HIGH_LEVEL`, where dataset garments lie, however the photo was lit.

    Args:
        crop_rgb: uint8 `(h, w, 3)` RGB crop around the garment.
        crop_mask: float32 `(h, w)` garment weight in [0, 1] (soft at the edges).
        background_luminance: the background's median grey level, 0..255.

    Returns:
        float32 `(h, w)` levels 0..255, 0 off the garment.
    """
    luminance = cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    inside = crop_mask > 0.5
    sample = luminance[::2, ::2][inside[::2, ::2]]  # every 4th pixel is plenty for a median and percentiles
    if sample.size == 0:
        sample = luminance[inside] if inside.any() else np.array([255.0], dtype=np.float32)
    is_lighter = float(np.median(sample)) > background_luminance
    levels = luminance if is_lighter else 255.0 - luminance
    if inside.any():
        low, high = np.percentile(sample if is_lighter else 255.0 - sample, [2, 98])
        contrast = max(high - low, MIN_GARMENT_CONTRAST)
        levels = GARMENT_LOW_LEVEL + (levels - (high - contrast)) * (
            (GARMENT_HIGH_LEVEL - GARMENT_LOW_LEVEL) / contrast
        )
    return np.clip(levels, 0, 255) * crop_mask


def fit_to_frame(image: np.ndarray, sharpen: bool = True) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resizes the longest edge to 28, sharpens as the paper did, and centres it on a black 28x28.

    Args:
        image: float32 or uint8 `(h, w)` grey levels 0..255, black around the object.
        sharpen: whether to apply the paper's unsharp mask (Gaussian sigma 1.0). Defaults to `True`.

    Returns:
        `(image28, content_box)`: uint8 `(28, 28)`, and `(left, top, right, bottom)` of the resized
        object inside it.
    """
    height, width = image.shape
    scale = IMAGE_SIZE / max(height, width)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image.astype(np.float32), (new_width, new_height), interpolation=interpolation)
    if sharpen:
        blurred = cv2.GaussianBlur(resized, (0, 0), SHARPEN_SIGMA, borderType=cv2.BORDER_CONSTANT)
        resized = resized + (resized - blurred)
    left, top = (IMAGE_SIZE - new_width) // 2, (IMAGE_SIZE - new_height) // 2
    frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    frame[top : top + new_height, left : left + new_width] = resized
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8), (left, top, left + new_width, top + new_height)


def _mask_preview(original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The photo with its background darkened, to show what was taken for the garment."""
    weight = (0.25 + 0.75 * mask[..., None]).astype(np.float32)
    return (original * weight).astype(np.uint8)


def photo_steps(data: bytes, box: Box | None = None) -> PhotoConversion:
    """Makes a photo into a Fashion-MNIST image and keeps each step, for the page to show.

    Steps: decode by content (checked first), apply EXIF orientation, put transparency on white,
    find the garment (transparency, or border colours refined with GrabCut; or, given a box,
    GrabCut's rectangle mode inside it), crop tightly to it, take its grey levels as contrast to
    the background and stretch them to the dataset's range, resize the longest edge to 28,
    sharpen, centre on black.

    Args:
        data: the bytes of a PNG, JPEG, WebP, GIF (first frame), BMP or TIFF file.
        box: `(x0, y0, x1, y1)` around the garment, in the pixels of the returned `original` (the
            photo as uploaded when it is at most `ORIGINAL_MAX_SIDE` pixels on its longest edge,
            else that downscaled copy), right and bottom exclusive. Everything outside it is
            background: draw it around a garment worn by a person to leave the head, arms and
            legs out. Defaults to `None` (the garment is found without help).

    Returns:
        A `PhotoConversion`; `.image` is uint8 `(28, 28)`, light garment on black.

    Raises:
        ImageError: for a file that is empty, too large, not an image, of an unsupported format
            (SVG, PDF, HEIC, ...), truncated or corrupt, too many pixels, too small, a thin strip,
            or blank (one flat colour, fully transparent); or for a box outside the photo.

    Example:
        >>> conversion = photo_steps(Path("shirt.jpg").read_bytes())
        >>> probabilities = predictor.predict_one(conversion.image)
    """
    original, alpha = decode_photo(data)
    small = _downscaled(original, SEGMENTATION_SIDE)
    small_alpha = None if alpha is None else cv2.resize(alpha, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    _check_not_blank(small, small_alpha)
    height, width = original.shape[:2]
    if box is None:
        small_mask, whole_photo = garment_mask(small, small_alpha)
    else:
        small_box = _scaled_box(check_box(box, (height, width)), small.shape[1] / width, small.shape[:2])
        small_mask, whole_photo = garment_mask_in_box(small, small_box), False
    mask = full_size_mask(small_mask, (height, width))
    crop_box = _bounding_box(mask > 0.5) if (mask > 0.5).any() else (0, 0, width, height)
    left, top, right, bottom = crop_box
    background = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)[~small_mask]
    background_luminance = float(np.median(background)) if background.size else 255.0
    crop = original[top:bottom, left:right]
    grey = garment_grey_levels(crop, mask[top:bottom, left:right], background_luminance)
    image, content_box = fit_to_frame(grey)
    steps = [
        ("Photo (oriented)", original),
        ("Garment found", _mask_preview(original, mask)),
        ("Cropped to the garment", crop),
        ("Grey levels, background black", np.rint(grey).astype(np.uint8)),
        ("Model input (28x28, sharpened)", image),
    ]
    return PhotoConversion(image, steps, original, crop_box, content_box, whole_photo)


def photo_to_fashion_mnist(data: bytes, box: Box | None = None) -> np.ndarray:
    """Makes a photo's bytes into a uint8 `(28, 28)` Fashion-MNIST image; see `photo_steps`.

    Args:
        data: the photo file's bytes.
        box: `(x0, y0, x1, y1)` around the garment, as in `photo_steps`. Defaults to `None`.

    Raises:
        ImageError: as `photo_steps` does.
    """
    return photo_steps(data, box).image


def naive_photo_to_fashion_mnist(data: bytes) -> np.ndarray:
    """The tutorials' conversion, for comparison only: squash to 28x28 grey and invert.

    Raises:
        ImageError: as `decode_photo` does.
    """
    rgb, _ = decode_photo(data)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return 255 - cv2.resize(grey, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------------------------------------------
# Drawings


def drawing_to_fashion_mnist(rgba: np.ndarray) -> np.ndarray:
    """Makes a canvas drawing (light strokes on black) into a uint8 `(28, 28)` Fashion-MNIST image.

    The strokes are cropped to, their longest edge scaled to 28 (dataset garments fill the frame on
    their long side), centred, and softened with a small blur, as dataset images are.

    Args:
        rgba: uint8 `(H, W, 4)` RGBA (or `(H, W, 3)` RGB, or `(H, W)` grey) canvas pixels; a
            transparent pixel counts as black.

    Returns:
        uint8 `(28, 28)`.

    Raises:
        ImageError: for an array that is not an image, or a blank canvas.
    """
    array = np.asarray(rgba)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise ImageError(f"Expected canvas pixels shaped (H, W), (H, W, 3) or (H, W, 4). Received: shape={array.shape}")
    pixels = np.clip(array, 0, 255).astype(np.uint8)
    if pixels.ndim == 2:
        ink = pixels.astype(np.float32)
    else:
        ink = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        if pixels.shape[2] == 4:
            ink *= pixels[..., 3] / 255.0
    strokes = ink >= DRAWING_INK_LEVEL
    if not strokes.any():
        raise ImageError(
            "The canvas is blank: draw a garment first (white strokes on the black canvas; fill its shape in). "
            f"Received: brightest pixel={int(ink.max())}"
        )
    left, top, right, bottom = _bounding_box(strokes)
    image, _ = fit_to_frame(ink[top:bottom, left:right], sharpen=False)
    softened = cv2.GaussianBlur(image.astype(np.float32), (0, 0), DRAWING_BLUR_SIGMA, borderType=cv2.BORDER_CONSTANT)
    return np.clip(np.rint(softened), 0, 255).astype(np.uint8)


def box_drawing(box: Box, stroke: str = "#7c3aed", fill: str = "rgba(124, 58, 237, 0.15)") -> dict:
    """A drawable canvas's drawing (Fabric.js JSON) holding one rectangle: `box`, to start the canvas from.

    Args:
        box: `(x0, y0, x1, y1)` in canvas pixels.
        stroke: the rectangle's outline colour. Defaults to violet.
        fill: its fill colour. Defaults to a faint violet.
    """
    x0, y0, x1, y1 = box
    rect = {"type": "rect", "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0, "scaleX": 1, "scaleY": 1}
    return {"objects": [{**rect, "fill": fill, "stroke": stroke, "strokeWidth": 2, "angle": 0}]}


def drawn_box(drawing: dict | None) -> Box | None:
    """The newest rectangle of a drawable canvas's drawing as `(x0, y0, x1, y1)` canvas pixels, or `None`.

    Fabric.js keeps a resized rectangle's size in `width * scaleX` and `height * scaleY`.
    """
    rects = [item for item in (drawing or {}).get("objects", []) if item.get("type") == "rect"]
    if not rects:
        return None
    rect = rects[-1]
    width, height = rect.get("width", 0) * rect.get("scaleX", 1), rect.get("height", 0) * rect.get("scaleY", 1)
    x0 = rect.get("left", 0) - (width if rect.get("originX") == "right" else 0)
    y0 = rect.get("top", 0) - (height if rect.get("originY") == "bottom" else 0)
    return round(x0), round(y0), round(x0 + width), round(y0 + height)
