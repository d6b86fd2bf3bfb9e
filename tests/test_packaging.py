"""The project's own files agree with each other: pyproject.toml, environment.yml, tasks.py, README."""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~;\[ ]", spec.strip(), maxsplit=1)[0].lower()


def conda_pip_requirements() -> list[str]:
    """The entries under `- pip:` in environment.yml (a tiny reader, enough for this flat file)."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    return [line.strip()[2:] for line in lines[start + 1 :] if line.strip().startswith("- ")]


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for d in project["optional-dependencies"]["test"] if ";" not in d]
    conda = conda_pip_requirements()
    assert {requirement_name(d) for d in declared} == {requirement_name(d) for d in conda}
    # the same version bounds, except torch, which conda pins to the wheel tasks.py installs
    same = lambda specs: {s.replace(" ", "") for s in specs if requirement_name(s) != "torch"}
    assert same(declared) == same(conda)
    assert "torch==2.13.0" in conda


def test_readme_quick_start_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^python3 tasks\.py \w+", quick, flags=re.M)
    assert commands == ["python3 tasks.py run", "python3 tasks.py test"]
    assert "python3 tasks.py test" in (ROOT / ".ci" / "run").read_text()
    assert 'TORCH_PIN = "torch==2.13.0"' in (ROOT / "tasks.py").read_text()


def test_readme_time_table_is_the_last_recorded_run():
    """The README's CPU times come from notebooks/run_times.json (a copy of build/run_times.json that
    `python3 tasks.py run` wrote on a quiet machine), within 30 %, with its date and machine stated."""
    import json

    readme = (ROOT / "README.md").read_text()
    record = json.loads((ROOT / "notebooks" / "run_times.json").read_text())
    rows = re.findall(r"^\| `(\d\d_\w+)` \|.*\| ~([\d.]+) (s|min) \|$", readme, flags=re.M)
    notebooks = {path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert {name for name, _, _ in rows} == set(record["seconds"]) == notebooks
    for name, value, unit in rows:
        seconds = float(value) * (60 if unit == "min" else 1)
        assert abs(seconds - record["seconds"][name]) <= 0.3 * record["seconds"][name], (
            name,
            seconds,
            record["seconds"][name],
        )
    assert record["date"] in readme and record["machine"] in readme and not record["failed"]


def test_no_module_imports_another_modules_private_name():
    """A name two modules need is public in the module whose job it is (ddimlib._validate's checks are public)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "ddimlib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ddimlib"):
                offenders += [
                    f"{path.relative_to(ROOT)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_")
                ]
    assert offenders == []


def library_names() -> dict[str, str]:
    """Every public function and class that a ddimlib module defines, as {name: module}."""
    import importlib
    import inspect
    import pkgutil

    import ddimlib

    names = {}
    for info in pkgutil.walk_packages(ddimlib.__path__, "ddimlib."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            defined_here = getattr(value, "__module__", None) == module.__name__
            if not name.startswith("_") and defined_here and (inspect.isfunction(value) or inspect.isclass(value)):
                names[name] = module.__name__
    return names


def notebook_definitions(path: Path) -> set[str]:
    """The names a notebook's code cells define with def, class or a lambda assigned to a name."""
    import ast

    import nbformat

    defined = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
                defined |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    return defined


def test_no_notebook_redefines_a_name_the_library_exports():
    """Notebooks import the kernels; a notebook's own `def mean_se` beside `ddimlib.stats.mean_se` is a second
    implementation that can drift from the one the tests prove."""
    exported = library_names()
    assert {"sigma_table", "mean_se", "decode", "GaussianMixture"} <= set(exported)
    clashes = [
        f"{path.name}: {name} (ddimlib exports it from {exported[name]})"
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        for name in sorted(notebook_definitions(path) & set(exported))
    ]
    assert clashes == []


def test_a_wheel_installed_outside_the_checkout_is_whole(tmp_path):
    """What `pip install .` (or from git, into a cloud notebook) installs: a wheel built from this tree, put in a
    folder
    of its own and imported from outside the checkout: every module imports, the digits load (hash-checked), and a
    shipped checkpoint and the Fashion-MNIST classifier load from the wheel's own copy of data/."""
    import shutil
    import subprocess

    source = tmp_path / "source"  # a clean copy: setuptools would reuse a build/ folder left in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "ddimlib", source / "ddimlib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data", source / "data", ignore=shutil.ignore_patterns("in_progress", "*.state"))
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("ddimlib-*.whl"))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    modules = sorted(
        f"ddimlib.{p.relative_to(ROOT / 'ddimlib').with_suffix('').as_posix().replace('/', '.')}"
        for p in (ROOT / "ddimlib").rglob("*.py")
        if p.name != "__init__.py"
    )
    script = f"""
import importlib, ddimlib
for name in {modules!r}:
    importlib.import_module(name)
from ddimlib.data import DATA_DIR, load_digits
from ddimlib.metrics import load_classifier
from ddimlib.training import load_model
assert ddimlib.__file__.startswith({str(tmp_path / "site")!r}), ddimlib.__file__
assert DATA_DIR.name == "data_files", DATA_DIR
assert load_digits("test").images.shape == (500, 1, 8, 8)
load_model(DATA_DIR / "checkpoints" / "digits_unet.pt", expect_model="unet")
load_classifier(dataset="fashion_mnist")
print("whole")
"""
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"} | {
        "PYTHONPATH": str(tmp_path / "site")
    }
    ran = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout.strip() == "whole", ran.stderr[-3000:]
