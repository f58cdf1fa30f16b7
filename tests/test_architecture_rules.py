"""Rules the design fixes: the library never imports Streamlit, only the modules declared to need it
import TensorFlow, pages never render raw HTML."""

import ast
import subprocess
import sys
from pathlib import Path

from fashion_core import needs_tensorflow
from tests.conftest import REPO_ROOT

LIBRARY_MODULES = sorted(
    ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
    for path in (REPO_ROOT / "fashion_core").rglob("*.py")
    if path.name != "__main__.py"
)
APP_FILES = [REPO_ROOT / "streamlit_app.py", *sorted((REPO_ROOT / "pages").glob("*.py"))]


def test_importing_every_library_module_never_imports_streamlit():
    script = (
        "import importlib, sys\n"
        f"for name in {LIBRARY_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print('streamlit' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


LIGHT_MODULES = [name for name in LIBRARY_MODULES if not needs_tensorflow(name)]


def test_the_light_modules_import_without_tensorflow():
    """Test that importing every module not in `fashion_core.TENSORFLOW_MODULES` leaves TensorFlow and Keras out.

    They are imported one after another in one fresh interpreter; the first that pulls TensorFlow in is named.
    """
    script = (
        "import importlib, sys\n"
        f"for name in {LIGHT_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "    if {'tensorflow', 'keras'} & set(sys.modules):\n"
        "        print(name)\n"
        "        break\n"
        "else:\n"
        "    print('none')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    culprit = result.stdout.strip().splitlines()[-1]
    assert culprit == "none", f"{culprit} imports TensorFlow: import it inside the function, or declare the module"


def test_the_heavy_modules_are_the_ones_declared():
    """Test that every module in `TENSORFLOW_MODULES` exists, so the list says nothing stale."""
    from fashion_core import TENSORFLOW_MODULES

    missing = [name for name in TENSORFLOW_MODULES if not any(module.startswith(name) for module in LIBRARY_MODULES)]
    assert missing == []


def _unsafe_html_calls(path: Path) -> list[int]:
    """Line numbers of calls that pass `unsafe_allow_html=True`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "unsafe_allow_html"
        and not (isinstance(keyword.value, ast.Constant) and not keyword.value.value)
    ]


def test_no_page_renders_html_unsafely():
    offenders = {str(path.relative_to(REPO_ROOT)): lines for path in APP_FILES if (lines := _unsafe_html_calls(path))}
    assert offenders == {}


def test_every_page_file_is_in_the_navigation():
    entry = (REPO_ROOT / "streamlit_app.py").read_text(encoding="utf-8")
    pages = [path for path in APP_FILES[1:] if path.name != "common.py"]
    missing = [path.name for path in pages if f'"pages/{path.name}"' not in entry]
    assert missing == []
