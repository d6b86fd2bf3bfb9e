"""tasks.py, the README's commands: the torch it installs, a main job that goes on past a failing notebook and stops
when told, its arguments."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import tasks  # noqa: E402


@pytest.mark.parametrize(
    "system, gpu, reachable, index",
    [
        ("Linux", False, True, tasks.CPU_INDEX),  # the CPU-only build, not several GB of CUDA
        ("Linux", False, False, None),  # the CPU index cannot be reached: the default index, said so
        ("Linux", True, True, None),  # an NVIDIA GPU: the default (CUDA) build
        ("Darwin", False, True, None),  # macOS and Windows: the default index is CPU (or Apple GPU) already
        ("Windows", False, True, None),
        ("Windows", True, True, None),  # Windows' default build is CPU-only: said so, with where to look
    ],
)
def test_the_torch_build_suits_the_machine(system, gpu, reachable, index):
    arguments, reason = tasks.torch_install(system, gpu, reachable)
    assert arguments[0] == tasks.TORCH_PIN
    assert (arguments[1:] == ["--index-url", index]) if index else arguments == [tasks.TORCH_PIN]
    if system == "Linux" and not gpu:
        assert "no NVIDIA GPU" in reason and (("cannot be reached" in reason) != reachable)
    if gpu:
        assert "CUDA" in reason
    if system == "Windows" and gpu:
        assert "only the CPU build" in reason


def test_a_failing_cpu_index_falls_back_to_the_default_index(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(
        tasks.subprocess,
        "run",
        lambda command, **kw: (
            calls.append(command) or tasks.subprocess.CompletedProcess(command, 1 if "--index-url" in command else 0)
        ),
    )
    tasks.install_torch(["pip", "install"], [tasks.TORCH_PIN, "--index-url", tasks.CPU_INDEX])
    assert calls == [
        ["pip", "install", tasks.TORCH_PIN, "--index-url", tasks.CPU_INDEX],
        ["pip", "install", tasks.TORCH_PIN],
    ]
    assert "installing torch==2.13.0 from the default index" in capsys.readouterr().out


def test_no_gpu_is_seen_without_nvidia_smi_or_driver(monkeypatch):
    monkeypatch.setattr(tasks.shutil, "which", lambda name: None)
    monkeypatch.setattr(tasks.Path, "exists", lambda self: False)
    assert tasks.nvidia_gpu_present() is False


def notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)
    return path


def children() -> set[int]:
    """The processes this test process started that are still running (Linux's /proc; empty elsewhere)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def test_run_goes_on_past_a_failing_notebook_and_lists_the_failure(tmp_path, capfd):
    before = children()
    paths = [
        notebook(tmp_path / "01_fails.ipynb", "x = 1", "assert x == 2, 'a false claim'", "print('never')"),
        notebook(
            tmp_path / "02_dies.ipynb", "import os", "os._exit(1)  # the kernel dies, as under an out-of-memory kill"
        ),
        notebook(tmp_path / "03_works.ipynb", "print('last notebook ran')"),
    ]
    assert tasks.execute_notebooks(paths, tmp_path / "build") == 1
    out, err = capfd.readouterr()
    assert "01_fails cell 2/3 at 0:0" in out and "03_works cell 1/1" in out  # progress, per cell
    assert "[tasks] FAILED 01_fails.ipynb, code cell 2: AssertionError: a false claim" in out
    assert "[tasks] FAILED 02_dies.ipynb, code cell 2: DeadKernelError" in out
    assert "1 of 3 notebooks ran" in out
    assert "without encryption" not in out + err  # the kernel's TCP warning is gone
    assert children() <= before  # and no kernel is left running
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "03_works.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "last notebook ran\n"
    record = json.loads((tmp_path / "build" / "run_times.json").read_text())
    assert set(record["seconds"]) == {"01_fails", "02_dies", "03_works"} and record["failed"] == [
        "01_fails.ipynb",
        "02_dies.ipynb",
    ]


def test_a_run_keeps_no_output_of_a_solution_cell_unless_it_failed(tmp_path):
    path = notebook(tmp_path / "01_exercise.ipynb", "print('the answer is 42')", "print('shown')", "1 / 0")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].metadata["tags"] = ["solution"]
    nb.cells[2].metadata["tags"] = ["solution"]
    nbformat.write(nb, path)
    assert tasks.execute_notebooks([path], tmp_path / "build") == 1  # the failing solution is reported
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "01_exercise.ipynb", as_version=4)
    assert executed.cells[0].outputs == [] and executed.cells[1].outputs[0]["text"] == "shown\n"
    assert executed.cells[2].outputs[0]["output_type"] == "error"  # a failure stays visible


