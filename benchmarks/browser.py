"""Speed as a user meets it: a real `streamlit run`, Debian's Chromium, and the waits of issue 17.

One run measures, on a fresh server each time, with every core and then pinned to one (`taskset -c 0`,
the closest this machine gets to Community Cloud's fraction of a core):

- cold start: `streamlit run` to a healthy server, and to the Home page's model card on screen;
- each page of the sidebar opened the first time, then again (a click in the sidebar, as a user does,
  until the run has ended, everything is drawn and no "Loading..." message is left), and for the
  Grad-CAM viewer also until it can be used (the image's prediction shown while TensorFlow loads);
- upload to answer for real photos from `../shared/realphotos-dev`, added one after another, until
  the run each starts has drawn the page ("Predicted class" and, from the second, the table);
- eight browser sessions at once, three uploads each, three times over: median, p95, exceptions, lost
  uploads, and the server's part of each answer (from the upload request leaving the browser to the
  end of the run it started coming back, on the browser's network clock, without the tab's rendering);
- the server's resident memory after start, after the first prediction and during a training run,
  and whether TensorFlow's library is mapped into it (`/proc/PID/maps`) before the first prediction;
- the Train page's Quick preset watched live in the browser against the same preset on the command
  line, three pairs in turn: images per second over the first epoch (tracing and validation included
  on both sides) and over the second alone;
- the Evaluation page's first open for a model just trained there: the last run saved from the Train
  page, picked with its "Use ... for predictions" button, then Evaluation from the sidebar;
- a first visitor on a fresh server (Home, then Predict, one photo): seconds from launch to the answer,
  and the server's memory then, answered by LiteRT (the app's way) and by TensorFlow for comparison.

The reference for the cold-start goal is a bare `python -c "import tensorflow"`, timed here too.
Run: `python -m benchmarks --only browser` (writes `benchmarks/results.json`), or
`python -m benchmarks.browser` to print the figures. Needs /usr/bin/chromium. About 10 to 20 minutes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from benchmarks.server import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_health

REPO_ROOT = Path(__file__).resolve().parent.parent
PHOTOS_DIR = REPO_ROOT.parent / "shared" / "realphotos-dev"
PHOTOS_IN_A_ROW = 6
SESSIONS, UPLOADS_PER_SESSION, BURSTS = 8, 3, 3
BUDGET_S = 1500  # the whole benchmark; a part that would start after it is skipped and says so
TRAINING_PAIRS = 3  # Train page runs, each followed by the same preset on the command line
PAGE_TIMEOUT_MS = 60_000
UPLOAD_TIMEOUT_MS = 30_000  # an answer later than this counts as a lost upload
TRAIN_TIMEOUT_S = 300
# How often the training measurement reads the page's progress line. The line changes every 2 s
# (`pages.train.LIVE_PROGRESS_EVERY_S`) and each reading carries the server's own counts, so reading
# more often adds no precision; measured over 20 s of a Quick run, reading every 0.25 s cost the
# machine about 0.014 of a core more than every second (Chromium and Playwright), taken from training.
PROGRESS_READ_EVERY_S = 1.0
QUIET_WARMUP_S = 6  # a quiet second, then the background loads of the other pages' modules and data
# The Quick preset's batch size (`fashion_core.training.PRESETS`, not imported: it would load TensorFlow here).
QUICK_BATCH_SIZE = 128

# Records each change of Streamlit's run state ("running", "notRunning") with its time. It watches the
# whole document, not the app's root element: React may replace that element (seen under load), and an
# observer of the old one would then miss every later run.
WATCH_RUNS = """() => {
    if (window.__runs) return;
    window.__runs = [];
    const state = () => document.querySelector('[data-testid="stApp"]')?.getAttribute('data-test-script-state');
    new MutationObserver(() => window.__runs.push([state(), performance.now()]))
        .observe(document.body, {attributes: true, subtree: true, attributeFilter: ['data-test-script-state']});
}"""
# The page a sidebar click asked for has run: the run state changed after the click (`since`), or the
# clicked link (`href`) is the current page and the main area no longer shows what it showed before the
# click (`before`). The second is for a run that starts and ends within one frame of the page: its run
# state then never changes in the page (seen on a fresh server's first click on Predict, about one
# click in six), though the page did run and is drawn.
PAGE_RAN = """({since, href, before}) => {
    if ((window.__runs || []).some(([state, at]) => at >= since)) return true;
    const current = document.querySelector('[data-testid="stSidebarNav"] a[aria-current="page"]');
    const main = document.querySelector('[data-testid="stMain"]');
    return !!current && current.getAttribute('href') === href && !!main && main.innerText !== before;
}"""
# A script run has ended since `since` (the page's `performance.now()`), with the run-state watcher installed.
RAN_SINCE = """(since) => (window.__runs || []).some(([state, at]) => state === 'notRunning' && at >= since)"""
# The page a click asked for has run and ended (a click during a run continues that run, so its start may
# be earlier than the click; a run within one frame shows no state change, see PAGE_RAN), everything is
# drawn, and nothing says it is still loading (the model, TensorFlow or the dataset).
READY = """({since, href, before}) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
    if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    const main = document.querySelector('[data-testid="stMain"]');
    const runs = (window.__runs || []).filter(([state, at]) => at >= since);
    if (!runs.some(([state]) => state === 'notRunning')) {  // no end seen: only a run within one frame
        const current = document.querySelector('[data-testid="stSidebarNav"] a[aria-current="page"]');
        const withinOneFrame = !runs.length && !!current && current.getAttribute('href') === href;
        if (!withinOneFrame || !main || main.innerText === before) return false;
    }
    if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"], [data-testid="stSpinner"]'))
        return false;
    return !/Loading (the model|TensorFlow|Fashion-MNIST)/i.test(main ? main.innerText : '');
}"""
# The Predict page holds `files` photos and shows the answer for the photo `name`, and is done: no run
# going, nothing stale. The details show the photo added last; with one photo there is no "Details of"
# box. This does not rely on seeing the run start: a run served from the caches can start and end
# within one frame, and the run state then never changes in the page.
ANSWERED = """({name, files}) => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
    if (app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"], [data-testid="stSpinner"]'))
        return false;
    const main = document.querySelector('[data-testid="stMain"]');
    const labels = [...main.querySelectorAll('[data-testid="stHtml"] dt')];
    const answer = labels.some((label) => label.textContent === 'Predicted class');
    const boxes = [...main.querySelectorAll('[data-testid="stSelectbox"]')];
    const details = boxes.find((box) => /^Details of/.test(box.innerText));
    const shown = details ? [details.innerText, ...[...details.querySelectorAll('input')].map((i) => i.value)] : [];
    if (main.querySelectorAll('[data-testid="stFileChip"]').length !== files) return false;
    return answer && (files === 1 || shown.some((text) => text.includes(name)));
}"""
PROGRESS = re.compile(r"Epoch (\d+) of (\d+), batch (\d+) of (\d+) · ([\d,]+) images/s")
EPOCH_RATE_LINE = re.compile(r"^Epoch (\d+): ([\d,]+\.\d) images/s$", re.MULTILINE)  # the CLI's, per epoch


# ---------------------------------------------------------------------------------------------------
# The server and what /proc says about it


def resident_mb(pid: int) -> float:
    """The process's resident set size now, in MB (`VmRSS`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"No VmRSS for process {pid}")


