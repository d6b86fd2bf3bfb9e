#!/usr/bin/env python3
"""The project's commands, with nothing but Python >= 3.10 and pip needed beforehand.

    python3 tasks.py run            execute every notebook headless; results under build/
    python3 tasks.py run 04         only the notebooks named (a number or a name), e.g. before a class
    python3 tasks.py run --quick    the same with every budget small (a minute or two a notebook); build/quick/
    python3 tasks.py test           ruff, then the unit tests and every notebook (nbval), with coverage
    python3 tasks.py device-check   the GPU checks and figures of benchmarks/device_check.py
    python3 tasks.py slides         two lectures as reveal.js decks from the executed notebooks: build/slides/

Each sets up on first use, and again only when pyproject.toml changes: a virtual environment in
.venv/, torch==2.13.0 first (the build that suits the machine, see torch_install), then this project
with its test extra. Extra arguments to `test` go to pytest, to `device-check` to the script.

`run` goes on past a notebook that fails, then lists every failure (notebook, cell, error) and
exits non-zero; it prints each cell as it starts, and writes the notebooks' times to
build/run_times.json. Ctrl-C or SIGTERM stops it at once, kernel included, and says what had finished.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_PIN = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's install instructions: CPU-only wheels
STAMP = VENV / "ddimlib-installed.txt"
HEARTBEAT_SECONDS = 60  # `run` says which cell is still running this often
# `slides`: two 90-minute lectures, each built from the committed (executed) notebooks' own cells
LECTURES = {
    "lecture1_forward_process_and_objective": ["01_forward_process", "02_unified_objective"],
    "lecture2_sampling_speed_and_the_ode": ["04_step_sweep", "05_ode_and_encoding"],
}
# everything a deck loads, from the npm registry (pinned, checked), so that the decks work offline in a lecture hall
SLIDE_ASSETS = {
    "reveal.js": (
        "https://registry.npmjs.org/reveal.js/-/reveal.js-4.6.1.tgz",
        "4f4121ef2b8e7e9398bdecd7b3b6ce5e0ee3a2f5af221708eb6c4ce03bcae6be",
    ),
    "mathjax": (
        "https://registry.npmjs.org/mathjax/-/mathjax-2.7.7.tgz",
        "f0054315d40f7288b2373b23520677fd1132a405702dfca05ee6ebe5cd0a8677",
    ),
    "jquery": (
        "https://registry.npmjs.org/jquery/-/jquery-3.7.1.tgz",
        "68a9f787516da47c680e09c187bcbac4536b6f85d90eb882844e12919e583f53",
    ),
    "requirejs": (
        "https://registry.npmjs.org/requirejs/-/requirejs-2.3.7.tgz",
        "31f3330c978fb28684622fe71165dc946432cf0210b2ea8a1ca0233e70f2737d",
    ),
}
# nbconvert's reveal template always imports mermaid (for diagrams, which the notebooks have none of) from a CDN
MERMAID_IMPORT = "import mermaid from '{url}';\n  mermaid.initialize({{ startOnLoad: true }});"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# ------------------------------------------------------------------ which torch


def nvidia_gpu_present() -> bool:
    """An NVIDIA driver that sees a GPU: `nvidia-smi -L` lists one (without nvidia-smi: the driver's /proc entry)."""
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return False
        return listing.returncode == 0 and "GPU" in listing.stdout
    return Path("/proc/driver/nvidia/version").exists()


def reachable(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return True
    except Exception:  # no route, no name, refused, proxy, TLS: all mean "cannot use it now"
        return False


def torch_install(system: str, has_nvidia_gpu: bool, cpu_index_reachable: bool) -> tuple[list[str], str]:
    """The pip arguments that install TORCH_PIN for this machine, and why.

    On Linux the default index serves torch built for CUDA (several GB with its nvidia-* packages);
    without an NVIDIA GPU the CPU-only build from PyTorch's CPU index does the same work in a
    fraction of the size. macOS and Windows get a CPU (or Apple GPU) build from the default index.
    """
    if system == "Windows" and has_nvidia_gpu:
        return [TORCH_PIN], (
            "Windows with an NVIDIA GPU: the default index has only the CPU build for Windows; for the GPU, "
            "install torch into .venv from the CUDA index that PyTorch's install instructions give"
        )
    if system != "Linux":
        return [TORCH_PIN], f"{system}: the default index's build is the one for this system (CPU, or Apple's GPU)"
    if has_nvidia_gpu:
        return [TORCH_PIN], "an NVIDIA GPU is present: the default (CUDA) build, so the series runs on it"
    if cpu_index_reachable:
        return [TORCH_PIN, "--index-url", CPU_INDEX], f"no NVIDIA GPU: the CPU-only build from {CPU_INDEX}"
    return [
        TORCH_PIN
    ], f"no NVIDIA GPU, but {CPU_INDEX} cannot be reached: the default index instead (its build may be CUDA's)"


def install_torch(pip: list[str], arguments: list[str]) -> None:
    """pip install with `arguments`; if that used the CPU index and failed, the default index instead."""
    if subprocess.run([*pip, *arguments]).returncode == 0:
        return
    if arguments == [TORCH_PIN]:
        raise SystemExit(f"[tasks] pip could not install {TORCH_PIN}")
    print(f"[tasks] the CPU index failed; installing {TORCH_PIN} from the default index", flush=True)
    subprocess.run([*pip, TORCH_PIN], check=True)


def ensure_env() -> Path:
    """Create .venv and install into it, unless the stamp says it is already up to date."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH_PIN.encode()).hexdigest()
    if venv_python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return venv_python()
    if not venv_python().exists():
        print(f"[tasks] creating virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    gpu = nvidia_gpu_present()
    arguments, reason = torch_install(
        platform.system(), gpu, not gpu and platform.system() == "Linux" and reachable(CPU_INDEX + "/torch/")
    )
    print(
        f"[tasks] installing {TORCH_PIN}: {reason} "
        "(an existing .venv keeps the torch it has: delete .venv to change it)",
        flush=True,
    )
    install_torch(pip, arguments)
    print("[tasks] installing ddimlib[test]", flush=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted + "\n")
    return venv_python()


def ensure_fashion_mnist(python: str) -> None:
    """Fashion-MNIST (notebooks 03-04) where ddimlib.data looks for it; if it is in none of those places, Debian's
    package dataset-fashion-mnist where apt-get can install it (as root); else say what to run. Never fails: a
    machine without it downloads it on first use, or gets ddimlib's error that names every place it looked."""
    find = [
        python,
        "-c",
        "from ddimlib.data import find_idx_folder; print(find_idx_folder('fashion_mnist', download=False))",
    ]
    found = subprocess.run(find, capture_output=True, text=True)
    if found.returncode == 0:
        print(f"[tasks] Fashion-MNIST: {found.stdout.strip()}", flush=True)
        return
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print("[tasks] Fashion-MNIST: installing Debian's package dataset-fashion-mnist (31 MB)", flush=True)
        quiet = {
            "capture_output": True,
            "text": True,
            "stdin": subprocess.DEVNULL,
            "env": os.environ | {"DEBIAN_FRONTEND": "noninteractive"},
        }
        # a stalled mirror ends, not hangs
        apt = lambda *arguments: subprocess.run(["apt-get", *arguments], timeout=600, **quiet)
        try:
            installed = apt("install", "-y", "-q", "dataset-fashion-mnist")
            # a fresh machine's package lists may be empty: update them once, then try again
            if installed.returncode != 0:
                apt("update", "-q")
                installed = apt("install", "-y", "-q", "dataset-fashion-mnist")
            said = (installed.stderr or installed.stdout).strip()[-300:]
        except subprocess.TimeoutExpired:
            said = "apt-get took more than 10 minutes and was stopped"
        found = subprocess.run(find, capture_output=True, text=True)
        if found.returncode == 0:
            print(f"[tasks] Fashion-MNIST: {found.stdout.strip()}", flush=True)
            return
        print(f"[tasks] apt-get could not install dataset-fashion-mnist: {said}", flush=True)
    why = (found.stderr.strip().splitlines() or [""])[-1]
    print(f"[tasks] Fashion-MNIST not found; ddimlib will try to download it on first use. {why}", flush=True)


# ------------------------------------------------------------------ running the notebooks


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def minutes_seconds(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


class CellProgress:
    """nbclient hooks that print each code cell as it starts, and every HEARTBEAT_SECONDS which is still running."""

    def __init__(self, name: str, nb):
        self.name, self.started = name, time.monotonic()
        self.code_cells = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
        self.current: tuple[int, float] | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._heartbeat, daemon=True).start()

    def on_cell_start(self, cell, cell_index, **_):
        if cell.cell_type != "code":
            return
        self.current = (cell_index, time.monotonic())
        first = next((line for line in cell.source.splitlines() if line.strip()), "")[:70]
        number = self.code_cells.index(cell_index) + 1
        print(
            f"[tasks]   {self.name} cell {number}/{len(self.code_cells)} at "
            f"{minutes_seconds(time.monotonic() - self.started)}: {first}",
            flush=True,
        )

    def _heartbeat(self):
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if self.current:
                index, since = self.current
                print(
                    f"[tasks]   {self.name} still on cell {self.code_cells.index(index) + 1} "
                    f"({minutes_seconds(time.monotonic() - since)} so far)",
                    flush=True,
                )

    def stop(self):
        self._stop.set()


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores other programs keep busy now: the machine's CPU use over `seconds`, read between two
    notebooks (when no kernel of ours runs). From /proc/stat on Linux; elsewhere the 1-minute load average."""

    def busy_and_total():
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    try:
        busy0, total0 = busy_and_total()
        time.sleep(seconds)
        busy1, total1 = busy_and_total()
        return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def kernel_threads(cores: int, busy: float) -> int:
    """torch's threads for the next notebook: the cores that other programs leave free, at least one. torch's threads
    wait for each other at every operation, so one that must share its core with another program holds up all the
    others (measured on 2 cores beside one busy program, training the digits UNet: 11 steps/s with two threads,
    32 with one; idle, 45 against 32)."""
    return max(1, cores - round(busy))


def kernel_config(folder: Path):
    """nbclient's kernel talks over local IPC sockets in `folder` where the system has them: no TCP ports,
    and so no warning from the kernel about unencrypted TCP."""
    from traitlets.config import Config

    config = Config()
    if os.name != "nt":
        config.KernelManager.transport = "ipc"
        config.KernelManager.ip = str(folder / "kernel")
    return config


def hide_solution_outputs(nb) -> int:
    """Drop the outputs of the cells tagged `solution` (an error's excepted), so that nothing below an exercise gives
    its answer away to a reader of the committed notebook before their own cell runs; the solution still ran (its
    assert checked). Returns how many cells lost their outputs."""
    hidden = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []) and cell.outputs:
            if not any(output.get("output_type") == "error" for output in cell.outputs):
                cell.outputs, hidden = [], hidden + 1
    return hidden


def execute_notebooks(paths: list[Path], build: Path) -> int:
    """Run inside .venv: execute each notebook in order, save it and its figures under `build`; go on past failures."""
    import base64

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    out_dir, fig_root = build / "notebooks", build / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    (build / "run_times.json").unlink(missing_ok=True)  # an earlier run's record must not pass for this one's
    failures, times = [], {}
    threads_set_by_user = "OMP_NUM_THREADS" in os.environ  # a setting of one's own wins
    for number, path in enumerate(paths, 1):
        print(f"[tasks] executing {path.parent.name}/{path.name} ({number} of {len(paths)})", flush=True)
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:  # no timestamps: a re-run changes the saved notebook only where its outputs change
            cell.metadata.pop("execution", None)
        if not threads_set_by_user:
            cores = os.cpu_count() or 1
            threads = kernel_threads(cores, busy_cores())
            os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits it; torch reads it when it starts
            if threads < cores:
                print(
                    f"[tasks]   other programs keep {cores - threads} of {cores} cores busy: "
                    f"torch gets {threads} thread(s)",
                    flush=True,
                )
        progress = CellProgress(path.stem, nb)
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as folder:
            # store_widget_state=False: with widget state saved, a renderer without a live kernel (nbconvert's HTML, a
            # web
            # viewer) draws the widget from JavaScript it fetches online, and shows nothing offline; without it, the
            # output's own still picture (text/html) is what it shows
            client = NotebookClient(
                nb,
                kernel_name="python3",
                config=kernel_config(Path(folder)),
                timeout=3600,
                record_timing=False,
                store_widget_state=False,
                resources={"metadata": {"path": str(path.parent)}},
                on_cell_start=progress.on_cell_start,
            )
            try:
                client.execute()
            except Exception as error:  # an error in a cell, or a kernel that died or timed out: note it and go on
                index = progress.current[0] if progress.current else -1
                message = (
                    f"{error.ename}: {error.evalue}"
                    if isinstance(error, CellExecutionError)
                    else f"{type(error).__name__}: {error}"
                )
                failures.append(
                    (path.name, progress.code_cells.index(index) + 1 if index >= 0 else "?", message.strip())
                )
                print(f"[tasks]   FAILED: {failures[-1][2]}", flush=True)
            finally:
                progress.stop()
        times[path.stem] = round(time.monotonic() - started, 1)
        hide_solution_outputs(nb)
        nbformat.write(nb, out_dir / path.name)
        fig_dir = fig_root / path.stem
        shutil.rmtree(fig_dir, ignore_errors=True)
        fig_dir.mkdir(parents=True)
        count = 0
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    count += 1
                    (fig_dir / f"cell{index:02d}_{count:02d}.png").write_bytes(base64.b64decode(png))
        print(
            f"[tasks]   -> {out_dir / path.name} and {count} figure(s) in {fig_dir}/ "
            f"({minutes_seconds(times[path.stem])})",
            flush=True,
        )
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "seconds": times,
            "failed": [name for name, _, _ in failures],
        }
        # after each notebook: what has finished
        (build / "run_times.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"[tasks] {len(paths) - len(failures)} of {len(paths)} notebooks ran in "
        f"{minutes_seconds(sum(times.values()))}; "
        f"times in {build / 'run_times.json'}",
        flush=True,
    )
    for name, cell, error in failures:
        print(f"[tasks] FAILED {name}, code cell {cell}: {error}", flush=True)
    return 1 if failures else 0


def fetch_asset(name: str, target: Path) -> Path:
    """Download a pinned npm tarball once (sha256 checked) and unpack its package/ folder into target/name."""
    import tarfile

    url, sha256 = SLIDE_ASSETS[name]
    folder = target / name
    if (folder / ".sha256").exists() and (folder / ".sha256").read_text() == sha256:
        return folder
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{url} does not have the expected sha256 {sha256}")
    shutil.rmtree(folder, ignore_errors=True)
    with tarfile.open(fileobj=__import__("io").BytesIO(data)) as archive:
        members = [
            m
            for m in archive.getmembers()
            if m.name.startswith("package/") and not m.name.startswith(("package/unpacked/", "package/test/"))
        ]
        for member in members:
            member.name = member.name.removeprefix("package/")
        archive.extractall(folder, members=members, filter="data")
    (folder / ".sha256").write_text(sha256)
    return folder


def slide_type(cell) -> str:
    """A cell's place in the deck: its own slideshow metadata if it has some (a lecturer's choice), else from its
    role: a heading of level 1 or 2 starts a slide, level 3 a sub-slide (below it), setup code and exercise solutions
    are skipped, a folded <details> block becomes speaker notes (press s in the deck); anything else continues the
    slide."""
    own = cell.metadata.get("slideshow", {}).get("slide_type")
    if own:
        return own
    text = cell.source.lstrip()
    if cell.cell_type == "code":
        # no exercise solutions on a slide
        return "skip" if {"setup", "solution"} & set(cell.metadata.get("tags", [])) else "-"
    if text.startswith(("# ", "## ")):
        return "slide"
    if text.startswith("### "):
        return "subslide"
    return "notes" if text.startswith("<details>") else "-"


# a slide's figure at most this high, so that a heading, a few lines and the figure fit a 1280x720 screen
DECK_CSS = ".reveal .slides section .jp-OutputArea-output img { max-height: 280px; width: auto; }"
RERENDER_ON_SLIDE_CHANGE = "Reveal.addEventListener('slidechanged', update);"
HIDE_INPUT = "deck-hide-input"  # the tag that tells the deck's exporter to leave a cell's code out
# where a sentence ends: . ! or ? before a space and what starts a sentence, or at the end of the text
SENTENCE_END = re.compile(r"[.!?](?=\s+[A-Z*(`$\[]|\s*$)")
ABBREVIATIONS = ("Eq.", "Eqs.", "e.g.", "i.e.", "et al.", "Fig.", "vs.", "cf.")
LIST_ITEM = re.compile(r"\s*(?:[-*]|\d+\.)\s")
DISPLAY_EQUATION = re.compile(r"\$\$.*?\$\$", re.S)


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph: not cut after an abbreviation ("Eq. 12") or inside an equation."""
    text = " ".join(text.split())
    for end in SENTENCE_END.finditer(text):
        head = text[: end.end()]
        if not head.endswith(ABBREVIATIONS) and head.count("$") % 2 == 0:
            return head
    return text


BOLD_LABEL = re.compile(r"\*\*[^*]+\*\*\s*(?:\([^)]*\))?")  # "**Table 1 on Fashion-MNIST** (section 1)"


def first_clause(text: str) -> str:
    """A list item's lead: its first sentence, cut at its first ";" or ":" outside brackets and equations where
    a clause of four words or more (a bold label not counted) comes before it and more than twelve words after."""
    sentence, depth, math = first_sentence(text), 0, False
    for index, char in enumerate(sentence):
        math ^= char == "$"
        depth += (char in "([") - (char in ")]")
        before = BOLD_LABEL.sub(" ", sentence[:index]).split()
        if char in ";:" and depth == 0 and not math and len(before) >= 4 and len(sentence[index:].split()) > 12:
            return sentence[:index]
    return sentence


def slide_text(markdown: str, result: str | None = None) -> str:
    """What a slide shows of a markdown cell: its heading, the first sentence of its first paragraph (a paragraph in
    italics, such as a title's citation, shown before it), the lead of each item of its lists, and one display
    equation: the one the first sentence introduces where it ends in ":", else the last (a derivation's result).
    A first sentence that only announces ("This section derives ...") gives way to `result`, the slide's reading
    of its figure, where there is one. The notes keep the whole cell."""
    from ddimlib import series  # a folded block is outside the main line that the series counts, and off the slide

    text = series.DETAILS.sub(" ", markdown)
    shown, prose, equations, introduced = [], False, [], None
    for part in re.split(r"(\$\$.*?\$\$)", text, flags=re.S):
        if DISPLAY_EQUATION.fullmatch(part):
            equations.append(part)
            continue
        for paragraph in re.split(r"\n\s*\n", part):
            lines = paragraph.strip().splitlines()
            if lines and lines[0].startswith("#"):
                shown.append(lines.pop(0))
            items = re.split(rf"\n(?={LIST_ITEM.pattern})", "\n".join(lines))  # at each line that starts an item
            italic = re.fullmatch(r"\*[^*].*[^*]\*", " ".join(lines)) is not None
            if lines and LIST_ITEM.match(items[0]):
                leads = [(LIST_ITEM.match(item), item) for item in items]
                shown.append(
                    "\n".join(f"{mark[0].strip()} {first_clause(item[mark.end() :])}" for mark, item in leads)
                )
            elif lines and (italic or not prose):
                lead = first_sentence(items[0])
                shown.append(result if result and not italic and lead.startswith("This section") else lead)
                if not italic:
                    prose = True
                    introduced = len(equations) if shown[-1].endswith(":") else None  # the next equation's index
    chosen = equations[introduced : introduced + 1] if introduced is not None else []
    return "\n\n".join(shown + (chosen or equations[-1:]))


SHOWN = "*Shown:*"  # how a notebook's reading of a figure or a table begins
RESULT_WORDS = 35  # a reading longer than this stays in the notes (a slide has room for a sentence, not a paragraph)


def shown_result(cells: list, index: int) -> str | None:
    """The first sentence of the "*Shown:*" reading in the slide that the cell at `index` opens, capitalised, if it
    has one of at most RESULT_WORDS words."""
    for cell in cells[index + 1 :]:
        if cell.cell_type == "markdown" and slide_type(cell) in ("slide", "subslide"):
            return None
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith(SHOWN):
            sentence = first_sentence(cell.source.lstrip()[len(SHOWN) :])
            return sentence[:1].upper() + sentence[1:] if len(sentence.split()) <= RESULT_WORDS else None
    return None


def deck_cells(cells: list) -> list:
    """A notebook's cells as its lecture shows them: the main line (`ddimlib.series.main_line`) by `slide_type`, and
    nothing from its `## Exercises` heading on (the exercises, an appendix, a step past the paper): a lecture has no
    time for them, and an exercise's stub and check have nothing to show before a learner has tried it.

    A slide says in a few lines and a figure what the notebook says in paragraphs: the slide_text of the first
    markdown cell of its slide and the first figure of its code, without the code; everything else (each markdown
    cell whole, the code, printed tables and verdicts, more figures) goes to the speaker notes (press s). A cell
    with its own slideshow metadata (a lecturer's choice) is shown as it is."""
    import nbformat

    from ddimlib import series  # the same main line that the series' reading times and word budget count

    shown = len(series.main_line({"cells": cells}))
    deck, has_text, has_figure = [], False, False
    for index, cell in enumerate(cells):
        own = "slideshow" in cell.metadata
        kind = slide_type(cell) if index < shown else "skip"
        if kind in ("slide", "subslide"):
            has_text = has_figure = False
        if own or kind in ("skip", "notes"):
            cell.metadata["slideshow"] = {"slide_type": kind}
        elif cell.cell_type == "markdown":
            if kind != "-" or not has_text:
                deck.append(nbformat.v4.new_markdown_cell(slide_text(cell.source, result=shown_result(cells, index))))
                deck[-1].metadata["slideshow"] = {"slide_type": kind}
                has_text = True
            cell.metadata["slideshow"] = {"slide_type": "notes"}
        elif cell.cell_type == "code":
            cell.metadata["slideshow"] = {"slide_type": "notes"}
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), HIDE_INPUT]
            figures = [output for output in cell.get("outputs", []) if "image/png" in output.get("data", {})]
            if figures and not has_figure:  # the slide's figure, alone; the cell's printed lines stay in the notes
                deck.append(nbformat.v4.new_code_cell(outputs=figures[:1], metadata=copy.deepcopy(cell.metadata)))
                deck[-1].metadata["slideshow"] = {"slide_type": kind}
                cell.outputs = [output for output in cell.outputs if output is not figures[0]]
                has_figure = True
        deck.append(cell)
    return deck


