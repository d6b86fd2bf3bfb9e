"""The series' own text, measured: each notebook's main line in words and lines of code, and the reading time they
imply for a careful reader who reads English as a second language.

The main line of a notebook is everything before its `## Exercises` heading, less the folded `<details>` blocks. Its
words are those of the markdown, with each equation ($...$ or $$...$$) counted as one word; its code is the non-blank
lines of its code cells (each read with its printed output). The main line of the series is that of its notebooks
other than the appendices (06_appendix_measuring, 07_appendix_notes_and_names: read by whoever wants to check a
verdict or look a term up).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# The reading rate, fitted (least squares, through zero) to four readings of main lines by careful readers of English
# as a second language, derivations followed on paper: 00, 03 and 04 at commit 876ce02 by the author of the issue that
# asked for these times (45, 55 and 85 minutes); 01, 02 and 05 at 4ffb89e^ (106, 77 and 125 minutes); and 00-05 twice
# at f3fa273 (37, 70, 65, 35, 85, 65 and 30, 65, 70, 35, 70, 60 minutes), the last three by helpers reading as Korean
# graduate students. The readers differ more than the texts do: against these counts the author read about 65
# words a minute and each helper 31 to 33, whatever the length of the text; the fit lies between. A line of code, read
# with its printed output, is taken to cost as much as CODE_LINE_WORDS words (the fit barely depends on it: 2 to 8
# words move the series' main line by a tenth).
WORDS_PER_MINUTE = 40
CODE_LINE_WORDS = 4

EXERCISES = "## Exercises"
DETAILS = re.compile(r"<details>.*?</details>", re.S)  # a folded block: outside the main line
_EQUATION = re.compile(r"\$\$.*?\$\$|\$[^$]+\$", re.S)
_MARKUP = re.compile(r"[#*|`>_-]+")


@dataclass(frozen=True)
class Reading:
    """A notebook's main line: words of markdown, lines of code, and the minutes they take at the stated rate."""

    words: int
    code_lines: int

    @property
    def minutes(self) -> float:
        return (self.words + CODE_LINE_WORDS * self.code_lines) / WORDS_PER_MINUTE


def count_words(markdown: str) -> int:
    """Words of a markdown cell outside its <details> blocks, each equation counted as one word."""
    text = DETAILS.sub(" ", markdown)
    equations = len(_EQUATION.findall(text))
    return equations + len(_MARKUP.sub(" ", _EQUATION.sub(" ", text)).split())


def count_code_lines(code: str) -> int:
    """Lines of a code cell that are not blank."""
    return len([line for line in code.splitlines() if line.strip()])


def is_appendix(path: str | Path) -> bool:
    """Whether the notebook at `path` is an appendix (its name says so), outside the series' main line."""
    return "_appendix_" in Path(path).stem


def main_line(notebook: dict) -> list[dict]:
    """The cells before the notebook's `## Exercises` heading."""
    cells = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown" and "".join(cell["source"]).lstrip().startswith(EXERCISES):
            break
        cells.append(cell)
    return cells


def reading(path: str | Path) -> Reading:
    """The main line of the notebook at `path`, counted."""
    return count_main_line(json.loads(Path(path).read_text(encoding="utf-8")))


def count_main_line(notebook: dict) -> Reading:
    """The main line of a notebook (as read from its .ipynb file), counted."""
    cells = main_line(notebook)
    sources = [("".join(cell["source"]), cell["cell_type"]) for cell in cells]
    return Reading(
        words=sum(count_words(source) for source, kind in sources if kind == "markdown"),
        code_lines=sum(count_code_lines(source) for source, kind in sources if kind == "code"),
    )


