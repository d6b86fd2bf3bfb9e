"""Shared test helpers (imported by the test files; pytest puts tests/ on sys.path)."""

import pytest
import torch


def smooth_model(x_t, t):
    """A fixed, nonlinear, t-dependent stand-in for a network (deterministic, float64-exact)."""
    scale = (t.to(x_t.dtype) / 1000).reshape(-1, *([1] * (x_t.ndim - 1)))
    return torch.tanh(0.7 * x_t + scale) - 0.3 * x_t.roll(1, dims=-1) * scale


def blank(*args):
    """An exercise cell left as the notebook gives it."""
    raise NotImplementedError  # your code here


def assert_each_mistake_gets_its_hint(check, wrong: dict) -> None:
    """Each wrong answer, keyed by (a part of) the hint it must get, fails `check` as an attempt with that hint."""
    for hint, answer in wrong.items():
        feedback = check(answer)
        assert not feedback.passed and feedback.attempted and hint in feedback.message, (hint, feedback)


def _fashion_mnist_here() -> bool:
    from ddimlib.data import find_idx_folder

    try:
        find_idx_folder("fashion_mnist", download=False)
    except RuntimeError:
        return False
    return True


# for tests that read Fashion-MNIST: they skip, rather than download 30 MB, where none of ddimlib.data's places has it
needs_fashion_mnist = pytest.mark.skipif(
    not _fashion_mnist_here(),
    reason="Fashion-MNIST is not on this machine (python3 tasks.py test installs Debian's package where apt-get can)",
)