def tensorflow_loaded(pid: int) -> bool:
    """Whether TensorFlow's shared libraries are mapped into the process (it has imported TensorFlow)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return "libtensorflow" in maps or "_pywrap_tensorflow" in maps


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far, in seconds (`/proc/PID/stat`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chromium_cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the running Chromium processes, by kind (`browser`, `renderer`,
    `gpu-process`, `utility`): where the browser's share of the machine goes."""
    used: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            if "chrom" in Path(command.split("\0", 1)[0]).name:
                kind = re.search(r"--type=([a-z-]+)", command)
                key = kind.group(1) if kind else "browser"
                used[key] = used.get(key, 0.0) + cpu_seconds(int(entry.name))
        except OSError:  # the process ended while being read
            continue
    return used


def import_tensorflow_seconds() -> float:
    """Wall time of a bare `python -c "import tensorflow"`: the reference for the cold-start goal."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    return round(time.perf_counter() - started, 2)


def dev_photos() -> list[Path]:
    """The dev photos, one class after another (a stable order, so every run uploads the same files)."""
    with open(PHOTOS_DIR / "MANIFEST.tsv", newline="") as manifest:
        rows = list(csv.DictReader(manifest, delimiter="\t"))
    by_class: dict[str, list[Path]] = {}
    for row in rows:
        by_class.setdefault(row["class_name"], []).append(PHOTOS_DIR / row["relative_path"])
    photos = []
    for position in range(max(len(paths) for paths in by_class.values())):
        photos += [paths[position] for paths in by_class.values() if position < len(paths)]
    return photos


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] if ordered else None
    return {
        "median_s": round(statistics.median(ordered), 2) if ordered else None,
        "p95_s": None if p95 is None else round(p95, 2),
        "max_s": round(ordered[-1], 2) if ordered else None,
        "count": len(ordered),
    }


# ---------------------------------------------------------------------------------------------------
# What a user does in the browser


async def now(page) -> float:
    return await page.evaluate("() => performance.now()")


@dataclass(frozen=True)
class PageClick:
    """What a click on a sidebar link leaves to tell its run by: when it was made (the page's
    `performance.now()`), the link's `href`, and the main area's text just before it."""

    since: float
    href: str
    before: str

    def arg(self) -> dict:
        return {"since": self.since, "href": self.href, "before": self.before}


async def main_text(page) -> str:
    return await page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]')?.innerText ?? ''")


async def wait_until_ready(page, click: PageClick, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    await page.evaluate(WATCH_RUNS)
    await page.wait_for_function(READY, arg=click.arg(), timeout=timeout_ms, polling=50)


async def open_app(page, url: str) -> None:
    """Opens the app and waits for its first run (the run-state watcher needs the app's root element)."""
    await page.goto(url)
    await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    await page.evaluate(WATCH_RUNS)


async def sidebar_pages(page) -> dict[str, str]:
    """{title: link} of the sidebar's pages, in order (a link's text starts with its icon's name)."""
    links = await page.locator('[data-testid="stSidebarNav"] a').evaluate_all(
        "(links) => links.map((link) => [link.innerText.trim().split('\\n').pop().trim(), link.getAttribute('href')])"
    )
    return dict(links)


CLICK_RETRIES = []  # the page of every sidebar click after which the page did not run, made again


async def click_sidebar_link(page, href: str) -> tuple[PageClick, float]:
    """Clicks the sidebar's link to a page until the page runs; returns the click that worked and its
    `perf_counter()` time.

    A click after which the page does not run within 5 s (seen now and then in headless Chromium
    under load) is made again and noted in `CLICK_RETRIES`; the time is counted from the click that
    worked.
    """
    link = page.locator(f'[data-testid="stSidebarNav"] a[href="{href}"]')
    for _ in range(3):
        click = PageClick(await now(page), href, await main_text(page))
        started = time.perf_counter()
        await link.click()
        try:
            await page.wait_for_function(PAGE_RAN, arg=click.arg(), timeout=5_000, polling=50)
            return click, started
        except Exception:
            CLICK_RETRIES.append(href.rsplit("/", 1)[-1] or "home")
    raise TimeoutError(f"Three clicks on {href} did not run its page")


async def click_page(page, href: str) -> float:
    """Opens a page from the sidebar; seconds from the click until it is ready."""
    click, started = await click_sidebar_link(page, href)
    await wait_until_ready(page, click)
    return round(time.perf_counter() - started, 2)


# What a page shows once it can be used while a load still runs: the Grad-CAM viewer shows the image's
# prediction (and Occlusion works) while TensorFlow loads for the gradient methods.
USABLE_TEXT = {"Grad-CAM": "predicted:"}


async def click_page_until_usable(page, href: str, text: str) -> tuple[float, float]:
    """Opens a page from the sidebar; seconds from the click until `text` shows in it, and until it is ready."""
    click, started = await click_sidebar_link(page, href)
    await page.locator('[data-testid="stMain"]').get_by_text(text).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    usable = time.perf_counter() - started
    await wait_until_ready(page, click)
    return round(usable, 2), round(time.perf_counter() - started, 2)


async def upload_and_wait(page, photo: Path) -> float:
    """Adds one photo to the Predict page's uploader; seconds until the page shows that photo's answer.

    Photos pile up in the uploader as a user's would (the page then shows a table with a row per
    photo, and the details of the photo added last); removing each first was tried, but its click is
    lost now and then under load.
    """
    uploader = page.locator('[data-testid="stMain"] [data-testid="stFileUploader"]').first
    files = await uploader.locator('[data-testid="stFileChip"]').count() + 1
    started = time.perf_counter()
    await uploader.locator('input[type="file"]').set_input_files(str(photo))
    await page.wait_for_function(
        ANSWERED, arg={"name": photo.name, "files": files}, timeout=UPLOAD_TIMEOUT_MS, polling=50
    )
    return round(time.perf_counter() - started, 2)


async def exception_count(page) -> int:
    return await page.locator('[data-testid="stException"]').count()


# ---------------------------------------------------------------------------------------------------
# The measurements


async def open_home_cold(page, url: str, launched_at: float) -> dict:
    """Opens Home as soon as a just-launched server is healthy; seconds from launch to health and to its card.

    Returns once Home's first run has ended, with the run-state watcher installed.
    """
    wait_for_health(url)
    healthy = time.perf_counter() - launched_at
    await page.goto(url)
    await page.get_by_text("Model in use").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    home_card = time.perf_counter() - launched_at
    await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    await page.evaluate(WATCH_RUNS)
    return {"to_health_s": round(healthy, 2), "to_home_card_s": round(home_card, 2)}


async def measure_pages(page, url: str, launched_at: float, pid: int, results: dict) -> None:
    """Cold start to the Home card, every page first and again, photos one after another, memory.

    `page` is a blank tab opened before the server was launched, as a visitor's browser is already
    running. Fills `results` as it goes, so a failure keeps what was measured before it (`step`
    says where).
    """
    results["step"] = "cold start"
    results["cold_start"] = await open_home_cold(page, url, launched_at)
    memory = results["memory"] = {"rss_mb_after_start": resident_mb(pid)}
    memory["tensorflow_loaded_after_start"] = tensorflow_loaded(pid)
    links = await sidebar_pages(page)
    # Predict first, with the photos: what TensorFlow and memory look like after a first visitor's answers.
    results["step"] = "page_first_open_s: Predict"
    results["page_first_open_s"] = {"Predict": await click_page(page, links["Predict"])}
    memory["tensorflow_loaded_before_first_prediction"] = tensorflow_loaded(pid)
    results["step"] = "uploads in a row"
    uploads = []
    for photo in dev_photos()[:PHOTOS_IN_A_ROW]:
        uploads.append(await upload_and_wait(page, photo))
        memory.setdefault("rss_mb_after_first_prediction", resident_mb(pid))
        results["upload_to_answer"] = {**summary(uploads), "seconds": uploads}
    memory["rss_mb_after_first_predictions"] = resident_mb(pid)
    memory["tensorflow_loaded_after_predictions"] = tensorflow_loaded(pid)
    # Then the loads that wait for a quiet server (pandas, the photo store, Fashion-MNIST: about 1.5 s
    # here) run: what the server holds from then on, until a page needs TensorFlow.
    await asyncio.sleep(QUIET_WARMUP_S)
    memory["rss_mb_after_quiet_warmup"] = resident_mb(pid)
    # Dataset next, before any page that needs TensorFlow: a server that has served Home, Predict and
    # Dataset, as most visitors use it.
    results["step"] = "page_first_open_s: Dataset"
    results["page_first_open_s"]["Dataset"] = await click_page(page, links["Dataset"])
    memory["rss_mb_after_home_predict_dataset"] = resident_mb(pid)
    memory["tensorflow_loaded_after_home_predict_dataset"] = tensorflow_loaded(pid)
    others = [title for title in links if title not in ("Home", "Predict", "Dataset")]
    for key, titles in (("page_first_open_s", others), ("page_again_s", list(links))):
        results.setdefault(key, {})
        for title in titles:
            results["step"] = f"{key}: {title}"
            if key == "page_first_open_s" and title in USABLE_TEXT:
                usable, results[key][title] = await click_page_until_usable(page, links[title], USABLE_TEXT[title])
                results.setdefault("page_first_usable_s", {})[title] = usable
            else:
                results[key][title] = await click_page(page, links[title])
        memory.setdefault("tensorflow_loaded_after_visiting_every_page", tensorflow_loaded(pid))
    results["exceptions"] = await exception_count(page)
    results["clicks_made_again"] = list(CLICK_RETRIES)
    del results["step"]
    await page.close()


class ServerPart:
    """When a tab's photo uploads left and when each script run's end came back, as its browser's network
    stack saw them (CDP `Network` events, on the browser's clock): the server's part of each answer,
    apart from the tab's own rendering, which on a small machine shares the cores with the server."""

    def __init__(self) -> None:
        self.uploads_sent: list[float] = []
        self.runs_ended: list[float] = []

    async def watch(self, context, page) -> None:
        session = await context.new_cdp_session(page)
        session.on("Network.requestWillBeSent", self.on_request)
        session.on("Network.webSocketFrameReceived", self.on_frame)
        await session.send("Network.enable")

    def on_request(self, event: dict) -> None:
        request = event["request"]
        if "/_stcore/upload_file/" in request["url"] and request["method"] in ("PUT", "POST"):
            self.uploads_sent.append(event["timestamp"])

    def on_frame(self, event: dict) -> None:
        frame = event["response"]
        # A binary frame is a ForwardMsg; a run's end is a small one (about 100 characters of base64).
        if frame["opcode"] == 2 and len(frame["payloadData"]) < 400:
            message = ForwardMsg.FromString(base64.b64decode(frame["payloadData"]))
            if message.WhichOneof("type") == "script_finished":
                self.runs_ended.append(event["timestamp"])

    def seconds(self) -> list[float]:
        """Per upload, seconds from its request leaving to the end of the first run after it."""
        seconds = []
        for sent in self.uploads_sent:
            ended = [at for at in self.runs_ended if at > sent]
            if ended:
                seconds.append(round(ended[0] - sent, 2))
        return seconds


async def one_session(browser, url: str, photos: list[Path], ready: list, start: asyncio.Event) -> dict:
    """A user on the Predict page: says so in `ready` once the page is open, then uploads `photos` one
    after another once `start` is set. Returns its figures with its browser context, left open so
    that its renderer's CPU time can still be read; the caller closes it."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page_errors = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    server_part = ServerPart()
    seconds, lost, first_loss = [], 0, None
    try:
        await server_part.watch(context, page)
        await open_app(page, f"{url}/predict")
    finally:
        ready.append(url)
    await start.wait()
    for photo in photos:
        try:
            seconds.append(await upload_and_wait(page, photo))
        except Exception as error:  # a timeout or a vanished element: the answer never came
            lost += 1
            first_loss = first_loss or f"{type(error).__name__}: {error}"[:300]
    exceptions = await exception_count(page) + len(page_errors)
    return {
        "seconds": seconds,
        "server_seconds": server_part.seconds(),
        "lost": lost,
        "exceptions": exceptions,
        "first_loss": first_loss,
        "context": context,
    }


async def one_burst(browser, url: str, pid: int, photos: list[Path]) -> dict:
    """Eight sessions open the Predict page, then all upload three of `photos` each from the same moment.

    Also reports the CPU seconds the server and Chromium (by process kind) used from that moment until
    the last answer: on a small machine the browsers' work competes with the server's.
    """
    ready, start = [], asyncio.Event()
    tasks = [
        asyncio.create_task(
            one_session(browser, url, photos[i * UPLOADS_PER_SESSION :][:UPLOADS_PER_SESSION], ready, start)
        )
        for i in range(SESSIONS)
    ]
    for _ in range(PAGE_TIMEOUT_MS // 1000):
        if len(ready) == SESSIONS:
            break
        await asyncio.sleep(1)
    started, server_cpu, browser_cpu = time.perf_counter(), cpu_seconds(pid), chromium_cpu_seconds()
    start.set()
    sessions = await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - started
    server_cpu, browser_cpu_after = cpu_seconds(pid) - server_cpu, chromium_cpu_seconds()
    failed = [session for session in sessions if isinstance(session, BaseException)]
    sessions = [session for session in sessions if not isinstance(session, BaseException)]
    for session in sessions:
        await session.pop("context").close()
    return {
        "seconds": [value for session in sessions for value in session["seconds"]],
        "server_seconds": [value for session in sessions for value in session["server_seconds"]],
        "lost_uploads": sum(session["lost"] for session in sessions) + UPLOADS_PER_SESSION * len(failed),
        "exceptions": sum(session["exceptions"] for session in sessions),
        "sessions_failed": [repr(error)[:300] for error in failed],
        "losses": [session["first_loss"] for session in sessions if session["first_loss"]],
        "wall_s": round(wall, 1),
        "server_cpu_s": round(server_cpu, 1),
        "chromium_cpu_s": {
            kind: round(used - browser_cpu.get(kind, 0.0), 1) for kind, used in sorted(browser_cpu_after.items())
        },
    }


async def measure_sessions(browser, url: str, pid: int) -> dict:
    """`BURSTS` bursts of eight sessions x three uploads, one after another, each with photos new to the
    server (after the ones `measure_pages` uploaded); the figures pool their uploads.

    One burst's p95 of 24 uploads is its second-slowest: it moved by more than a second between runs
    of the same code here; pooled over the bursts it is steadier. Each burst's own p95 is kept too.
    """
    per_burst = SESSIONS * UPLOADS_PER_SESSION
    photos = dev_photos()[PHOTOS_IN_A_ROW:]
    bursts = [await one_burst(browser, url, pid, photos[i * per_burst :][:per_burst]) for i in range(BURSTS)]
    seconds = [value for burst in bursts for value in burst["seconds"]]
    cpu_by_kind: dict[str, float] = {}
    for burst in bursts:
        for kind, used in burst["chromium_cpu_s"].items():
            cpu_by_kind[kind] = round(cpu_by_kind.get(kind, 0.0) + used, 1)
    return {
        **summary(seconds),
        "server_part": summary([value for burst in bursts for value in burst["server_seconds"]]),
        "bursts": BURSTS,
        "p95_s_per_burst": [summary(burst["seconds"])["p95_s"] for burst in bursts],
        "sessions": SESSIONS,
        "uploads_per_session": UPLOADS_PER_SESSION,
        "lost_uploads": sum(burst["lost_uploads"] for burst in bursts),
        "exceptions": sum(burst["exceptions"] for burst in bursts),
        "sessions_failed": [failure for burst in bursts for failure in burst["sessions_failed"]],
        "losses": [loss for burst in bursts for loss in burst["losses"]],
        "wall_s": round(sum(burst["wall_s"] for burst in bursts), 1),
        "server_cpu_s": round(sum(burst["server_cpu_s"] for burst in bursts), 1),
        "chromium_cpu_s": cpu_by_kind,
    }


async def start_training(page) -> None:
    """Clicks Start training until the run's Stop button shows (a click during a rerun can start nothing)."""
    stop = page.get_by_role("button", name="Stop")
    for _ in range(3):
        await page.get_by_role("button", name="Start training").click(timeout=PAGE_TIMEOUT_MS)
        try:
            await stop.wait_for(timeout=20_000)
            return
        except Exception:
            CLICK_RETRIES.append("Start training")
    raise TimeoutError("Three clicks on Start training started no run")


async def measure_training_in_browser(browser, url: str, pid: int) -> dict:
    """The Train page's Quick preset, watched live through its second epoch; RSS during the run.

    Two rates, both from the page's own progress line (its images/s is the run's images so far over
    the seconds since training began, so each reading also gives the server's exact elapsed time):
    the first epoch's, start-up (tracing the training step) included, read as epoch 2 begins; and
    the second epoch's alone, between a reading early in epoch 2 and one early in epoch 3.
    """
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await open_app(page, f"{url}/train")
    await start_training(page)
    readings, peak_rss = [], 0.0
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        peak_rss = max(peak_rss, resident_mb(pid))
        text = await page.locator('[data-testid="stMain"]').inner_text()
        match = PROGRESS.search(text)
        if match:
            reading = ProgressReading(*(int(match[index]) for index in (1, 3, 4)), float(match[5].replace(",", "")))
            readings.append(reading)
            if reading.epoch >= 3 and reading.batch < reading.steps_per_epoch:
                break
        await asyncio.sleep(PROGRESS_READ_EVERY_S)
    with contextlib.suppress(Exception):
        await page.get_by_role("button", name="Stop").click(timeout=10_000)
        await page.get_by_text("Test accuracy").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    await page.close()
    first_epoch = [reading.images_per_second for reading in readings if reading.epoch >= 2][:1]
    return {
        "images_per_second_first_epoch": first_epoch[0] if first_epoch else None,
        "images_per_second_second_epoch": second_epoch_rate(readings, QUICK_BATCH_SIZE),
        "rss_mb_peak_during_training": peak_rss,
        "readings": len(readings),
    }


@dataclass(frozen=True)
class ProgressReading:
    """One reading of the Train page's progress line: `Epoch e of E, batch b of S · R images/s`."""

    epoch: int
    batch: int
    steps_per_epoch: int
    images_per_second: float

    def steps_done(self) -> int:
        return (self.epoch - 1) * self.steps_per_epoch + self.batch

    def seconds_since_training_began(self, batch_size: int) -> float:
        return self.steps_done() * batch_size / self.images_per_second


def second_epoch_rate(readings: list[ProgressReading], batch_size: int) -> float | None:
    """Images per second between the first reading inside epoch 2 and the first inside epoch 3.

    A reading just after an epoch begins can still show the last epoch's batch count, so only
    readings with `batch < steps_per_epoch` are used. The span covers one epoch's batches and one
    validation pass, like Keras' own per-epoch figure on the command line.
    """
    inside = [reading for reading in readings if 0 < reading.batch < reading.steps_per_epoch]
    start = next((reading for reading in inside if reading.epoch == 2), None)
    end = next((reading for reading in inside if reading.epoch == 3), None)
    if start is None or end is None:
        return None
    seconds = end.seconds_since_training_began(batch_size) - start.seconds_since_training_began(batch_size)
    return round((end.steps_done() - start.steps_done()) * batch_size / seconds, 1)


TRAINED_MODEL_NAME = "benchmark-quick"


async def measure_trained_model_evaluation(browser, url: str) -> dict:
    """The Evaluation page's first open for a model just trained in the app.

    The server's last Quick run (stopped by the training measurement, evaluated on the test set) is
    saved from the Train page under `TRAINED_MODEL_NAME`, picked with its "Use ... for predictions"
    button, and Evaluation is then opened from the sidebar, as an analyst would after a run.
    """
    from playwright.async_api import expect

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        await open_app(page, f"{url}/train")
        main = page.locator('[data-testid="stMain"]')
        name_box = main.get_by_role("textbox", name="Model name")
        since = await now(page)
        await name_box.fill(TRAINED_MODEL_NAME)
        await name_box.press("Enter")
        await page.wait_for_function(RAN_SINCE, arg=since, timeout=PAGE_TIMEOUT_MS, polling=50)
        await main.get_by_role("button", name="Save to the registry").click(timeout=PAGE_TIMEOUT_MS)
        use = main.get_by_role("button", name=f"Use {TRAINED_MODEL_NAME} for predictions")
        await use.click(timeout=PAGE_TIMEOUT_MS)
        picker = page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name="Model", exact=True)
        await expect(picker).to_have_value(TRAINED_MODEL_NAME, timeout=PAGE_TIMEOUT_MS)
        seconds = await click_page(page, (await sidebar_pages(page))["Evaluation"])
        return {
            "model": await picker.input_value(),
            "evaluation_first_open_s": seconds,
            "exceptions": await exception_count(page),
        }
    finally:
        await page.close()


