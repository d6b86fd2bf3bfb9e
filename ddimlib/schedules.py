"""Noise schedules and timestep subsequences.

References
- Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502
  (DDIM): Section 2 (notation), Section 4.2 and Appendix D.2 (the subsequence tau).
- Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (DDPM): the linear
  beta schedule.
- Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021: the cosine
  schedule.

Notation. alpha_t here is DDIM's alpha_t = prod_{s<=t} (1 - beta_s), which DDPM writes alpha-bar_t.
A schedule is a float64 tensor of shape (T+1,) indexed by the paper's t = 0..T with alpha[0] = 1
(no noise at t = 0). Nothing in this package that holds 1 - beta is called alpha.

Taught in notebooks/01_forward_process.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ddimlib._validate import require_choice, require_int, require_tensor

TAU_KINDS = ("linear", "quadratic")


@dataclass(frozen=True)
class Schedule:
    """DDIM's cumulative alpha_t for t = 0..T.

    alpha: (T+1,) float64, alpha[0] = 1, strictly decreasing, alpha[T] > 0.
    """

    alpha: torch.Tensor

    def __post_init__(self):
        alpha = require_tensor("alpha", self.alpha)
        if alpha.dtype != torch.float64 or alpha.ndim != 1 or alpha.numel() < 2:
            raise ValueError(
                f"alpha must be a 1-D float64 tensor of shape (T+1,) with T >= 1; "
                f"got dtype {alpha.dtype} and shape {tuple(alpha.shape)}"
            )
        if alpha[0] != 1.0:
            raise ValueError(f"alpha[0] must be exactly 1 (no noise at t = 0), got {alpha[0].item()}")
        if not (alpha[1:] < alpha[:-1]).all() or not alpha[-1] > 0:
            raise ValueError("alpha must be strictly decreasing in t and stay above 0 (every beta_t in (0, 1))")

    @property
    def T(self) -> int:
        """Number of diffusion steps; the paper's t runs over 1..T."""
        return self.alpha.numel() - 1

    @property
    def beta(self) -> torch.Tensor:
        """(T+1,) float64 with beta[0] = 0 and beta_t = 1 - alpha_t / alpha_{t-1} for t >= 1."""
        return torch.cat([self.alpha.new_zeros(1), 1 - self.alpha[1:] / self.alpha[:-1]])


def schedule_from_betas(betas: torch.Tensor) -> Schedule:
    """The schedule alpha_t = prod_{s<=t} (1 - beta_s) for betas of shape (T,), each in (0, 1)."""
    require_tensor("betas", betas)
    betas = betas.to(torch.float64)
    if betas.ndim != 1 or betas.numel() < 1:
        raise ValueError(f"betas must be a 1-D tensor of shape (T,) with T >= 1, got shape {tuple(betas.shape)}")
    if not ((betas > 0) & (betas < 1)).all():
        bad = betas[~((betas > 0) & (betas < 1))]
        raise ValueError(f"betas must all lie in the open interval (0, 1); got values such as {bad[:3].tolist()}")
    alpha = torch.cat([betas.new_ones(1), torch.cumprod(1 - betas, dim=0)])
    return Schedule(alpha)


def linear_schedule(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear beta schedule, beta_t evenly spaced from beta_start (t = 1) to beta_end (t = T)."""
    T = require_int("T", T, 1)
    return schedule_from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))


def cosine_schedule(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal's cosine schedule: alpha_t = f(t) / f(0), f(t) = cos(pi/2 (t/T + s) / (1 + s))^2.

    beta_t is clipped at max_beta as in their paper, so alpha_T stays above 0.
    """
    T = require_int("T", T, 1)
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)
    return schedule_from_betas(betas)


def timesteps(steps: int, T: int, kind: str = "linear") -> torch.Tensor:
    """The subsequence tau_1 < ... < tau_S = T of DDIM Section 4.2, as an int64 tensor of shape (S,).

    Appendix D.2 of the DDIM paper: "linear" is tau_i = floor(c i) and "quadratic" is
    tau_i = floor(c i^2), with c chosen so that tau_S = T (c = T / S and c = T / S^2). Computed in
    integer arithmetic so that tau_S is exactly T.

    For the quadratic kind and S^2 > T, floor(c i^2) repeats steps near i = 0 (their spacing
    c (2 i + 1) is below 1 there). We take tau_i = max(floor(c i^2), i): where the spacing is below 1
    we have c i^2 < i, so this replaces exactly the repeating head by 1, 2, 3, ... and leaves the
    rest untouched; the result is strictly increasing for every 1 <= S <= T.
    """
    T = require_int("T", T, 1)
    steps = require_int("steps", steps, 1, T)
    kind = require_choice("kind", kind, TAU_KINDS)
    i = torch.arange(1, steps + 1, dtype=torch.int64)
    if kind == "linear":
        return (T * i) // steps
    return torch.maximum((T * i * i) // (steps * steps), i)


def resolve_tau(tau: str | Sequence[int] | torch.Tensor, steps: int | None, T: int) -> torch.Tensor:
    """The subsequence to sample on: a kind ("linear" or "quadratic") with `steps`, or an explicit list.

    An explicit tau must be strictly increasing integers in [1, T] that end at T; `steps`, if given,
    must equal its length. Returns an int64 tensor of shape (S,).
    """
    if isinstance(tau, str):
        if steps is None:
            raise ValueError(f"steps must be given when tau is a kind ({tau!r}); got steps=None")
        return timesteps(steps, T, tau)
    values = torch.as_tensor(tau)
    if values.is_floating_point() or values.dtype == torch.bool or values.ndim != 1 or values.numel() == 0:
        raise TypeError(f"tau must be 'linear', 'quadratic' or a non-empty 1-D list of integers; got {tau!r}")
    values = values.to(torch.int64).cpu()
    if not (values[1:] > values[:-1]).all():
        raise ValueError(f"tau must be strictly increasing; got {values.tolist()}")
    if values[0] < 1 or values[-1] != T:
        raise ValueError(
            f"tau must lie in [1, T={T}] and end at T; got first {values[0].item()} and last {values[-1].item()}"
        )
    if steps is not None and require_int("steps", steps, 1, T) != values.numel():
        raise ValueError(f"steps must equal len(tau) = {values.numel()} when tau is explicit; got steps={steps}")
    return values
