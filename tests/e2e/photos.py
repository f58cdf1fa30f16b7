"""The real clothing photos of `../shared/realphotos-dev` that the browser tests upload."""

import csv
from pathlib import Path

import pytest

from tests.e2e.helpers import REPO_ROOT

REAL_PHOTOS_DIR = REPO_ROOT.parent / "shared" / "realphotos-dev"


def dev_photo(class_name: str, position: int = 0) -> Path:
    """The `position`-th photo of a class (`tshirt_top`, `trouser`, `dress`, `coat`, `shirt`) in MANIFEST.tsv."""
    manifest = REAL_PHOTOS_DIR / "MANIFEST.tsv"
    if not manifest.is_file():
        pytest.skip(f"The real photos are not there: {manifest} is missing.")
    with manifest.open(newline="") as file:
        rows = csv.DictReader(file, delimiter="\t")
        paths = [row["relative_path"] for row in rows if row["class_name"] == class_name]
    return REAL_PHOTOS_DIR / paths[position]
