"""The entry's pages run through `st.navigation`, never as Streamlit's legacy `pages/` app."""

import ast
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE_FILES = sorted(path for path in (REPO_ROOT / "pages").glob("*.py") if path.name != "common.py")


@pytest.fixture
def fresh_pages_manager_state():
    """Streamlit's class-level flag as a new server has it, restored afterwards."""
    saved = PagesManager.uses_pages_directory
    PagesManager.uses_pages_directory = None
    yield
    PagesManager.uses_pages_directory = saved


def test_streamlit_still_detects_the_pages_folder_so_the_workaround_is_needed(fresh_pages_manager_state):
    """Test that a new server still takes `pages/` for a legacy multipage app.

    When this fails, Streamlit no longer looks for `pages/`: delete `legacy_pages_run` and the
    `app_page` decorator's rerun in `pages/common.py`, and this test. The browser tests in
    `tests/e2e/test_e2e_deep_link.py` check what the workaround does on a fresh server.
    """
    PagesManager(str(REPO_ROOT / "streamlit_app.py"))
    assert PagesManager.uses_pages_directory is True


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda path: path.name)
def test_every_page_is_one_decorated_page_function_called_at_the_bottom(path):
    """Test that a page module only defines things, and its last statement calls its `*_page()` function."""
    module = ast.parse(path.read_text())
    *definitions, last = module.body[1:] if ast.get_docstring(module) else module.body
    page_functions = [
        node
        for node in definitions
        if isinstance(node, ast.FunctionDef)
        and node.name.endswith("_page")
        and any(getattr(decorator, "id", None) == "app_page" for decorator in node.decorator_list)
    ]
    assert [function.name for function in page_functions] == [path.stem + "_page"]
    assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
    assert last.value.func.id == path.stem + "_page"
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
    loose = [ast.unparse(node)[:60] for node in definitions if not isinstance(node, allowed)]
    assert not loose, f"{path.name} runs code at import time: {loose}"


def test_importing_the_shared_glue_never_reruns():
    """Test that `pages/common.py` has no top-level statement that calls Streamlit (a rerun at import time)."""
    module = ast.parse((REPO_ROOT / "pages" / "common.py").read_text())
    calls = [
        ast.unparse(node)[:60]
        for node in module.body
        if isinstance(node, ast.Expr | ast.If) and "st." in ast.unparse(node)
    ]
    assert not calls
