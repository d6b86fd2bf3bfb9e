"""The series' own text, measured: each notebook's main line in words and lines of code, and the reading time they
imply for a careful reader who reads English as a second language.

The main line of a notebook is everything before its `## Exercises` heading, less the folded `<details>` blocks. Its
words are those of the markdown, with each equation ($...$ or $$...$$) counted as one word; its code is the non-blank
lines of its code cells (each read with its printed output). The main line of the series is that of its notebooks
other than the appendix (06_appendix_measuring: the measuring apparatus, read by whoever wants to check a verdict).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# The reading rate, fitted (least squares, through zero) to two readings of the main lines by careful readers of
# English as a second language, derivations followed on paper: 00, 03 and 04 at commit 876ce02 (45, 55 and 85 minutes)
# and 01, 02 and 05 as of 2026-12-03 (106, 77 and 125 minutes, a helper reading as a Korean graduate student). A line
# of code, read with its printed output, is taken to cost as much as CODE_LINE_WORDS words; the fit cannot tell the two
# rates apart (the notebooks differ more in density than in their mix of prose and code).
WORDS_PER_MINUTE = 46
CODE_LINE_WORDS = 4

EXERCISES = "## Exercises"
_DETAILS = re.compile(r"<details>.*?</details>", re.S)
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
    text = _DETAILS.sub(" ", markdown)
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
    cells = main_line(json.loads(Path(path).read_text(encoding="utf-8")))
    sources = [("".join(cell["source"]), cell["cell_type"]) for cell in cells]
    return Reading(
        words=sum(count_words(source) for source, kind in sources if kind == "markdown"),
        code_lines=sum(count_code_lines(source) for source, kind in sources if kind == "code"),
    )
