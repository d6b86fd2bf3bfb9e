"""Shared test helpers (imported by the test files; pytest puts tests/ on sys.path)."""

import torch


def smooth_model(x_t, t):
    """A fixed, nonlinear, t-dependent stand-in for a network (deterministic, float64-exact)."""
    scale = (t.to(x_t.dtype) / 1000).reshape(-1, *([1] * (x_t.ndim - 1)))
    return torch.tanh(0.7 * x_t + scale) - 0.3 * x_t.roll(1, dims=-1) * scale
