"""Wall-clock measurements of samplers: where the time of DDIM's speed-up goes.

DDIM's claim (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
arXiv:2010.02502, Section 5.1 and Figure 4) is that sampling time is linear in S = dim(tau), because
each step costs one network evaluation. These helpers measure that: median times of callables timed
in alternating rounds, the time of the S network evaluations alone, the split of one sampler run
into time inside and outside the network (the sampler's own overhead), and a least-squares line
with its R^2.

Taught in notebooks/04_step_sweep.ipynb; used by benchmarks/sampler_overhead.py.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ddimlib._validate import require_int
from ddimlib.loop import EpsModel, ModelOutputs, call_model


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
    from tau_S down to tau_1, all on x_T (a forward pass does the same arithmetic whatever x holds).
    Their outputs are checked as a sampler checks them: once, after the loop."""
    steps = tau.tolist()
    outputs = ModelOutputs(len(steps), x_T)
    for t in reversed(steps):
        call_model(eps_model, x_T, int(t), "in network_only", outputs)
    outputs.check()


def _synchronize(x) -> None:
    """Wait for queued CUDA work on x's device, so that a clock reads computation, not kernel launches."""
    if isinstance(x, torch.Tensor) and x.is_cuda:
        torch.cuda.synchronize(x.device)


class NetworkClock:
    """eps_model with a clock: adds up the wall time spent inside its calls (`seconds`) and counts them (`calls`).

    A sampler driven by it splits its own run into time inside the network and time outside it, the
    sampler's overhead. Because the two alternate at every step, a slow spell of a shared machine
    hits both alike, which a difference of two separately timed runs cannot promise."""

    def __init__(self, eps_model: EpsModel):
        self.eps_model = eps_model
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _synchronize(x_t)
        start = time.perf_counter()
        eps = self.eps_model(x_t, t)
        _synchronize(eps)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return eps


@dataclass
class OverheadSplit:
    """Medians over runs of one sampler: total seconds, seconds inside the network, and the overhead
    ratio (total - network) / network (the median of each run's ratio)."""

    total: float
    network: float
    overhead: float


@torch.no_grad()
def overhead_split(run: Callable[[EpsModel], object], eps_model: EpsModel, repeats: int = 5) -> OverheadSplit:
    """Time run(clocked_model) `repeats` times after one untimed warm-up, with eps_model wrapped in a
    NetworkClock, e.g. run = lambda model: sample(model, schedule, x_T, 50)."""
    repeats = require_int("repeats", repeats, 1)
    run(eps_model)
    totals, networks, ratios = [], [], []
    for _ in range(repeats):
        clock = NetworkClock(eps_model)
        start = time.perf_counter()
        _synchronize(run(clock))
        total = time.perf_counter() - start
        if clock.calls == 0 or clock.seconds <= 0:
            raise ValueError("run(model) must call the model it is given; it made no timed call")
        totals.append(total)
        networks.append(clock.seconds)
        ratios.append((total - clock.seconds) / clock.seconds)
    return OverheadSplit(statistics.median(totals), statistics.median(networks), statistics.median(ratios))


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares y = slope * x + intercept, in float64. Returns (slope, intercept, R^2)."""
    xs, ys = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 3:
        raise ValueError(
            f"x and y must be 1-D of the same length >= 3, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}"
        )
    if float(xs.var()) == 0:
        raise ValueError("x must not be constant: a line through one x value is not determined")
    design = torch.stack([xs, torch.ones_like(xs)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, ys[:, None]).solution[:, 0].tolist()
    residual = ys - (slope * xs + intercept)
    r2 = 1.0 - float((residual**2).sum() / ((ys - ys.mean()) ** 2).sum())
    return slope, intercept, r2
