"""The app as a server: cold start in Chromium, and peak memory during a default training run.

Cold start is the time from launching `streamlit run` to the Home page showing the model card in
headless Chromium (the browser is started beforehand, as a visitor's would be). Peak memory is
the Streamlit process's high-water resident set size (`VmHWM` in /proc) while the Train page runs
the default configuration, sampled after its first training batches, then the run is stopped.
Run: `python -m benchmarks.server` (needs Chromium: /usr/bin/chromium, or the path in FASHION_STUDIO_CHROMIUM).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FASHION_STUDIO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"Streamlit did not answer {url}/_stcore/health within {timeout} s")


def server_command(port: int, cpus: str | None = None) -> list[str]:
    """`streamlit run` on 127.0.0.1:`port`, pinned to `cpus` with `taskset` (which execs it) when given."""
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false"]  # fmt: skip
    return (["taskset", "-c", cpus] if cpus else []) + command


@contextmanager
def streamlit_server(models_dir: str, cpus: str | None = None, env: dict[str, str] | None = None):
    """A `streamlit run` of the app on a free local port; yields `(process, url, launched_at)`, stops it afterwards.

    `env` adds environment variables (`FASHION_STUDIO_SERVING=tensorflow`, say).
    """
    port = free_port()
    env = {**os.environ, "FASHION_STUDIO_MODELS_DIR": models_dir, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    launched_at = time.perf_counter()
    process = subprocess.Popen(server_command(port, cpus), cwd=REPO_ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        yield process, f"http://127.0.0.1:{port}", launched_at
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set size so far, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No VmHWM for process {pid}")


def measure_cold_start(browser) -> dict:
    """Seconds from `streamlit run` to a healthy server and to the Home page's model card."""
    page = browser.new_page()
    with tempfile.TemporaryDirectory() as models_dir, streamlit_server(models_dir) as (_, url, started):
        wait_for_health(url)
        healthy = time.perf_counter() - started
        page.goto(url)
        page.get_by_text("Model in use").wait_for(timeout=120_000)
        rendered = time.perf_counter() - started
    page.close()
    return {"to_health_s": round(healthy, 2), "to_home_rendered_s": round(rendered, 2)}


def start_training(page) -> None:
    """Clicks Start training until the run's Stop button shows (a click during a rerun can start nothing)."""
    for _ in range(3):
        page.get_by_role("button", name="Start training").click(timeout=120_000)
        try:
            page.get_by_role("button", name="Stop").wait_for(timeout=20_000)
            return
        except Exception:
            continue
    raise TimeoutError("Three clicks on Start training started no run")


def measure_training_memory(browser, train_seconds: float = 90) -> dict:
    """Peak RSS of the server while the Train page runs its default preset for `train_seconds`, or to its end
    when it ends sooner (the Quick preset takes about 45 s on a fast 2-core machine)."""
    page = browser.new_page()
    with tempfile.TemporaryDirectory() as models_dir, streamlit_server(models_dir) as (process, url, _):
        wait_for_health(url)
        page.goto(f"{url}/train")
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=120_000)
        start_training(page)
        idle_or_loading = peak_rss_mb(process.pid)
        stop = page.get_by_role("button", name="Stop")
        deadline = time.monotonic() + train_seconds
        while time.monotonic() < deadline and stop.is_visible():
            time.sleep(1)
        if stop.is_visible():
            stop.click()
        page.get_by_text("Test accuracy").first.wait_for(timeout=300_000)
        peak = peak_rss_mb(process.pid)
    page.close()
    return {
        "peak_rss_mb_before_training": round(idle_or_loading, 1),
        "peak_rss_mb_during_default_training": round(peak, 1),
        "trained_seconds_before_stop": train_seconds,
    }


def measure_server(with_training: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            results = {"cold_start": measure_cold_start(browser)}
            if with_training:
                results["training_memory"] = measure_training_memory(browser)
        finally:
            browser.close()
    return results


if __name__ == "__main__":
    print(json.dumps(measure_server(), indent=2))
