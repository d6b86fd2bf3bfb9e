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
        assert abs(seconds - record["seconds"][name]) <= 0.3 * record["seconds"][name], (name, seconds, record["seconds"][name])
    assert record["date"] in readme and record["machine"] in readme and not record["failed"]


def test_no_module_imports_another_modules_private_name():
    """A name two modules need is public in the module whose job it is (ddimlib._validate's checks are public names)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "ddimlib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ddimlib"):
                offenders += [f"{path.relative_to(ROOT)}: {node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
    assert offenders == []
