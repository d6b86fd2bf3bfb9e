"""The plumbing every sampling loop shares: checking a model and x_T, calling the model, checking its outputs after
the loop without reading anything back inside it, drawing noise that is the same on every device, and each step's
coefficients as host floats.

Used by ddimlib.sampling (DDIM Eq. 12, DDPM), ddimlib.ode (Eq. 14's Euler steps, DPM-Solver++), ddimlib.objective,
ddimlib.timing and the commands; nothing here is a formula of the paper.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddimlib._validate import require_finite, require_floating

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def placement(eps_model) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of a model's parameters: where its inputs must be. The CPU and float32 for a
    plain function or a model without parameters."""
    parameters = getattr(eps_model, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return (first.device, first.dtype) if first is not None else (torch.device("cpu"), torch.float32)


def check_x_T(x_T) -> torch.Tensor:
    require_floating("x_T", x_T)
    if x_T.ndim < 2:
        raise ValueError(f"x_T must have shape (B, ...) with a batch dimension, got shape {tuple(x_T.shape)}")
    return require_finite("x_T", x_T)


def host_floats(*coefficients: torch.Tensor) -> tuple[list[float], ...]:
    """Each step's coefficients, computed at once before a loop as float64 vectors on the CPU, as lists of Python
    floats
    that the loop indexes: the one way every sampling loop (sample, ddpm_sample, and ddimlib.ode's) gets its numbers.

    A float scales a tensor inside the kernel that uses it, so the loop reads nothing back from the device and launches
    nothing for a coefficient; a 0-d device tensor would cost kernels of its own at every step, which on a GPU is a
    large part of a small model's time (benchmarks/README.md)."""
    return tuple(c.to(torch.float64).cpu().tolist() for c in coefficients)


def call_model(
    eps_model: EpsModel, x_t: torch.Tensor, t: int, where: str, outputs: ModelOutputs | None = None
) -> torch.Tensor:
    """eps_model(x_t, t) with t broadcast to a (B,) int64 tensor, checked for shape and finiteness.

    Inside a sampling loop, pass `outputs`: the finite check is then only recorded on the device, and
    `outputs.check()` after the loop reads every step's result at once (a read-back inside the loop
    would make a GPU wait at every step). Without it the output is checked here, at once.
    """
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.int64, device=x_t.device)
    eps = eps_model(x_t, t_batch)
    if not isinstance(eps, torch.Tensor) or eps.shape != x_t.shape:
        shape = tuple(eps.shape) if isinstance(eps, torch.Tensor) else type(eps).__name__
        raise ValueError(
            f"eps_model returned {shape} {where} (t={t}); it must return a tensor of x_t's shape {tuple(x_t.shape)}"
        )
    eps = eps.to(x_t.dtype)
    if outputs is None:
        return require_finite("eps_model output", eps, f" {where} (t={t})")
    outputs.record(eps, f"{where} (t={t})")
    return eps


class ModelOutputs:
    """The finite check of a loop's model outputs, made without reading anything back inside the loop.

    `record` keeps one sum of each output on its device (a NaN or an infinity anywhere makes the sum
    non-finite); `check`, called once after the loop, reads all the sums in one transfer and names the
    first step whose output was not finite. Half-precision outputs are summed in float32, so that
    finite values cannot overflow the sum. On the meta device, which holds no values, nothing is read.
    """

    def __init__(self, calls: int, like: torch.Tensor):
        self._dtype = torch.float32 if like.dtype in (torch.float16, torch.bfloat16) else like.dtype
        self._sums = torch.zeros(calls, dtype=self._dtype, device=like.device)
        self._where: list[str] = []

    def record(self, eps: torch.Tensor, where: str) -> None:
        self._sums[len(self._where)] = eps.sum(dtype=self._dtype)
        self._where.append(where)

    def check(self) -> None:
        if self._sums.device.type == "meta":
            return
        finite = torch.isfinite(self._sums[: len(self._where)]).tolist()  # the one read-back, after the loop
        if not all(finite):
            first = finite.index(False)
            raise ValueError(
                f"eps_model output {self._where[first]} contains NaN or infinite values (or values so large that "
                f"their "
                f"sum overflows {self._dtype}); all must be finite ({finite.count(False)} of the loop's {len(finite)} "
                f"model outputs were not; this is the first)"
            )


def check_model(eps_model) -> None:
    """eps_model must be callable as eps_model(x_t, t)."""
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable as eps_model(x_t, t), got {type(eps_model).__name__}")


def standard_normal(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Noise of x's shape, dtype and device, drawn from `generator` on the generator's own device.

    A CPU generator thus gives the same noise whether x is on the CPU or on a GPU, so samples can be
    compared across devices; the draw is copied over without waiting for the device (non_blocking: the
    copy from ordinary host memory is staged before the call returns). A generator on x's device
    draws there, with no copy, and other numbers.
    """
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device, non_blocking=True)
