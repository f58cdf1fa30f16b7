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


ANSWER_SCRIPT = """
import re
import sys
from pathlib import Path
from streamlit.testing.v1 import AppTest

app = AppTest.from_file({entry!r}, default_timeout=120)
app.run()
app.switch_page("pages/predict.py")
app.run()
photo = Path({photo!r})
app.file_uploader(key="predict_upload").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
assert not app.exception, [exception.value for exception in app.exception]
print([label for element in app.html for label in re.findall("<dt[^>]*>([^<]*)</dt>", element.value)])
print(sorted({{"tensorflow", "keras", "pandas", "sqlalchemy"}} & set(sys.modules)))
"""


def test_a_first_answer_imports_neither_tensorflow_nor_pandas_nor_the_photo_store():
    """Test that a fresh process showing Home, then Predict with one photo's answer, has imported neither
    TensorFlow, pandas nor SQLAlchemy: they are a second or more of a first visitor's wait, and the answer
    needs none of them (pandas and the store load when someone saves a photo, or when the server is quiet)."""
    photo = REPO_ROOT / "assets" / "examples" / "coat.jpg"
    script = ANSWER_SCRIPT.format(entry=str(REPO_ROOT / "streamlit_app.py"), photo=str(photo))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    labels, heavy = result.stdout.strip().splitlines()[-2:]
    assert labels == "['Predicted class', 'Confidence']"
    assert heavy == "[]"


GRADCAM_SCRIPT = """
import sys
from streamlit.testing.v1 import AppTest

app = AppTest.from_file({entry!r}, default_timeout=120)
app.session_state["gradcam_method"] = "Occlusion"
app.switch_page("pages/gradcam.py")
app.run()
assert not app.exception, [exception.value for exception in app.exception]
print([caption for element in app.image for caption in element.captions][:3])
print(app.selectbox(key="gradcam_layer").options)
print(sorted({{"tensorflow", "keras"}} & set(sys.modules)))
"""


def test_the_grad_cam_page_explains_with_occlusion_without_importing_tensorflow():
    """Test that a fresh process opening the Grad-CAM page on Occlusion draws its maps and lists the model's
    layers without importing TensorFlow: only the gradient methods need it."""
    script = GRADCAM_SCRIPT.format(entry=str(REPO_ROOT / "streamlit_app.py"))
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    captions, layers, heavy = result.stdout.strip().splitlines()[-3:]
    assert captions == "['What the model sees (28x28)', 'Heat map', 'Overlay']"
    assert layers == "['conv1a', 'conv1b', 'conv2a', 'conv2b', 'conv3a', 'conv3b']"
    assert heavy == "[]"