def measure_training_on_cli(cpus: str | None) -> dict:
    """The Quick preset for two epochs on the command line: images/s of each epoch, from its own
    `Epoch n: ... images/s` lines (timed as Keras times an epoch, its validation pass included, so the
    first epoch's includes tracing the training step)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "fashion_core", "train", "--preset", "Quick", "--epochs", "2",
                   "--out", str(Path(folder) / "quick")]  # fmt: skip
        completed = subprocess.run((["taskset", "-c", cpus] if cpus else []) + command, cwd=REPO_ROOT,
                                   capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip
    rates = [float(rate.replace(",", "")) for _, rate in EPOCH_RATE_LINE.findall(completed.stdout)]
    if len(rates) < 2:
        return {"error": (completed.stderr or completed.stdout)[-800:]}
    return {"images_per_second_first_epoch": rates[0], "images_per_second_second_epoch": rates[1]}


def training_pairs_summary(pairs: list[tuple[dict, dict]]) -> dict:
    """The median over app/CLI pairs, run one after the other, of each pair's ratios (and of each side's
    images/s), with every pair's ratios: one pair's ratio moved by 5% between runs of the same code."""
    apps, clis = [app for app, _ in pairs], [cli for _, cli in pairs]
    peak_rss = max(app["rss_mb_peak_during_training"] for app in apps)
    summary = {"train_in_browser": {"rss_mb_peak_during_training": peak_rss}, "train_on_cli": {}}
    summary["train_pairs"] = len(pairs)
    for epoch, key in (("first", "train_ratio_browser_vs_cli"), ("second", "train_ratio_browser_vs_cli_second_epoch")):
        ratios = [ratios[key] for ratios in (training_ratios(app, cli) for app, cli in pairs) if key in ratios]
        if ratios:
            summary[key] = round(statistics.median(ratios), 3)
            summary[f"{key}_pairs"] = ratios
        rate = f"images_per_second_{epoch}_epoch"
        for side, runs in (("train_in_browser", apps), ("train_on_cli", clis)):
            values = [run[rate] for run in runs if run.get(rate)]
            if values:
                summary[side][rate] = round(statistics.median(values), 1)
    return summary


def training_ratios(app: dict, cli: dict) -> dict:
    """The app's images/s over the command line's: the first epoch's (start-up included) and the second's."""
    ratios = {}
    for epoch, key in (("first", "train_ratio_browser_vs_cli"), ("second", "train_ratio_browser_vs_cli_second_epoch")):
        app_rate, cli_rate = app.get(f"images_per_second_{epoch}_epoch"), cli.get(f"images_per_second_{epoch}_epoch")
        if app_rate and cli_rate:
            ratios[key] = round(app_rate / cli_rate, 3)
    return ratios


async def recorded(measurement) -> dict:
    """A measurement's dict (or `{}`), or `{"error": ...}` when it failed (the other measurements still run)."""
    try:
        return await measurement or {}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"[:1500]}


