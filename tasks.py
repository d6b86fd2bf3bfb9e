#!/usr/bin/env python3
"""The project's two commands, with nothing but Python >= 3.10 and pip needed beforehand.

    python3 tasks.py run     execute every notebook headless; results under build/
    python3 tasks.py test    run the unit tests and every notebook (nbval), with coverage

Each sets up on first use, and again only when pyproject.toml changes: a virtual environment in
.venv/, the pinned CPU wheel torch==2.13.0 first (an unpinned torch would pull a CUDA build of
several GB), then this project with its test extra. Extra arguments to `test` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
TORCH_PIN = "torch==2.13.0"
STAMP = VENV / "ddimlib-installed.txt"


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env() -> Path:
    """Create .venv and install into it, unless the stamp says it is already up to date."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + TORCH_PIN.encode()).hexdigest()
    if venv_python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return venv_python()
    if not venv_python().exists():
        print(f"[tasks] creating virtual environment {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    pip = [str(venv_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    print(f"[tasks] installing {TORCH_PIN} (CPU wheel), then ddimlib[test]", flush=True)
    subprocess.run([*pip, TORCH_PIN], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted + "\n")
    return venv_python()


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def execute_notebooks() -> int:
    """Run inside .venv: execute each notebook in order, save it and its figures under build/."""
    import base64

    import nbformat
    from nbclient import NotebookClient

    paths = notebooks()
    if not paths:
        print("[tasks] notebooks/ holds no notebooks yet; nothing to run")
        return 0
    out_dir, fig_root = ROOT / "build" / "notebooks", ROOT / "build" / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        print(f"[tasks] executing {path.relative_to(ROOT)}", flush=True)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, out_dir / path.name)
        fig_dir = fig_root / path.stem
        fig_dir.mkdir(parents=True, exist_ok=True)
        count = 0
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    count += 1
                    (fig_dir / f"cell{index:02d}_{count:02d}.png").write_bytes(base64.b64decode(png))
        print(f"[tasks]   -> build/notebooks/{path.name} and {count} figure(s) in build/figures/{path.stem}/", flush=True)
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "_execute":  # internal: already inside .venv
        return execute_notebooks()
    if command not in ("run", "test"):
        print(__doc__)
        return 2
    python = str(ensure_env())
    if command == "run":
        return subprocess.run([python, str(Path(__file__).resolve()), "_execute"], cwd=ROOT).returncode
    pytest = [python, "-m", "pytest", "--nbval-lax", "--cov=ddimlib", "--cov-report=term-missing:skip-covered", *argv[1:]]
    return subprocess.run(pytest, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
