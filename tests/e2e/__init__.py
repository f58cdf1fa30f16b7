"""Browser tests of the app (Playwright and Debian's Chromium); see `conftest.py`."""