def test_no_committed_notebook_shows_the_output_of_a_solution():
    """A predict-then-measure exercise is spoiled by a visible "rho = 0.4711" under it."""
    shown = [
        f"{path.name}, cell {index}"
        for path in tasks.notebooks()
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if "solution" in cell.metadata.get("tags", []) and cell.get("outputs")
    ]
    assert tasks.notebooks() and shown == []


def test_slide_types_come_from_headings_setup_tags_and_details_unless_a_cell_sets_its_own():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    assert tasks.slide_type(md("# 04 · Title")) == tasks.slide_type(md("## 1 · Section")) == "slide"
    assert tasks.slide_type(md("### 1.1 · Sub-section")) == "subslide"
    assert tasks.slide_type(md("<details><summary>history</summary>...</details>")) == "notes"
    assert tasks.slide_type(md("*Shown:* the loss falls.")) == tasks.slide_type(code("x = 1")) == "-"
    assert tasks.slide_type(code("import torch", metadata={"tags": ["setup"]})) == "skip"
    # no spoilers on a slide
    assert tasks.slide_type(code("def solution_x(): ...", metadata={"tags": ["solution"]})) == "skip"
    assert tasks.slide_type(md("## A heading", metadata={"slideshow": {"slide_type": "fragment"}})) == "fragment"


def test_a_deck_shows_a_notebooks_main_line_and_nothing_from_its_exercises_on():
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        md("# 04 · Title"),
        code("x = 1"),
        md("## Summary"),
        md("## Exercises\n\nTwo more."),
        md("### Exercise 1"),
        code("def my_step(x):\n    raise NotImplementedError"),
        md("## Appendix · The apparatus"),
        code("y = 2"),
    ]
    deck = tasks.deck_cells(cells)
    shown = [(cell.cell_type, cell.metadata["slideshow"]["slide_type"]) for cell in deck]
    # each heading on its slide, the whole cell in the notes; code in the notes; nothing from the exercises on
    assert shown[:5] == [("markdown", "slide"), ("markdown", "notes"), ("code", "notes")] + [
        ("markdown", "slide"),
        ("markdown", "notes"),
    ]
    assert [kind for _, kind in shown[5:]] == ["skip"] * 5


def test_a_slide_shows_a_few_lines_and_one_figure_and_the_notes_keep_the_rest():
    md, code, output = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell, nbformat.v4.new_output
    figure = lambda name: output("display_data", data={"image/png": name, "text/plain": "<Figure>"})
    text = (
        "## 2 · A section\n\nWe derive Eq. 12 from Eq. 10. It then checks it, at length.\n\n"
        "- **One.** the first point; with detail\n- **Two** (§1): the second point is long, and its detail is so long "
        "that a slide has no room for it at all: it goes on and on, with more words than a slide has room for\n\n"
        "$$a = b$$\n\nMore prose that only the notes keep.\n\n$$c = d$$"
    )
    first = code("plot(1)", outputs=[output("stream", text="a verdict the slide leaves out\n"), figure("AAA")])
    cells = [md(text), md("*Shown:* a reading."), first, code("plot(2)", outputs=[figure("BBB")])]
    deck = tasks.deck_cells(cells)
    on_slide = [cell for cell in deck if cell.metadata["slideshow"]["slide_type"] != "notes"]
    assert on_slide[0].source == (
        "## 2 · A section\n\nWe derive Eq. 12 from Eq. 10.\n\n"
        "- **One.** the first point; with detail\n- **Two** (§1): the second point is long, and its detail is so long "
        "that a slide has no room for it at all\n\n$$c = d$$"
    )
    assert [cell.outputs for cell in on_slide[1:]] == [[figure("AAA")]]  # one figure, without its printed lines
    notes = [cell for cell in deck if cell.metadata["slideshow"]["slide_type"] == "notes"]
    assert [cell.source for cell in notes if cell.cell_type == "markdown"] == [text, "*Shown:* a reading."]
    assert "a verdict the slide leaves out" in str(
        [cell.outputs for cell in notes if cell.cell_type == "code"]
    ) and "BBB" in str(notes)
    assert all(tasks.HIDE_INPUT in cell.metadata["tags"] for cell in deck if cell.cell_type == "code")  # no code
    assert tasks.first_sentence("With $\\eta = 0.5$ it holds. Next.") == "With $\\eta = 0.5$ it holds."
    # a lead ending in ":" shows the equation it introduces; an italic paragraph (a citation) does not take its place
    assert tasks.slide_text("*Song et al.*\n\nThe step:\n\n$$x = 1$$\n\nThen:\n\n$$y = 2$$") == (
        "*Song et al.*\n\nThe step:\n\n$$x = 1$$"
    )
    # a first sentence that only announces gives way to the slide's reading of its figure
    announced = tasks.deck_cells(
        [md("## 3 · Title\n\nThis section shows a thing."), md("*Shown:* it rises. And more.")]
    )
    assert announced[0].source == "## 3 · Title\n\nIt rises."
    wordy = tasks.deck_cells([md("## 3 · Title\n\nThis section shows a thing."), md("*Shown:* " + "word " * 40 + ".")])
    assert wordy[0].source == "## 3 · Title\n\nThis section shows a thing."  # a reading too long for a slide
    pytest.importorskip("nbconvert")
    html, _ = tasks.deck_exporter().from_notebook_node(nbformat.v4.new_notebook(cells=deck))
    assert "plot(1)" not in html and "AAA" in html


