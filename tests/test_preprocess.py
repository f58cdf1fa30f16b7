"""Photos and drawings to 28x28: geometry, grey levels, real photos, and every kind of bad upload."""

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fashion_core import preprocess
from fashion_core.inference import Predictor
from fashion_core.photo_quality import FASHION_MNIST_REFERENCE, image_statistics
from fashion_core.preprocess import (
    ImageError,
    drawing_to_fashion_mnist,
    naive_photo_to_fashion_mnist,
    photo_steps,
    photo_to_fashion_mnist,
)
from tests.bad_images import encode, garment_photo, upload_cases

REAL_PHOTOS_DIR = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"
GARMENT = (60, 70, 90)


def blank_photo(width: int, height: int, colour=(240, 240, 240)) -> np.ndarray:
    return np.full((height, width, 3), colour, dtype=np.uint8)


def content_bounds(image: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the non-zero pixels."""
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return columns[0], rows[0], columns[-1] + 1, rows[-1] + 1


def assert_close_box(box, expected, tolerance):
    assert np.abs(np.subtract(box, expected)).max() <= tolerance, f"{box} is not within {tolerance} of {expected}"


# ---------------------------------------------------------------------------------------------------
# Geometry


def test_an_off_centre_garment_ends_up_centred_with_its_aspect_ratio_on_black():
    photo = blank_photo(480, 360)
    photo[40:200, 30:110] = GARMENT  # 80 wide, 160 tall, in the top-left corner
    conversion = photo_steps(encode(photo, "PNG"))
    assert conversion.original.shape == (300, 400, 3)  # downscaled to 400 pixels on the long side
    assert_close_box(conversion.crop_box, np.multiply((30, 40, 110, 200), 400 / 480), tolerance=2)
    assert conversion.content_box == (7, 0, 21, 28)  # 28 tall, 14 wide, centred
    image = conversion.image
    assert content_bounds(image) == (7, 0, 21, 28)
    outside = np.ones_like(image, dtype=bool)
    outside[:, 7:21] = False
    assert image[outside].max() == 0  # the background is exactly black, as in the dataset
    assert image[4:24, 10:18].min() > 100  # a dark garment on white becomes light on black


def test_a_small_item_in_a_large_frame_still_fills_the_frame():
    photo = blank_photo(2000, 1500)
    photo[200:500, 1500:1700] = GARMENT  # 200x300 pixels, 2% of a 3 MP photo
    conversion = photo_steps(encode(photo, "JPEG", quality=90))
    assert conversion.original.shape == (300, 400, 3)  # downscaled to 400 pixels on the long side
    # The garment is found on a 112-pixel copy: its edges are within one of those pixels (3.6 here).
    assert_close_box(conversion.crop_box, np.multiply((1500, 200, 1700, 500), 400 / 2000), tolerance=400 / 112)
    left, top, right, bottom = content_bounds(conversion.image)
    assert (top, bottom) == (0, 28)
    assert abs((right - left) - 28 * 200 / 300) <= 2


def test_a_garment_on_a_busy_coloured_background_is_separated_from_it():
    rng = np.random.default_rng(0)
    photo = np.empty((400, 320, 3), dtype=np.uint8)
    photo[:] = (170, 40, 50)  # a red rug with a woven pattern and noise
    photo[::16] = (120, 30, 40)
    photo[:, ::16] = (200, 90, 60)
    photo = np.clip(photo + rng.normal(0, 12, photo.shape), 0, 255).astype(np.uint8)
    garment = (garment_photo(320, 400) < 128).all(axis=2)  # the T-shirt's silhouette, its sleeves included
    photo[garment] = (40, 90, 200)
    conversion = photo_steps(encode(photo, "JPEG", quality=92))
    expected_box = content_bounds(garment)
    assert_close_box(conversion.crop_box, expected_box, tolerance=6)
    assert not conversion.whole_photo
    # The silhouette, not a rectangle: the corners beside the neckline stay black.
    assert (
        conversion.image[0, conversion.content_box[0]] == 0 and conversion.image[0, conversion.content_box[2] - 1] == 0
    )


def test_light_and_dark_garments_give_the_same_silhouette_on_black():
    silhouette = garment_photo() < 128
    dark_on_light = np.where(silhouette, 40, 230).astype(np.uint8)
    light_on_dark = np.where(silhouette, 220, 25).astype(np.uint8)
    first = photo_to_fashion_mnist(encode(dark_on_light, "PNG"))
    second = photo_to_fashion_mnist(encode(light_on_dark, "PNG"))
    first_mask, second_mask = first > 20, second > 20
    assert (first_mask & second_mask).sum() / (first_mask | second_mask).sum() > 0.95
    assert first[first_mask].mean() > 120 and second[second_mask].mean() > 120  # both light, as dataset garments


def test_a_transparent_cut_out_is_cropped_to_its_opaque_pixels():
    rgba = np.zeros((300, 240, 4), dtype=np.uint8)
    rgba[..., :3] = garment_photo()
    rgba[50:250, 60:180, 3] = 255
    conversion = photo_steps(encode(rgba, "PNG"))
    assert_close_box(conversion.crop_box, (60, 50, 180, 250), tolerance=2)
    assert (conversion.original[10, 10] == 255).all()  # transparency is put on white


def test_exif_orientation_is_applied_before_anything_else():
    stored = blank_photo(300, 200)
    stored[80:120, 40:260] = GARMENT  # a long horizontal bar as stored...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...which the camera says to show rotated 90 degrees clockwise
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", exif=exif, quality=95)
    conversion = photo_steps(buffer.getvalue())
    assert conversion.original.shape == (300, 200, 3)
    left, top, right, bottom = content_bounds(conversion.image)
    assert bottom - top == 28 and right - left <= 7  # so the model sees a vertical bar


def test_photo_to_fashion_mnist_is_the_last_step_of_photo_steps():
    data = encode(garment_photo(), "JPEG")
    conversion = photo_steps(data)
    np.testing.assert_array_equal(photo_to_fashion_mnist(data), conversion.image)
    names = [name for name, _ in conversion.steps]
    assert names[0] == "Photo (oriented)" and names[-1] == "Model input (28x28, sharpened)"
    np.testing.assert_array_equal(conversion.steps[-1][1], conversion.image)
    assert conversion.image.dtype == np.uint8 and conversion.image.shape == (28, 28)


def test_the_naive_conversion_squashes_and_inverts():
    photo = blank_photo(400, 100, colour=(255, 255, 255))
    photo[:, :200] = 0
    image = naive_photo_to_fashion_mnist(encode(photo, "PNG"))
    assert image.shape == (28, 28)
    assert image[:, :13].min() == 255 and image[:, 15:].max() == 0


# ---------------------------------------------------------------------------------------------------
# Grey levels like the dataset's


def catalog_shot(image: np.ndarray) -> bytes:
    """A dataset image as a product photo: dark garment on white, 224x224 with a 16-pixel white margin."""
    garment = 255 - cv2.resize(image, (224, 224), interpolation=cv2.INTER_CUBIC)
    return encode(cv2.copyMakeBorder(garment, 16, 16, 16, 16, cv2.BORDER_CONSTANT, value=255), "PNG")


@pytest.fixture(scope="session")
def catalog_shots(fashion_data):
    """100 test images as catalog shots, with the images and their labels."""
    images, labels = fashion_data.test_images[:100], fashion_data.test_labels[:100]
    return images, labels, [catalog_shot(image) for image in images]


def test_catalog_shots_on_white_become_the_dataset_images_they_were_made_from(catalog_shots, shipped_model):
    images, _, shots = catalog_shots
    converted = np.stack([photo_to_fashion_mnist(shot) for shot in shots])
    predictor = Predictor(shipped_model)
    agreement = (predictor.predict(converted).argmax(axis=1) == predictor.predict(images).argmax(axis=1)).mean()
    assert agreement >= 0.9
    in_distribution = (
        FASHION_MNIST_REFERENCE.distances(image_statistics(converted)) <= FASHION_MNIST_REFERENCE.threshold
    ).mean()
    assert in_distribution >= 0.9
    garment_levels = converted[converted > 25]
    assert 120 <= garment_levels.mean() <= 200  # the dataset's garments average about 160


# ---------------------------------------------------------------------------------------------------
# Real photos


@pytest.fixture(scope="session")
def real_photo_conversions():
    if not (REAL_PHOTOS_DIR / "MANIFEST.tsv").is_file():
        pytest.skip(f"The real photos are not there: {REAL_PHOTOS_DIR / 'MANIFEST.tsv'} is missing.")
    with open(REAL_PHOTOS_DIR / "MANIFEST.tsv", newline="") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    return {row["relative_path"]: photo_steps((REAL_PHOTOS_DIR / row["relative_path"]).read_bytes()) for row in rows}


def test_every_real_photo_converts_to_a_garment_filling_the_frame(real_photo_conversions):
    assert len(real_photo_conversions) == 120
    for name, conversion in real_photo_conversions.items():
        image = conversion.image
        assert image.shape == (28, 28) and image.dtype == np.uint8, name
        left, top, right, bottom = content_bounds(image)
        assert max(right - left, bottom - top) >= 27, name  # the long side fills the frame
        corners = [image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]]
        assert corners.count(0) >= 3 and (image == 0).mean() >= 0.1, name  # a garment on black, not a photo
        height, width = conversion.original.shape[:2]
        crop_left, crop_top, crop_right, crop_bottom = conversion.crop_box
        assert 0 <= crop_left < crop_right <= width and 0 <= crop_top < crop_bottom <= height, name
    whole_photos = sum(conversion.whole_photo for conversion in real_photo_conversions.values())
    assert whole_photos <= 6  # the garment is found in nearly every photo


# ---------------------------------------------------------------------------------------------------
# Bad uploads


@pytest.mark.parametrize("name", list(upload_cases()))
def test_each_kind_of_upload_gives_an_image_or_a_clear_error(name):
    case = upload_cases()[name]
    if case.expected_error is None:
        conversion = photo_steps(case.data)
        assert not conversion.whole_photo
        left, top, right, bottom = content_bounds(conversion.image)
        assert bottom - top == 28 and 18 <= right - left <= 27  # the T-shirt's own proportions
        return
    with pytest.raises(ImageError, match="Received: ") as caught:
        photo_steps(case.data)
    assert case.expected_error in str(caught.value)


def test_an_animated_gif_is_classified_by_its_first_frame():
    first_frame = photo_to_fashion_mnist(encode(garment_photo(), "PNG"))
    np.testing.assert_array_equal(photo_to_fashion_mnist(upload_cases()["animated GIF"].data), first_frame)


def test_the_byte_limit_matches_the_upload_limit_of_the_streamlit_config():
    config = (Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text()
    assert f"maxUploadSize = {preprocess.MAX_UPLOAD_BYTES // (1024 * 1024)}\n" in config


# ---------------------------------------------------------------------------------------------------
# Drawings


def canvas_with_strokes() -> np.ndarray:
    """A 280x280 RGBA canvas: an opaque black background with a white dress-like outline, off centre."""
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    points = np.array([(40, 20), (100, 20), (130, 200), (10, 200)], dtype=np.int32)
    cv2.polylines(canvas, [points], isClosed=True, color=(255, 255, 255, 255), thickness=12)
    return canvas


def test_a_drawing_is_cropped_scaled_to_fill_the_frame_centred_and_softened():
    image = drawing_to_fashion_mnist(canvas_with_strokes())
    left, top, right, bottom = content_bounds(image > 20)
    assert (top, bottom) == (0, 28)
    assert abs((left + right) / 2 - 14) <= 1
    assert image.max() >= 200
    levels = np.unique(image)
    assert ((levels > 30) & (levels < 200)).sum() >= 10  # soft edges, not two-level strokes


def test_a_transparent_canvas_with_strokes_counts_only_the_strokes():
    canvas = canvas_with_strokes()
    canvas[..., 3] = np.where(canvas[..., 0] > 0, 255, 0)  # strokes opaque, background transparent
    np.testing.assert_array_equal(drawing_to_fashion_mnist(canvas), drawing_to_fashion_mnist(canvas_with_strokes()))


@pytest.mark.parametrize(
    "canvas", [np.zeros((280, 280, 4), np.uint8), np.full((280, 280, 4), (0, 0, 0, 255), np.uint8)]
)
def test_a_blank_canvas_says_to_draw_first(canvas):
    with pytest.raises(ImageError, match="The canvas is blank"):
        drawing_to_fashion_mnist(canvas)


def test_a_canvas_of_the_wrong_shape_is_refused():
    with pytest.raises(ImageError, match=r"Received: shape=\(280, 280, 2\)"):
        drawing_to_fashion_mnist(np.zeros((280, 280, 2), np.uint8))
