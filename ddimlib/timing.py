"""Wall-clock measurements of samplers: where the time of DDIM's speed-up goes.

DDIM's claim (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
arXiv:2010.02502, Section 5.1 and Figure 4) is that sampling time is linear in S = dim(tau), because
each step costs one network evaluation. These helpers measure that: the median time of a callable,
the time of the S network evaluations alone (so that a sampler's own overhead is the difference),
and a least-squares line with its R^2.

Taught in notebooks/04_step_sweep.ipynb; used by benchmarks/sampler_overhead.py.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import torch

from ddimlib._validate import require_int
from ddimlib.sampling import EpsModel, call_model


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """The median wall time of fn() over `repeats` calls, after `warmup` untimed calls."""
    repeats = require_int("repeats", repeats, 1)
    warmup = require_int("warmup", warmup, 0)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 5) -> dict[str, float]:
    """The median wall time of each callable, timed in `repeats` interleaved rounds (one call of each
    per round, after one untimed warm-up call of each), so that a slow spell of a shared machine hits
    all of them alike. Use it to compare callables, e.g. a sampler against its network alone."""
    repeats = require_int("repeats", repeats, 1)
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


@torch.no_grad()
def network_only(eps_model: EpsModel, x_T: torch.Tensor, tau: torch.Tensor) -> None:
    """The network evaluations of a sampler on tau, and nothing else: eps_model(x_T, t) for t in tau,
    from tau_S down to tau_1 (the cost of a forward pass does not depend on the values of x)."""
    for t in reversed(tau.tolist()):
        call_model(eps_model, x_T, int(t), where="in network_only")


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares y = slope * x + intercept, in float64. Returns (slope, intercept, R^2)."""
    xs, ys = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 3:
        raise ValueError(f"x and y must be 1-D of the same length >= 3, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}")
    if float(xs.var()) == 0:
        raise ValueError("x must not be constant: a line through one x value is not determined")
    design = torch.stack([xs, torch.ones_like(xs)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, ys[:, None]).solution[:, 0].tolist()
    residual = ys - (slope * xs + intercept)
    r2 = 1.0 - float((residual**2).sum() / ((ys - ys.mean()) ** 2).sum())
    return slope, intercept, r2