def test_every_lecture_is_built_from_notebooks_that_exist():
    stems = {path.stem for path in tasks.notebooks()}
    assert all(set(lecture) <= stems for lecture in tasks.LECTURES.values()), tasks.LECTURES


@pytest.mark.parametrize("cores, busy, threads", [(2, 0.1, 2), (2, 0.9, 1), (2, 3.0, 1), (8, 1.2, 7), (1, 0.0, 1)])
def test_torch_gets_the_cores_that_other_programs_leave_free(cores, busy, threads):
    assert tasks.kernel_threads(cores, busy) == threads


def test_a_busy_core_is_seen():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert tasks.busy_cores(1.0) >= 0.8  # the spinning program, at least (and whatever else runs)
    finally:
        hog.kill()
        hog.wait()


def test_each_notebook_runs_with_the_threads_the_machine_has_free_unless_the_user_chose(tmp_path, monkeypatch, capfd):
    cores = os.cpu_count()
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # so that monkeypatch restores the variable as it was, set or not
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(tasks, "busy_cores", lambda: cores - 1.0)  # all cores but one are busy
    paths = [notebook(tmp_path / "01_threads.ipynb", "import torch; print(torch.get_num_threads())")]
    assert tasks.execute_notebooks(paths, tmp_path / "a") == 0
    if cores > 1:
        assert f"keep {cores - 1} of {cores} cores busy: torch gets 1 thread(s)" in capfd.readouterr().out
    assert (
        nbformat.read(tmp_path / "a" / "notebooks" / "01_threads.ipynb", as_version=4).cells[0].outputs[0]["text"]
        == "1\n"
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own choice, on an idle machine: kept
    monkeypatch.setattr(tasks, "busy_cores", lambda: 0.0)
    assert tasks.execute_notebooks(paths, tmp_path / "b") == 0
    assert "torch gets" not in capfd.readouterr().out
    assert (
        nbformat.read(tmp_path / "b" / "notebooks" / "01_threads.ipynb", as_version=4).cells[0].outputs[0]["text"]
        == "1\n"
    )


def test_executed_notebooks_keep_no_widget_state_so_offline_viewers_show_the_still(tmp_path):
    paths = [notebook(tmp_path / "01_widget.ipynb", "import ipywidgets\nipywidgets.IntSlider(value=3)")]
    assert tasks.execute_notebooks(paths, tmp_path / "build") == 0
    executed = nbformat.read(tmp_path / "build" / "notebooks" / "01_widget.ipynb", as_version=4)
    assert "application/vnd.jupyter.widget-view+json" in executed.cells[0].outputs[0]["data"]
    # with it, nbconvert's HTML draws the widget from JavaScript fetched online
    assert "widgets" not in executed.metadata


def test_the_committed_explorer_renders_as_its_still_in_static_html():
    from nbconvert import HTMLExporter

    path = ROOT / "notebooks" / "04_step_sweep.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert "A still picture: run this cell" in html and "unpkg.com" not in html


def processes_marked(marker: str) -> set[int]:
    """The running processes whose environment holds `marker` (Linux's /proc): a run's own, the kernels included."""
    found = set()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if (
                marker.encode() in environ.read_bytes()
                and "Z" not in (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[:1]
            ):
                found.add(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the run's processes through Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signalled_run_stops_at_once_says_what_finished_and_leaves_no_process(tmp_path, signum):
    """`run` as a terminal runs it: signalled while a kernel sleeps in the second of three notebooks, it stops within
    seconds, reports the first notebook as finished and the second as stopped (not failed), starts no third, exits
    128 + the signal, and no process of it (executor or kernel) is left running."""
    paths = [
        notebook(tmp_path / "01_quick.ipynb", "print('done')"),
        notebook(tmp_path / "02_long.ipynb", "import time", "time.sleep(600)"),
        notebook(tmp_path / "03_never.ipynb", "print('never')"),
    ]
    marker = f"DDIMLIB_TEST_RUN={uuid.uuid4().hex}"
    env = os.environ | {"DDIMLIB_BUILD": str(tmp_path / "build"), marker.split("=")[0]: marker.split("=")[1]}
    script = (
        "import sys, tasks; sys.exit(tasks.run_interruptibly([sys.executable, tasks.__file__, '_execute', "
        "*sys.argv[1:]], dict(tasks.os.environ)))"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, paths)],
        cwd=Path(tasks.__file__).parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(240, run.kill)
    watchdog.start()
    lines = []
    try:
        for line in run.stdout:
            lines.append(line)
            if "02_long cell 2/2" in line:
                break
        time.sleep(1.0)
        signalled = time.monotonic()
        run.send_signal(signum)
        lines += run.stdout.readlines()
        run.wait(timeout=60)
    finally:
        watchdog.cancel()
    out = "".join(lines)
    assert run.returncode == 128 + signum, out
    assert time.monotonic() - signalled < 20
    assert f"interrupted by {signal.Signals(signum).name}" in out and "Finished before it: 01_quick" in out, out
    assert "FAILED" not in out and "03_never" not in out
    deadline = time.monotonic() + 10
    while processes_marked(marker.split("=")[1]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_marked(marker.split("=")[1])


def test_every_command_has_help_and_a_misspelt_flag_is_refused_before_anything_runs(capsys, monkeypatch):
    monkeypatch.setattr(tasks, "ensure_env", lambda: pytest.fail("nothing may be set up or run"))
    for command in (
        ["--help"],
        ["run", "--help"],
        ["test", "--help"],
        ["slides", "--help"],
        ["device-check", "--help"],
    ):
        with pytest.raises(SystemExit) as exited:
            tasks.main(command)
        assert exited.value.code == 0 and "usage: python3 tasks.py" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        tasks.main(["run", "--qiuck"])
    assert exited.value.code == 2 and "unrecognized arguments: --qiuck" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"no notebook '09': give a number or a name from 00_start_here, "):
        tasks.main(["run", "09"])


def test_run_takes_notebooks_by_number_or_name():
    assert [p.stem for p in tasks.select_notebooks(["04"])] == ["04_step_sweep"]
    assert [p.stem for p in tasks.select_notebooks(["5", "01_forward_process", "05"])] == [
        "01_forward_process",
        "05_ode_and_encoding",
    ]
    assert tasks.select_notebooks([]) == tasks.notebooks()


def test_the_lint_step_fails_on_an_unused_import_and_on_unformatted_code(tmp_path, monkeypatch):
    """ruff, with the project's settings, runs before the tests; it can fail, and the project itself passes it."""
    (tmp_path / "pyproject.toml").write_text((tasks.ROOT / "pyproject.toml").read_text())
    (tmp_path / "good.py").write_text("import os\n\nprint(os.sep)\n")
    monkeypatch.setattr(tasks, "ROOT", tmp_path)
    assert tasks.lint_failures(sys.executable) == []
    (tmp_path / "unused.py").write_text("import os\n")
    assert tasks.lint_failures(sys.executable) == ["ruff check"]
    (tmp_path / "unused.py").unlink()
    (tmp_path / "crowded.py").write_text("x = [1,2]\n")
    assert tasks.lint_failures(sys.executable) == ["ruff format --check"]
    monkeypatch.setattr(tasks, "ROOT", Path(tasks.__file__).resolve().parent)
    assert tasks.lint_failures(sys.executable) == []