def deck_exporter():
    """nbconvert's reveal.js exporter as the decks use it: every script beside the deck (offline), and the code of a
    cell tagged HIDE_INPUT left out."""
    from nbconvert import SlidesExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.remove_input_tags = {HIDE_INPUT}
    return SlidesExporter(
        config=config,
        reveal_url_prefix="reveal.js",
        reveal_scroll=True,
        reveal_theme="white",  # its fonts ship with reveal.js
        mathjax_url="mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        jquery_url="jquery/dist/jquery.min.js",
        require_js_url="requirejs/require.js",
    )


def build_slides(build: Path) -> int:
    """Run inside .venv: one reveal.js deck per lecture from the committed notebooks' cells and outputs (nothing is
    executed)."""
    import nbformat

    out = build / "slides"
    out.mkdir(parents=True, exist_ok=True)
    for name in SLIDE_ASSETS:
        fetch_asset(name, out)
    exporter = deck_exporter()
    for lecture, stems in LECTURES.items():
        metadata = nbformat.read(ROOT / "notebooks" / f"{stems[0]}.ipynb", as_version=4).metadata
        # no live widgets in a deck: the explorer shows its still picture and says to run it
        metadata.pop("widgets", None)
        deck = nbformat.v4.new_notebook(metadata=metadata)
        for stem in stems:
            deck.cells += deck_cells(nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4).cells)
        html, _ = exporter.from_notebook_node(deck, resources={"metadata": {"name": lecture.replace("_", " ")}})
        html = html.replace(MERMAID_IMPORT.format(url=exporter.mermaid_js_url), "")
        html = html.replace("</head>", f"<style>{DECK_CSS}</style>\n</head>", 1)
        # nbconvert's template re-renders a slide's math each time the slide is shown, and MathJax's CommonHTML output
        # then holds every formula twice (seen in Chromium: "KL_tKL_t"); the math typeset once at load is right
        html = html.replace(RERENDER_ON_SLIDE_CHANGE, "")
        (out / f"{lecture}.slides.html").write_text(html)
        slides = sum(cell.metadata["slideshow"]["slide_type"] in ("slide", "subslide") for cell in deck.cells)
        print(f"[tasks] {out / lecture}.slides.html: {slides} slides from {', '.join(stems)}", flush=True)
    print("[tasks] open a deck in a browser (it works offline); press s for speaker notes", flush=True)
    return 0


