"""Browser test of training: start, live curves, Stop, Save, and the model in the pickers."""

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    alerts,
    exceptions,
    keyed,
    main_area,
    metric_value,
    open_page,
    press_on_slider,
    selector,
    sidebar_model_options,
    sidebar_model_picker,
    slider_input,
    wait_for_app_run,
)

pytestmark = pytest.mark.e2e

MODEL_NAME = "e2e-quick"
LIVE_CURVE_SELECTOR = ".st-key-train_live_loss .js-plotly-plot"
TRAINING_TIMEOUT_MS = 180_000


def curve_end(page) -> float:
    """Where the live loss chart's training curve ends now, in epochs (0 before it is drawn).

    The end, not the number of points: a live curve is binned to at most 300 points, so its point
    count stops growing (and can shrink) once a run passes 300 batches, while its end keeps moving on.
    """
    return page.evaluate(
        """(selector) => {
            const plot = document.querySelector(selector);
            const x = plot && plot._fullData ? plot._fullData[0].x : [];
            return x.length ? x[x.length - 1] : 0;
        }""",
        LIVE_CURVE_SELECTOR,
    )


def wait_for_longer_curve(page, than: float) -> float:
    """Waits until the live chart has been redrawn with its curve ending beyond `than` epochs; returns the new end."""
    page.wait_for_function(
        """([selector, than]) => {
            const plot = document.querySelector(selector);
            const x = plot && plot._fullData ? plot._fullData[0].x : [];
            return x.length > 0 && x[x.length - 1] > than;
        }""",
        arg=[LIVE_CURVE_SELECTOR, than],
        timeout=TRAINING_TIMEOUT_MS,
    )
    return curve_end(page)


def test_a_quick_run_shows_live_curves_stops_saves_and_can_be_picked(page, app_url, user_models_dir, screenshot):
    """Test that a Quick run on 2500 images updates its curves, stops, saves, and is offered for predictions."""
    open_page(page, app_url, "train")
    main = main_area(page)
    expect(main.get_by_role("combobox", name="Preset", exact=True)).to_have_value("Quick")
    architecture = main.get_by_role("combobox", name="Architecture", exact=True).input_value().split(":")[0]
    press_on_slider(page, "Training images (stratified subset)", "Home")  # 500 images, the minimum
    for _ in range(4):  # then 2500: 100 epochs of them last a minute or more, long enough to watch and stop
        press_on_slider(page, "Training images (stratified subset)", "ArrowRight")
    press_on_slider(page, "Epochs", "End")
    expect(slider_input(page, "Training images (stratified subset)")).to_have_value("2500")
    page.wait_for_function(  # the learning-rate plan beside Start is redrawn for the run's 100 epochs
        """(selector) => {
            const plot = document.querySelector(selector);
            return plot && plot._fullLayout && plot._fullLayout.xaxis.range[1] === 100;
        }""",
        arg=".st-key-train_learning_rate_plan .js-plotly-plot",
        timeout=30_000,
    )

    main.get_by_role("button", name="Start training").click()
    first = wait_for_longer_curve(page, 0)
    second = wait_for_longer_curve(page, first)
    wait_for_longer_curve(page, second)  # three draws: the curves grew twice
    expect(metric_value(main, "Status")).to_have_text("running")
    expect(main.get_by_text("Epoch ", exact=False).first).to_be_visible()
    screenshot(page, "1-running")

    keyed(main, "train_stop").get_by_role("button").click()
    stopped = alerts(page, "info").filter(has_text="Stopped on request")
    expect(stopped).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    wait_for_app_run(page)
    expect(metric_value(main, "Test accuracy")).to_have_text(re.compile(r"^\d+\.\d\d%$"))
    expect(keyed(main, "train_final_loss").locator(".js-plotly-plot")).to_be_visible()
    screenshot(page, "2-stopped")

    name_box = main.get_by_role("textbox", name="Model name")
    name_box.fill(MODEL_NAME)
    name_box.press("Enter")
    wait_for_app_run(page)
    main.get_by_role("button", name="Save to the registry").click()
    wait_for_app_run(page)
    expect(alerts(page, "success").filter(has_text=f"Saved as {MODEL_NAME}")).to_be_visible()
    assert (user_models_dir / MODEL_NAME / "model.keras").is_file()

    main.get_by_role("button", name=f"Use {MODEL_NAME} for predictions").click()
    wait_for_app_run(page)
    expect(page).to_have_url(f"{app_url}/predict")
    expect(sidebar_model_picker(page)).to_have_value(MODEL_NAME)
    assert {"default", MODEL_NAME} <= set(sidebar_model_options(page))
    expect(exceptions(page)).to_have_count(0)

    open_page(page, app_url, "models")
    table = main_area(page).locator(selector("stDataFrame")).first
    row = table.locator("tr").filter(has=page.locator('td[aria-colindex="1"]', has_text=re.compile(f"^{MODEL_NAME}$")))
    expect(row.locator('td[aria-colindex="3"]')).to_have_text(architecture)  # the Quick preset's
    expect(exceptions(page)).to_have_count(0)
