"""Self-checks for the notebooks' exercises.

Each notebook's exercises have a module here named after the notebook's topic (`forward` for 01,
`objective` for 02, `training` for 03, `sampling` for 04, `ode` for 05). A check runs the learner's answer
on fixed inputs, compares it with the library's kernel (float64 where it can), and returns a `Feedback`
that says what is right or what is wrong and *why*: a wrong answer that matches a typical mistake gets
that mistake's hint, any other gets where and by how much it is off. An answer left unwritten (a function
that raises NotImplementedError, or None) is "not attempted", not an error, so that a notebook with its
exercises left blank still runs to the end. The notebooks' folded solutions assert `feedback.passed`,
and tests/test_exercises*.py feed each check a typical wrong answer and assert the hint it gives.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Feedback:
    """A check's verdict: passed, and a message for the learner (shown as the cell's output)."""

    passed: bool
    message: str
    attempted: bool = True

    def __repr__(self) -> str:
        return self.message


class AnswerFailed(Exception):
    """The learner's answer raised `error` (anything but NotImplementedError); a `check` turns it into Feedback."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def attempt(answer: Callable, *args, **kwargs):
    """The learner's answer called on args, or None if it is not written yet (None, or NotImplementedError).
    Any other exception it raises is passed on as AnswerFailed, which `check` reports as feedback."""
    if answer is None:
        return None
    if not callable(answer):
        return answer
    try:
        return answer(*args, **kwargs)
    except NotImplementedError:
        return None
    except Exception as error:
        raise AnswerFailed(error) from error


# code that is not the learner's: this package, and the Python installation with its packages (torch, numpy, ...)
LIBRARY_FOLDERS = (Path(__file__).resolve().parents[1], Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve())


def failure_feedback(error: Exception) -> Feedback:
    """What a learner sees when their answer raises: the exception, and the line of their own code that raised it
    (the last frame of the traceback outside LIBRARY_FOLDERS), instead of a traceback through the check."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not any(Path(frame.filename).resolve().is_relative_to(folder) for folder in LIBRARY_FOLDERS)
    ]
    where = f" at `{frames[-1].line}`" if frames and frames[-1].line else ""
    return Feedback(
        False,
        f"✗ your function raised {type(error).__name__}: {error}{where}. Hint: run it on its own on the check's "
        "arguments (their shapes and types are in the exercise's text), fix that line, then run the check again.",
    )


def check(function: Callable[..., Feedback]) -> Callable[..., Feedback]:
    """Decorates an exercise's check: an answer that raises gets feedback naming the error and the line, not a
    traceback through the check's own code."""

    @functools.wraps(function)
    def checked(*args, **kwargs) -> Feedback:
        try:
            return function(*args, **kwargs)
        except AnswerFailed as failed:
            return failure_feedback(failed.error)

    return checked


def numbers_from(answer: Callable, cases, what: str) -> torch.Tensor | Feedback:
    """The learner's answer called on each tuple of arguments in `cases`, as one float64 tensor; or the Feedback
    that ends the check: not attempted, or a return value that is not one number (`what` names it)."""
    got = []
    for arguments in cases:
        value = attempt(answer, *arguments)
        if value is None:
            return NOT_ATTEMPTED
        try:
            got.append(float(value))
        except (TypeError, ValueError, RuntimeError):
            return Feedback(
                False, f"✗ {what}: your function returned {type(value).__name__}; return one number, {what}."
            )
    return torch.tensor(got, dtype=torch.float64)


NOT_ATTEMPTED = Feedback(
    False, "Not attempted yet: write your answer in the cell above, run it, then run this check.", attempted=False
)


def compare(
    what: str,
    got,
    expected: torch.Tensor,
    mistakes: Iterable[tuple[torch.Tensor, str]] = (),
    rtol: float = 1e-6,
    atol: float = 1e-9,
    success: str = "",
    mistake_rtol: float = 1e-3,
    mistake_atol: float | None = None,
    otherwise: str = "",
) -> Feedback:
    """Feedback on `got` against `expected` (the library's value): right, a known mistake, or off by how much.

    mistakes: (the value the mistake gives, the hint that explains it). Of those that `got` matches within
    mistake_rtol (loose by default: a mistake is recognised, not reproduced, and its path may amplify rounding), the
    closest one's hint is given, so two mistakes with nearby values are told apart. mistake_atol: match them within
    this absolute distance instead (a predicted number: a mistake is a value, give or take).

    otherwise: the hint for an answer that is neither right nor a known mistake, in place of "off by how much" (which
    states the expected value: the answer itself where the question asks for one number).
    """
    if got is None:
        return NOT_ATTEMPTED
    try:
        got = torch.as_tensor(got, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        return Feedback(False, f"✗ {what}: your answer is not a number or tensor ({type(error).__name__}: {error}).")
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if got.shape != expected.shape:
        try:
            got = got.expand_as(expected)  # a scalar where every entry is the same is fine
        except RuntimeError:
            return Feedback(False, f"✗ {what}: shape {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    if torch.allclose(got, expected, rtol=rtol, atol=atol):
        return Feedback(True, f"✓ {what}: correct." + (f" {success}" if success else ""))
    if mistake_atol is None:
        loose, mistake_rtol = max(atol, mistake_rtol * float(expected.abs().max())), max(rtol, mistake_rtol)
    else:
        loose, mistake_rtol = mistake_atol, 0.0
    matched = []
    for value, hint in mistakes:
        value = torch.as_tensor(value, dtype=torch.float64).expand_as(expected)
        if torch.allclose(got, value, rtol=mistake_rtol, atol=loose):
            matched.append((float((got - value).abs().max()), hint))
    if matched:
        return Feedback(
            False, f"✗ {what}: not yet. Hint: {min(matched, key=lambda distance_hint: distance_hint[0])[1]}"
        )
    if otherwise:
        return Feedback(False, f"✗ {what}: not yet. Hint: {otherwise}")
    error = (got - expected).abs()
    worst = int(error.flatten().argmax())
    if not torch.isfinite(got).all():
        return Feedback(
            False,
            f"✗ {what}: your answer has NaN or infinite entries (first at flat index "
            f"{int((~torch.isfinite(got)).flatten().nonzero()[0])}); "
            "look for a division by zero or a negative square root.",
        )
    return Feedback(
        False,
        f"✗ {what}: off by up to {float(error.max()):.3g} (at flat index {worst}: yours "
        f"{float(got.flatten()[worst]):.6g}, expected {float(expected.flatten()[worst]):.6g}); "
        f"compare your formula with the equation term by term.",
    )
