"""The committed notebooks as a reader gets them: unchanged by opening them in JupyterLab, and an explorer
that draws in a fresh kernel. (Each notebook's own asserts run under nbval: `python3 tasks.py test`.)"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_opening_and_saving_in_jupyterlab_changes_nothing(path):
    """JupyterLab saves through nbformat (sorted keys, indent 1) and writes its kernel's display name; a
    notebook already in that form is written back byte for byte, so reading one leaves git status clean."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata.kernelspec == {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5) and all(cell.get("id") for cell in nb.cells)  # no ids to add
    nbformat.validate(nb)
    assert nbformat.writes(nb) + "\n" == text


def cells_tagged(nb, *tags):
    return [cell for cell in nb.cells if set(tags) & set(cell.metadata.get("tags", []))]


def test_the_explorer_draws_a_picture_in_a_fresh_kernel():
    """Only the set-up cells and the explorer cell of notebook 04, in a new kernel with no pyplot figure made
    first: its output must carry the picture as image/png (a bare matplotlib Figure showed only its repr)."""
    nb = nbformat.read(NOTEBOOKS / "04_step_sweep.ipynb", as_version=4)
    nb.cells = cells_tagged(nb, "setup", "explorer")
    assert len(nb.cells) == 3
    for cell in nb.cells:
        cell.outputs = []
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    explorer_outputs = nb.cells[-1].outputs
    bundles = [output.get("data", {}) for output in explorer_outputs]
    assert any("image/png" in data and "application/vnd.jupyter.widget-view+json" in data for data in bundles)
    assert not any("<Figure size" in data.get("text/plain", "") for data in bundles)
    assert any("run this cell in Jupyter" in data.get("text/plain", "") for data in bundles)


def test_notebooks_train_for_a_number_of_steps_not_minutes():
    """A step budget shows the same model on a busy laptop and an idle one; a wall-clock budget does not."""
    calls = []
    for path in PATHS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                calls += [(path.stem, line.strip()) for line in cell.source.splitlines() if ".train(" in line]
    assert calls, "no notebook trains a model any more: update this test"
    assert all("steps=" in line and "minutes" not in line for _, line in calls), calls


def test_quick_mode_runs_every_notebook_and_fails_on_no_claim_it_cannot_resolve(tmp_path, monkeypatch):
    """`python3 tasks.py run --quick`: every notebook with its small budgets, to the end. A claim that the small
    samples cannot resolve prints "not resolved at this sample size" (ddimlib.stats) instead of failing."""
    import json
    import sys

    sys.path.insert(0, str(NOTEBOOKS.parent))
    import tasks

    monkeypatch.setenv("DDIMLIB_QUICK", "1")
    monkeypatch.setenv("DDIMLIB_PROGRESS", "0")
    assert tasks.execute_notebooks(PATHS, tmp_path) == 0
    record = json.loads((tmp_path / "run_times.json").read_text())
    assert record["failed"] == [] and set(record["seconds"]) == {path.stem for path in PATHS}
    quick = nbformat.read(tmp_path / "notebooks" / "04_step_sweep.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for cell in quick.cells for output in cell.get("outputs", []))
    assert "100 digits" in printed and "not resolved at this sample size" in printed  # it ran small, and said so