def select_notebooks(names: list[str]) -> list[Path]:
    """The notebooks named: each name is a stem ("04_step_sweep") or its number ("04" or "4"); none means all."""
    every = notebooks()
    if not names:
        return every
    chosen = []
    for name in names:
        found = [path for path in every if path.stem == name or path.stem.split("_")[0] == name.zfill(2)]
        if not found:
            raise SystemExit(
                f"[tasks] no notebook {name!r}: give a number or a name from {', '.join(path.stem for path in every)}"
            )
        chosen += [path for path in found if path not in chosen]
    return sorted(chosen)


def run_interruptibly(command: list[str], env: dict) -> int:
    """Run the notebook executor as a child in a session of its own, so that this process alone decides when it stops.

    Ctrl-C (SIGINT to the terminal's process group) or SIGTERM here kills the child's whole process group at once;
    the kernel it was running (in a session of its own, started by jupyter_client) watches its parent and exits within
    a second of it. Then say what finished and return 128 + the signal's number, as a shell does."""
    import signal

    child = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    received: list[int] = []

    def stop(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait()
    except KeyboardInterrupt:
        if os.name == "nt":
            child.terminate()
        else:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        record = Path(env["DDIMLIB_BUILD"]) / "run_times.json"
        finished = json.loads(record.read_text())["seconds"] if record.exists() else {}
        name = signal.Signals(received[0]).name if received else "an interrupt"
        print(
            f"\n[tasks] interrupted by {name}: the run stopped, nothing is left running. Finished before it: "
            f"{', '.join(finished) or 'none'} (in {record.parent / 'notebooks'}); the notebook it was in did not "
            f"fail, it was stopped.",
            flush=True,
        )
        return 128 + (received[0] if received else signal.SIGINT)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def parser():
    import argparse

    top = argparse.ArgumentParser(
        prog="python3 tasks.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="execute the notebooks headless into build/ (all, or the ones named)")
    run.add_argument(
        "notebooks", nargs="*", metavar="NOTEBOOK", help="a number (04) or a name (04_step_sweep); default: all"
    )
    run.add_argument(
        "--quick", action="store_true", help="every budget small (a minute or two a notebook), into build/quick/"
    )
    commands.add_parser(
        "test",
        help="ruff (lint and format check), then the unit tests and every notebook (nbval), with coverage; other "
        "arguments go to pytest (and skip ruff)",
    )
    commands.add_parser(
        "device-check", help="the GPU checks and figures of benchmarks/device_check.py; other arguments go to it"
    )
    commands.add_parser(
        "slides", help="two lectures as reveal.js decks from the committed notebooks, into build/slides/"
    )
    return top


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "_execute":  # internal: already inside .venv; the notebooks to run follow
        build = Path(os.environ["DDIMLIB_BUILD"])
        return execute_notebooks([Path(path) for path in argv[1:]], build)
    if command == "_slides":  # internal: already inside .venv
        return build_slides(ROOT / "build")
    args, extra = parser().parse_known_args(argv)
    if extra and args.command in ("run", "slides"):
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run":
        paths = select_notebooks(args.notebooks)
    python = str(ensure_env())
    if args.command in ("run", "test"):
        ensure_fashion_mnist(python)
    # no progress bars inside the notebooks: the saved outputs would keep them; run prints each cell instead
    if args.command == "run":
        build = ROOT / "build" / ("quick" if args.quick else "")
        environment = os.environ | {
            "DDIMLIB_PROGRESS": "0",
            "DDIMLIB_QUICK": "1" if args.quick else "0",
            "DDIMLIB_BUILD": str(build),
        }
        return run_interruptibly([python, str(Path(__file__).resolve()), "_execute", *map(str, paths)], environment)
    if args.command == "slides":
        return subprocess.run([python, str(Path(__file__).resolve()), "_slides"], cwd=ROOT).returncode
    if args.command == "device-check":
        return subprocess.run([python, str(ROOT / "benchmarks" / "device_check.py"), *extra], cwd=ROOT).returncode
    lint = lint_failures(python) if not extra else []  # with pytest arguments (one file, -k): only the tests
    pytest = [python, "-m", "pytest", "--nbval-lax", "--cov=ddimlib", "--cov-report=term-missing:skip-covered", *extra]
    status = subprocess.run(pytest, cwd=ROOT).returncode
    if lint:
        print(
            f"[tasks] ruff found problems ({', '.join(lint)}): run `{python} -m ruff check --fix .` and "
            f"`{python} -m ruff format .`",
            file=sys.stderr,
        )
    return status or (1 if lint else 0)


def lint_failures(python: str) -> list[str]:
    """Run ruff's lint and its format check (settings in pyproject.toml) on the project; the names of those that
    failed. Their findings are printed; the tests run either way."""
    checks = {"ruff check": ["check", "."], "ruff format --check": ["format", "--check", "."]}
    failed = []
    for name, arguments in checks.items():
        print(f"[tasks] {name}", flush=True)
        if subprocess.run([python, "-m", "ruff", *arguments], cwd=ROOT).returncode != 0:
            failed.append(name)
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