# What each notebook shows: the rows of notebook 00's roadmap, in teaching order.
ROADMAP = {
    "00_start_here": "this map: DDIM in one page, the roadmap, the notation",
    "01_forward_process": (
        "the non-Markovian forward processes $q_\\sigma$ share DDPM's marginals (Monte Carlo at every checked $t$, "
        "Lemma 1 exactly); what $\\sigma$ changes: how the states are tied together; why skipping steps is legal"
    ),
    "02_unified_objective": (
        "$J_\\sigma = L_\\gamma + C$ with the exact weight $\\gamma_t$, measured; why one network trained with "
        "$L_\\text{simple}$ serves every $\\sigma$; what Theorem 1 says at $\\sigma \\to 0$"
    ),
    "03_training": (
        "training on a 2-D set and 8x8 digits; a quality number (FD in a classifier's features) read against a "
        "data floor drawn like the samples; the shipped checkpoint judged"
    ),
    "04_step_sweep": (
        "Eq. 12 derived; the paper's Table 1 ($\\eta$ x $S$) on Fashion-MNIST, cached, with its Figure 3; when "
        "$\\eta = 0$ wins; the same sweep live on the digits; the speed-up at equal quality; sample consistency; "
        "after the exercises, an explorer; an appendix: the live table checked, the claims on the digits and a "
        "2-D set, timing, quadratic $\\tau$"
    ),
    "05_ode_and_encoding": (
        "DDIM as Euler's method on an ODE; Proposition 1; encoding and reconstruction (Table 2); slerp; after the "
        "exercises, how Gaussian the latents are and a second-order solver against DDIM"
    ),
    "06_appendix_measuring": (
        "the appendix on measuring: the floor drawn with replacement, one FD's spread and the sample size it asks "
        "for, the shipped checkpoint judged live, what Table 1 costs, the digits sweep model, what FD sees at 8x8 and "
        "28x28, one set as one draw"
    ),
    "07_appendix_notes_and_names": (
        "the appendix for the study notes: each of their sections mapped to where the series checks it, the "
        "series' corrections to them, a Korean-English glossary, diffusers' and k-diffusion's names"
    ),
}


def count_exercises(notebook: dict) -> int:
    """The `### Exercise` headings of a notebook (as read from its .ipynb file)."""
    return sum(
        line.startswith("### Exercise")
        for cell in notebook["cells"]
        if cell["cell_type"] == "markdown"
        for line in "".join(cell["source"]).splitlines()
    )


def series_reading(directory: str | Path) -> Reading:
    """The main line of the series: the notebooks in `directory` other than the appendices, counted together."""
    readings = [reading(path) for path in Path(directory).glob("[0-9][0-9]_*.ipynb") if not is_appendix(path)]
    return Reading(words=sum(r.words for r in readings), code_lines=sum(r.code_lines for r in readings))


def roadmap(directory: str | Path, seconds: dict[str, float]) -> str:
    """Notebook 00's roadmap as a markdown table: each notebook of `directory` in ROADMAP's order, what it shows, its
    main line counted, its reading time, its run time (from `seconds`, a notebook's stem to the seconds of its last
    run) and its exercises. A notebook that ROADMAP does not describe, or a row without its notebook, is an error."""
    paths = {path.stem: path for path in sorted(Path(directory).glob("[0-9][0-9]_*.ipynb"))}
    if sorted(paths) != sorted(ROADMAP):
        raise ValueError(f"ROADMAP describes {sorted(ROADMAP)} but {directory} holds {sorted(paths)}")
    rows = [
        "| notebook | what it shows | main line | reading | run time, full mode | exercises |",
        "|---|---|---|---|---|---|",
    ]
    for stem, what in ROADMAP.items():
        notebook, run = json.loads(paths[stem].read_text(encoding="utf-8")), seconds.get(stem)
        r = count_main_line(notebook)
        run_time = "not yet recorded" if run is None else f"{run:.0f} s" if run < 90 else f"{run / 60:.1f} min"
        length = f"{r.words:,} words, {r.code_lines} lines of code"
        rows.append(
            f"| `{stem}` | {what} | {length} | ~{r.minutes:.0f} min | {run_time} | {count_exercises(notebook)} |"
        )
    return "\n".join(rows)


def roadmap_totals(directory: str | Path, record: dict) -> str:
    """The two lines under the roadmap: the series' main line in all at the stated rate, and the run that `record` (a
    notebooks/run_times.json: its date, machine and seconds per notebook) comes from."""
    main = series_reading(directory)
    return (
        f"reading: {WORDS_PER_MINUTE} words a minute, a line of code counted as {CODE_LINE_WORDS} words; the main "
        f"lines of 00-05 together {main.words:,} words and {main.code_lines:,} lines of code, about "
        f"{main.minutes / 60:.1f} h, exercises and the appendices extra\n"
        f"run times: `python3 tasks.py run` on {record['date']}, {record['machine']}; the {len(record['seconds'])} "
        f"recorded notebooks together {sum(record['seconds'].values()) / 60:.1f} min"
    )
