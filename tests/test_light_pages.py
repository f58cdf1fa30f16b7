"""Home, Dataset, Evaluation, Photos and Models render from metadata, stored predictions and LiteRT: no TensorFlow."""

import subprocess
import sys

from tests.conftest import REPO_ROOT

SCRIPT = """
import sys
from streamlit.testing.v1 import AppTest

app = AppTest.from_file({entry!r}, default_timeout=120)
app.run()
shown = [app.title[0].value]
for page in ("pages/dataset.py", "pages/evaluation.py", "pages/photos.py", "pages/models.py"):
    app.switch_page(page)
    app.run()
    assert not app.exception, [exception.value for exception in app.exception]
    shown.append(app.title[0].value)
    if page == "pages/evaluation.py":  # every section, the mistakes with their maps
        app.session_state["evaluation_maps"] = True
        for section in ("Mistakes", "Confidence", "Real photos"):
            app.session_state["evaluation_section"] = section
            app.run()
            assert not app.exception, [exception.value for exception in app.exception]
            shown.append((section, len(app.image) > 0, len(app.get("plotly_chart")) > 0))
print(shown)
print(sorted({{"tensorflow", "keras"}} & set(sys.modules)))
"""


def test_the_pages_that_need_no_gradients_render_without_importing_tensorflow():
    """Test that a fresh process showing Home, Dataset, Evaluation (each of its sections, the mistakes with their
    maps), Photos and Models never imports TensorFlow."""
    script = SCRIPT.format(entry=str(REPO_ROOT / "streamlit_app.py"))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    titles, heavy = result.stdout.strip().splitlines()[-2:]
    assert titles == (
        "['Fashion-MNIST Studio', 'Dataset', 'Evaluation', ('Mistakes', True, False), ('Confidence', False, True), "
        "('Real photos', False, False), 'Photos', 'Models']"
    )
    assert heavy == "[]"
