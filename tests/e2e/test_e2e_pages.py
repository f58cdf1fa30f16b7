"""Browser tests: every page opens cleanly, and Home shows the model in use."""

import json

import pytest
from playwright.sync_api import expect

from fashion_core.data import CLASS_NAMES
from fashion_core.metadata import ModelMetadata
from tests.e2e.helpers import (
    REPO_ROOT,
    alerts,
    exceptions,
    main_area,
    open_page,
    selector,
    sidebar,
    sidebar_model_picker,
)

pytestmark = pytest.mark.e2e

SHIPPED_METADATA = REPO_ROOT / "model_artifacts" / "default" / "metadata.json"

# url path -> the page's title (its first heading). The path is the file name (`pages/predict.py` -> `/predict`).
PAGES = {
    "": "Fashion-MNIST Studio",
    "predict": "Predict",
    "gradcam": "Grad-CAM viewer",
    "dataset": "Dataset",
    "evaluation": "Evaluation",
    "train": "Train a model",
    "models": "Models",
}


@pytest.mark.parametrize("path", list(PAGES), ids=[path or "home" for path in PAGES])
def test_every_page_opens_without_an_error(page, app_url, path):
    """Test that a page opened by its URL shows its title, no exception and no error message."""
    open_page(page, app_url, path)
    nav_link = sidebar(page).locator(f'{selector("stSidebarNavLink")}[href="{app_url}/{path}"]')
    expect(nav_link).to_have_count(1)
    assert page.url.split("?")[0].rstrip("/") == f"{app_url}/{path}".rstrip("/"), "the app redirected elsewhere"
    expect(main_area(page).locator("h1").first).to_have_text(PAGES[path])
    expect(exceptions(page)).to_have_count(0)
    expect(alerts(page, "error")).to_have_count(0)


def test_home_shows_the_card_of_the_shipped_model(page, app_url):
    """Test that Home shows the shipped model's accuracy, its per-class bars and the sidebar picker."""
    metadata = json.loads(SHIPPED_METADATA.read_text())
    open_page(page, app_url)
    expect(main_area(page).locator("h3").filter(has_text="Model in use")).to_have_text("Model in use: default")
    accuracy = main_area(page).locator(selector("stMetric")).filter(has_text="Test accuracy")
    # flip-averaged, as the app predicts with a model trained with flips
    expect(accuracy.locator(selector("stMetricValue"))).to_have_text(
        f"{ModelMetadata.from_dict(metadata).reported_test_accuracy:.2%}"
    )
    bars = main_area(page).locator(".st-key-home_per_class").locator(selector("stProgress"))
    expect(bars).to_have_count(len(CLASS_NAMES))
    lowest_first = sorted(metadata["per_class_accuracy"].items(), key=lambda item: item[1])
    for bar, (name, accuracy) in zip(bars.all(), lowest_first):
        expect(bar).to_contain_text(f"{name} · {accuracy:.1%}")
    expect(main_area(page).locator(selector("stPlotlyChart"))).to_have_count(0)  # no Plotly on the first page
    expect(sidebar_model_picker(page)).to_have_value("default")
    expect(exceptions(page)).to_have_count(0)