async def measure_one_server(playwright, cpus: str | None, deadline: float) -> dict:
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    results: dict = {"cpus": cpus or f"all {os.cpu_count()}"}
    try:
        with tempfile.TemporaryDirectory() as models_dir:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            with streamlit_server(models_dir, cpus) as (process, url, launched_at):
                pages = await recorded(measure_pages(page, url, launched_at, process.pid, results))
                results.update({"pages_error": pages["error"]} if pages else {})
                results["eight_sessions"] = await recorded(measure_sessions(browser, url, process.pid))
                results["train_in_browser"] = {"skipped": "over the benchmark's time budget"}
                pairs = []
                for _ in range(TRAINING_PAIRS):
                    if time.monotonic() >= deadline:
                        break
                    app = await recorded(measure_training_in_browser(browser, url, process.pid))
                    if "images_per_second_first_epoch" not in app:
                        results["train_in_browser"] = app
                        results["train_pair_failed"] = app  # kept when earlier pairs give the figures
                        break
                    pairs.append((app, measure_training_on_cli(cpus)))
                if pairs:
                    results.update(training_pairs_summary(pairs))
                    results["trained_model"] = await recorded(measure_trained_model_evaluation(browser, url))
    finally:
        await browser.close()
    return results


async def measure_first_answer(playwright, serving: str) -> dict:
    """A fresh server, a first visitor: Home, then Predict, one photo. Seconds from launch, memory, TensorFlow.

    `serving` is the runtime that answers: `"litert"` (the app's default) or `"tensorflow"`
    (`FASHION_STUDIO_SERVING=tensorflow`), for comparison.
    """
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        with (
            tempfile.TemporaryDirectory() as models_dir,
            streamlit_server(models_dir, env={"FASHION_STUDIO_SERVING": serving}) as (process, url, launched_at),
        ):
            cold_start = await open_home_cold(page, url, launched_at)
            await click_page(page, (await sidebar_pages(page))["Predict"])
            await upload_and_wait(page, dev_photos()[0])
            return {
                "serving": serving,
                "to_home_card_s": cold_start["to_home_card_s"],
                "to_first_answer_s": round(time.perf_counter() - launched_at, 2),
                "rss_mb_after_first_answer": resident_mb(process.pid),
                "tensorflow_loaded": tensorflow_loaded(process.pid),
            }
    finally:
        await browser.close()


async def _measure(single_core: bool) -> dict:
    from playwright.async_api import async_playwright

    deadline = time.monotonic() + BUDGET_S
    results = {"import_tensorflow_s": import_tensorflow_seconds()}
    async with async_playwright() as playwright:
        results["first_answer"] = {
            serving: await recorded(measure_first_answer(playwright, serving)) for serving in ("litert", "tensorflow")
        }
        results["all_cores"] = await measure_one_server(playwright, None, deadline)
        if single_core:
            results["single_core"] = await measure_one_server(playwright, "0", deadline)
    return results


def measure_browser(single_core: bool = True) -> dict:
    """Every figure above, with all cores and (if `single_core`) pinned to core 0."""
    return asyncio.run(_measure(single_core))


if __name__ == "__main__":
    print(json.dumps(measure_browser(single_core="--all-cores-only" not in sys.argv), indent=2))
