"""The explorer and the slide decks in a real browser: JupyterLab on 127.0.0.1 and headless Chromium.

Chromium is Debian's (`apt-get install chromium`, /usr/bin/chromium; .ci/run installs it), driven by
Playwright for Python (`pip install playwright`, in the project's test extra) with `executable_path`, as
Playwright's own browser download is not available offline. Where either is missing the tests skip and
say so. JupyterLab serves a temporary copy of notebook 04, with its own settings, so nothing committed
changes; the server and its kernels are stopped at the end.
"""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_04 = ROOT / "notebooks" / "04_step_sweep.ipynb"
SLIDES = ROOT / "build" / "slides"
CHROMIUM = next(
    (path for path in ("/usr/bin/chromium", shutil.which("chromium")) if path and Path(path).exists()), None
)
CHROMIUM_ARGS = [  # headless, and no connections of its own: this machine's network is closed to them
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ENABLE = (
    "need Debian's chromium at /usr/bin/chromium (apt-get install chromium) and Playwright for Python "
    "(pip install playwright, or pip install -e '.[test]')"
)
TIMEOUT_MS = 180_000  # generous: a busy 2-core CPU
LAB_SETTINGS = {  # JupyterLab user settings: no news pop-up over the cells, no autosave, every cell in the page
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def tagged(path: Path, *tags: str) -> list[int]:
    """Indices of the cells of a notebook that carry any of `tags`."""
    cells = nbformat.read(path, as_version=4).cells
    return [i for i, cell in enumerate(cells) if set(tags) & set(cell.metadata.get("tags", []))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason=f"Playwright for Python is not installed: the browser tests {ENABLE}"
    )
    if CHROMIUM is None:
        pytest.skip(f"no chromium: the browser tests {ENABLE}")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A browser page that records every console error, uncaught exception and failed request."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1300, "height": 1000})
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors = []
        self.page.on(
            "console", lambda message: message.type == "error" and self.errors.append(f"console: {message.text}")
        )
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("requestfailed", self._request_failed)

    def _request_failed(self, request):
        if request.failure != "net::ERR_ABORTED":  # a request the page itself cancelled is no error
            self.errors.append(f"failed to load {request.url}: {request.failure}")


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    """JupyterLab on 127.0.0.1 at a free port with a token, serving a temporary folder: notebooks/ with a copy
    of notebook 04 to run (data/ beside it, as in the repository), unexecuted/ with another to only open."""
    folder = tmp_path_factory.mktemp("lab")
    (folder / "notebooks").mkdir()
    (folder / "unexecuted").mkdir()
    shutil.copy(NOTEBOOK_04, folder / "notebooks" / NOTEBOOK_04.name)
    shutil.copy(NOTEBOOK_04, folder / "unexecuted" / NOTEBOOK_04.name)
    # read only: the notebook loads checkpoints from ../data
    (folder / "data").symlink_to(ROOT / "data", target_is_directory=True)
    for name, settings in LAB_SETTINGS.items():
        path = folder / "config" / "lab" / "user-settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    port, token = free_port(), secrets.token_hex(16)
    environment = os.environ | {
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_DATA_DIR": str(folder / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "DDIMLIB_PROGRESS": "0",
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI runs as root
    log = folder / "jupyterlab.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(command, env=environment, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while True:
            assert server.poll() is None, f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, (
                    f"JupyterLab did not answer within {TIMEOUT_MS / 1000:.0f} s:\n{log.read_text()[-3000:]}"
                )
                time.sleep(0.5)
        yield lambda path: f"{url}/lab/tree/{path}?reset&token={token}"
    finally:
        server.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


NOTEBOOK_READY = """(minCells) => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    return !!(panel && panel.content && panel.content.widgets && panel.content.widgets.length >= minCells);
}"""
KERNEL_IDLE = """() => {
    const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
    return !!kernel && kernel.status === 'idle';
}"""
RUN_CELLS = """async (indices) => {
    const app = window.jupyterapp, notebook = app.shell.currentWidget.content;
    await app.commands.execute('notebook:clear-all-cell-outputs');
    for (const index of indices) {
        notebook.activeCellIndex = index;
        await app.commands.execute('notebook:run-cell');
    }
}"""
CELLS_DONE = """(indices) => {
    const panel = window.jupyterapp.shell.currentWidget;
    return panel.sessionContext.session?.kernel?.status === 'idle'
        && indices.every(index => panel.content.widgets[index].model.executionCount !== null);
}"""
ERROR_OUTPUTS = """(indices) => indices.flatMap(index =>
    window.jupyterapp.shell.currentWidget.content.widgets[index].model.outputs.toJSON()
        .filter(output => output.output_type === 'error')
        .map(output => `cell ${index}: ${output.ename}: ${output.evalue}`))"""
IMAGE_DIGEST = """async (image) => {
    const bytes = await (await fetch(image.src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return Array.from(digest, b => b.toString(16).padStart(2, '0')).join('');
}"""


def open_notebook(page, url: str, cells: int):
    page.goto(url)
    page.wait_for_function(NOTEBOOK_READY, arg=cells)


def test_the_explorer_runs_in_jupyterlab_and_redraws_when_a_slider_moves(browser, lab):
    """Run notebook 04's setup cells and its explorer cell in JupyterLab; move the seed slider and the image
    changes; S to its last stop and the status line counts that many network calls; S back to 5 and a new frame
    comes."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    setup, explorer = tagged(NOTEBOOK_04, "setup"), tagged(NOTEBOOK_04, "explorer")
    assert setup and len(explorer) == 1, (
        "notebook 04 must tag its set-up cells 'setup' and its explorer cell 'explorer'"
    )
    indices = setup + explorer
    tab = Page(browser)
    page = tab.page
    open_notebook(page, lab(f"notebooks/{NOTEBOOK_04.name}"), max(indices) + 1)
    page.wait_for_function(KERNEL_IDLE)
    page.evaluate(RUN_CELLS, indices)
    page.wait_for_function(CELLS_DONE, arg=indices)
    assert page.evaluate(ERROR_OUTPUTS, indices) == []

    cell = page.locator(".jp-Notebook .jp-Cell").nth(explorer[0])
    image = cell.locator("img.widget-image")  # the live widget, not the still of an unexecuted notebook
    image.wait_for()
    image.scroll_into_view_if_needed()
    status = cell.locator(".widget-label", has_text="network calls")

    def slider(label: str):
        return cell.locator(".widget-slider", has=page.locator("label", has_text=re.compile(f"^{label}$")))

    def press(label: str, key: str):
        handle = slider(label).locator(".noUi-handle")
        handle.focus()
        handle.press(key)

    def wait(expression: str, arg, what: str):
        try:
            page.wait_for_function(expression, arg=arg)
        except PlaywrightTimeout:
            pytest.fail(
                f"{what} within {TIMEOUT_MS / 1000:.0f} s; the status line reads {status.text_content()!r}; "
                f"page errors: {tab.errors}"
            )

    def wait_for_status(pattern: str):
        wait(
            "([label, pattern]) => new RegExp(pattern).test(label.textContent)",
            [status.element_handle(), pattern],
            f"no status line matching {pattern!r}",
        )

    def picture_after(old_src: str) -> str:
        """Wait for the image widget to show a new picture; return its digest."""
        wait(
            "([image, old]) => image.src && image.src !== old",
            [image.element_handle(), old_src],
            "the picture did not change",
        )
        return page.evaluate(IMAGE_DIGEST, image.element_handle())

    first_src = image.get_attribute("src")
    first = page.evaluate(IMAGE_DIGEST, image.element_handle())
    press("seed", "ArrowRight")  # seed 0 -> 1: new x_T, new digits
    second = picture_after(first_src)
    assert second != first and slider("seed").locator(".widget-readout").inner_text().strip() == "1"

    press("S", "End")  # S to its last stop: the largest S whose redraw takes at most a second here
    wait_for_status(f"^{slider('S').locator('.widget-readout').inner_text().strip()} network calls")
    third_src = image.get_attribute("src")
    press("S", "Home")  # S = 5
    wait_for_status("^5 network calls")
    third = picture_after(third_src)
    assert third not in (first, second) and slider("S").locator(".widget-readout").inner_text().strip() == "5"
    assert tab.errors == []
    page.close()


def test_the_committed_notebook_opened_unexecuted_shows_a_still_and_a_line_saying_to_run_the_cell(browser, lab):
    """JupyterLab shows a notebook it did not run as untrusted: no widget, only its safe outputs. The explorer
    cell must then show the still frame and one line of text, not the widget's raw repr."""
    explorer = tagged(NOTEBOOK_04, "explorer")
    assert len(explorer) == 1
    tab = Page(browser)
    page = tab.page
    open_notebook(page, lab(f"unexecuted/{NOTEBOOK_04.name}"), explorer[0] + 1)
    output = page.locator(".jp-Notebook .jp-Cell").nth(explorer[0]).locator(".jp-OutputArea")
    still = output.locator("img")
    still.wait_for()
    still.scroll_into_view_if_needed()
    page.wait_for_function("(image) => image.complete && image.naturalWidth > 0", arg=still.element_handle())
    text = output.inner_text()
    assert "VBox(children=" not in text
    assert "run this cell" in text, f"no line saying to run the cell in the explorer's output: {text!r}"
    assert output.locator(".widget-slider").count() == 0
    assert tab.errors == []
    page.close()


# the deck's reveal.js instance as `reveal`: nbconvert's deck loads reveal.js as a module of require.js, so there is no
# global Reveal; ask require.js for that instance
REVEAL = """
    const scripts = Array.from(document.scripts, script => script.textContent).join('\\n');
    const name = (scripts.match(/["']([^"']*dist\\/reveal\\.js)["']/) || [])[1];
    const reveal = window.Reveal || await new Promise((resolve, reject) => window.require([name], resolve, reject));
"""
TOTAL_SLIDES = "async () => {" + REVEAL + "    return reveal.getTotalSlides();\n}"


def slide_decks() -> list[Path]:
    """The decks `tasks.py slides` wrote; built first if there are none or if a notebook or tasks.py changed after
    them, so that a text change is measured, not the decks of before it (skips where tasks.py has no such command)."""
    decks = sorted(SLIDES.glob("*.slides.html"))
    sources = [*(ROOT / "notebooks").glob("*.ipynb"), ROOT / "tasks.py"]
    if decks and min(deck.stat().st_mtime for deck in decks) >= max(source.stat().st_mtime for source in sources):
        return decks
    result = subprocess.run(
        [sys.executable, str(ROOT / "tasks.py"), "slides"], cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    # tasks.py's answer to a command it does not know: its usage
    if result.returncode == 2 and "python3 tasks.py" in result.stdout:
        pytest.skip("no slide decks in build/slides and tasks.py has no `slides` command to build them")
    assert result.returncode == 0, f"tasks.py slides failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    decks = sorted(SLIDES.glob("*.slides.html"))
    assert decks, f"tasks.py slides wrote no build/slides/*.slides.html:\n{result.stdout[-3000:]}"
    return decks


def test_each_slide_deck_opens_with_its_slides_and_no_console_error(browser):
    """Each deck of build/slides opens from disk (no network: its scripts must be beside it), reveal.js starts,
    and it has a handful of slides at least."""
    counts, errors = {}, {}
    for deck in slide_decks():
        tab = Page(browser)
        tab.page.goto(deck.as_uri(), wait_until="load")  # every script of the page has loaded (or failed) by then
        deadline = time.monotonic() + 30
        while not tab.page.evaluate("() => document.querySelector('.reveal.ready') !== null"):  # reveal.js has started
            if time.monotonic() > deadline or any(error.startswith("page error") for error in tab.errors):
                pytest.fail(f"reveal.js did not start in {deck.name}; the page's errors: {tab.errors}")
            tab.page.wait_for_timeout(200)
        counts[deck.name] = tab.page.evaluate(TOTAL_SLIDES)
        errors[deck.name] = tab.errors
        tab.page.close()
    print(f"slides per deck: {counts}")
    assert all(count >= 5 for count in counts.values()), counts
    assert all(not found for found in errors.values()), errors


SHOW_SLIDE = (  # slide k shown and typeset: its content's height, its text and the height of the deck's page
    "async (k) => {"
    + REVEAL
    + """
    const slide = reveal.getSlides()[k];
    const at = reveal.getIndices(slide);
    reveal.slide(at.h, at.v);
    const hub = window.MathJax && window.MathJax.Hub;
    for (let waited = 0; waited < 10000 && hub && hub.queue.pending > 0; waited += 100) {
        await new Promise(resolve => setTimeout(resolve, 100));
    }
    await new Promise(resolve => setTimeout(resolve, 300));
    return [slide.scrollHeight, slide.innerText, reveal.getConfig().height];
}"""
)


def open_deck(browser, deck: Path):
    """A 1280x720 page (a projector) showing the deck, reveal.js started."""
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    page.goto(deck.as_uri(), wait_until="load")
    page.wait_for_function("() => document.querySelector('.reveal.ready') !== null", timeout=TIMEOUT_MS)
    return page


def test_lecture_one_opens_with_a_ddpm_recap_that_fits_a_1280x720_screen(browser):
    """The first lecture recalls DDPM on one slide (notebook 01's "DDPM in one slide", right after its title), and that
    slide's content fits a 1280x720 projector without scrolling; a screenshot of it goes to build/slides/."""
    deck = next(deck for deck in slide_decks() if deck.name.startswith("lecture1"))
    page = open_deck(browser, deck)
    opening = [page.evaluate(SHOW_SLIDE, k) for k in range(2)]
    recap = [k for k, (_, text, _) in enumerate(opening) if "DDPM IN ONE SLIDE" in text.upper()]
    assert recap, f"neither of the first two slides is the DDPM recap: {[text[:80] for _, text, _ in opening]}"
    height, text, _ = page.evaluate(SHOW_SLIDE, recap[0])
    page.wait_for_timeout(1000)  # the slide transition's end
    page.screenshot(path=str(SLIDES / "lecture1_ddpm_recap.png"))
    page.close()
    print(f"the DDPM recap is slide {recap[0] + 1} of lecture 1, {height} px high")
    assert "L_" in text or "simple" in text, text[:300]  # the loss is on it (typeset by MathJax)
    assert height <= 720, f"the DDPM recap slide is {height} px high, more than a 1280x720 screen shows"


def test_every_slide_fits_a_1280x720_screen_and_the_first_and_table_1_slides_are_photographed(browser):
    """Each slide's content, typeset, is no higher than the deck's own slide (reveal.js scales that to the screen):
    nothing to scroll in front of a class. Screenshots of each deck's first slide and of lecture 2's Table 1 slide
    go to build/slides/ for a person to look at."""
    too_high, photographed = [], []
    for deck in slide_decks():
        page = open_deck(browser, deck)
        heights = []
        for k in range(page.evaluate(TOTAL_SLIDES)):
            height, text, limit = page.evaluate(SHOW_SLIDE, k)
            heights.append(height)
            if height > limit:
                too_high.append(f"{deck.name} slide {k + 1}: {height} px of {limit}: {' '.join(text.split())[:70]}")
            if k == 0 or "1 · TABLE 1 ON FASHION-MNIST" in text.upper():
                name = deck.name.replace(".slides.html", "") + ("_first" if k == 0 else "_table1") + ".png"
                page.wait_for_timeout(1000)  # the slide transition's end
                page.screenshot(path=str(SLIDES / name))
                photographed.append(name)
        page.close()
        print(f"{deck.name}: {len(heights)} slides, the highest {max(heights)} px of {limit}")
    assert not too_high, "slides that do not fit the screen:\n" + "\n".join(too_high)
    assert len(photographed) == len(slide_decks()) + 1, photographed  # each first slide, and lecture 2's Table 1
