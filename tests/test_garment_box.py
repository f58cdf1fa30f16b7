"""The garment box (GrabCut's rectangle mode) and the check for a person wearing the garment."""

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fashion_core.photo_quality import find_person_wearing, looks_like_person_wearing, skin_mask
from fashion_core.preprocess import ImageError, garment_mask_in_box, photo_steps, photo_to_fashion_mnist

DEV_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "realphotos-dev"
SKIN = (224, 172, 140)


def person_photo(skin=SKIN, shirt=(40, 60, 160), trousers=(30, 30, 30), arms=True, background=200) -> np.ndarray:
    """A catalog-like shot, 200x300: head and neck, a shirt, bare arms beside it, trousers below."""
    image = np.full((300, 200, 3), background, np.uint8)
    cv2.ellipse(image, (100, 50), (22, 30), 0, 0, 360, skin, -1)
    cv2.rectangle(image, (92, 75), (108, 88), skin, -1)
    cv2.rectangle(image, (60, 85), (140, 180), shirt, -1)
    if arms:
        cv2.rectangle(image, (40, 90), (60, 170), skin, -1)
        cv2.rectangle(image, (140, 90), (160, 170), skin, -1)
    cv2.rectangle(image, (70, 180), (130, 290), trousers, -1)
    return image


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


SHIRT_BOX = (58, 83, 142, 182)


def test_grabcut_in_a_box_keeps_the_garment_and_nothing_outside_the_box():
    small = cv2.resize(person_photo(), (75, 112), interpolation=cv2.INTER_AREA)
    box = (20, 30, 55, 70)
    mask = garment_mask_in_box(small, box)
    outside = np.ones_like(mask)
    outside[30:70, 20:55] = False
    assert not mask[outside].any()
    shirt = np.zeros_like(mask)
    shirt[33:66, 23:52] = True  # the shirt's inside, 1 pixel in from its edges at this size
    assert mask[shirt].mean() > 0.95


def test_a_box_crops_to_the_shirt_where_the_automatic_mask_takes_the_whole_person():
    data = png(person_photo())
    automatic = photo_steps(data)
    boxed = photo_steps(data, box=SHIRT_BOX)
    left, top, right, bottom = automatic.crop_box
    assert top < 30 and bottom > 280  # head to feet
    left, top, right, bottom = boxed.crop_box
    assert (abs(left - 60), abs(top - 85), abs(right - 141), abs(bottom - 181)) <= (3, 3, 3, 3)
    assert not boxed.whole_photo
    np.testing.assert_array_equal(photo_to_fashion_mnist(data, SHIRT_BOX), boxed.image)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 12, 100), r"at least 4x4 pixels of the 200x300 photo.*Received: box=\(10, 10, 12, 100\)"),
        ((300, 400, 500, 600), r"at least 4x4 pixels"),
        (("a", 1, 2, 3), r"must be four numbers \(x0, y0, x1, y1\). Received: box=\('a', 1, 2, 3\)"),
    ],
)
def test_a_box_outside_the_photo_or_too_small_is_refused_with_a_reason(box, message):
    with pytest.raises(ImageError, match=message):
        photo_steps(png(person_photo()), box=box)


@pytest.mark.parametrize(
    "photo",
    [
        person_photo(),
        person_photo(skin=(120, 80, 60), shirt=(200, 40, 40), trousers=(40, 40, 120)),
        person_photo(arms=False, background=240),
    ],
    ids=["light skin", "dark skin, red shirt", "sleeves on a white background"],
)
def test_a_person_wearing_a_shirt_is_found_and_the_box_leaves_out_head_and_trousers(photo):
    found = find_person_wearing(photo)
    assert found is not None and looks_like_person_wearing(photo)
    x0, y0, x1, y1 = found.head_box
    assert (75 <= x0 <= 80) and (118 <= x1 <= 125) and y0 <= 22 and 80 <= y1 <= 90
    x0, y0, x1, y1 = found.suggested_box
    assert 55 <= x0 <= 62 and 83 <= y0 <= 90 and 138 <= x1 <= 145 and 175 <= y1 <= 185


def test_bare_arms_are_told_apart_from_sleeves():
    assert find_person_wearing(person_photo()).arms
    assert not find_person_wearing(person_photo(arms=False)).arms


def test_a_garment_laid_flat_is_no_person():
    flat = np.full((300, 200, 3), 200, np.uint8)
    cv2.rectangle(flat, (40, 60), (160, 200), (40, 60, 160), -1)
    cv2.circle(flat, (100, 30), 15, SKIN, -1)  # a skin-coloured label above it, too small and off the garment
    assert not looks_like_person_wearing(flat)


def test_skin_tones_are_skin_and_clothes_colours_are_not():
    swatches = np.array([[[224, 172, 140], [120, 80, 60], [40, 60, 160], [30, 30, 30], [250, 250, 250]]], np.uint8)
    big = cv2.resize(swatches, (50, 10), interpolation=cv2.INTER_NEAREST)
    assert skin_mask(big)[:, ::10].tolist() == [[True, True, False, False, False]] * 10


def test_real_home_photos_of_garments_laid_flat_are_no_person():
    """Test that the dev photos (garments laid flat or hung, nobody wearing them) are not taken for a person."""
    from fashion_core.preprocess import decode_photo

    with open(DEV_PHOTOS / "MANIFEST.tsv", newline="") as manifest:
        paths = [row["relative_path"] for row in csv.DictReader(manifest, delimiter="\t")][::6]
    found = [path for path in paths if looks_like_person_wearing(decode_photo((DEV_PHOTOS / path).read_bytes())[0])]
    assert len(paths) == 20 and found == []
