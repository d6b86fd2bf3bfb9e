"""DDIM as Euler's method on an ODE; encoding, decoding and spherical interpolation of latents.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502,
Section 4.3 (Eqs. 13 and 14), Section 5.3 (interpolation) and Section 5.4 (reconstruction).

Change variables to sigma = sqrt((1 - alpha) / alpha) and x_bar = x / sqrt(alpha). The eta = 0 DDIM
update (Eq. 13) becomes one Euler step of

    d x_bar = eps_theta(x_bar / sqrt(sigma^2 + 1), t) d sigma                        (Eq. 14)

between the sigma of two grid times; x_bar / sqrt(sigma^2 + 1) = sqrt(alpha) x_bar = x is the point
the model sees. Running it forward in t encodes x0 into a latent x_T; backward decodes.

Taught in notebooks/05_ode_and_encoding.ipynb.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from ddimlib._validate import require_floating, require_in_range, require_same_kind, require_same_shape
from ddimlib.forward import expand_to, predict_x0
from ddimlib.sampling import EpsModel, _check_model, call_model, check_x_T
from ddimlib.schedules import Schedule, resolve_tau


def ode_sigma(alpha):
    """sigma(alpha) = sqrt((1 - alpha) / alpha), the ODE's time variable (0 at t = 0)."""
    return ((1 - alpha) / alpha) ** 0.5


def to_x_bar(x: torch.Tensor, alpha) -> torch.Tensor:
    """x_bar = x / sqrt(alpha)."""
    return x / expand_to(alpha, x).sqrt()


def from_x_bar(x_bar: torch.Tensor, alpha) -> torch.Tensor:
    """x = sqrt(alpha) x_bar = x_bar / sqrt(sigma^2 + 1)."""
    return x_bar * expand_to(alpha, x_bar).sqrt()


def euler_step(eps_model: EpsModel, x_bar: torch.Tensor, schedule: Schedule, t: int, t_next: int, t_model: int | None = None):
    """One Euler step of Eq. 14 from grid time t to t_next (either direction), in (sigma, x_bar).

    x_bar(t_next) = x_bar(t) + (sigma(t_next) - sigma(t)) eps_theta(x_bar(t) / sqrt(sigma(t)^2 + 1), t_model)

    The model is evaluated at the step's start, x(t), with time t_model (default t). Returns
    (x_bar_next, eps_pred), both of x_bar's shape.
    """
    alpha = schedule.alpha.to(x_bar.device)
    sigma, sigma_next = ode_sigma(alpha[t]), ode_sigma(alpha[t_next])
    x_t = x_bar / (sigma**2 + 1).sqrt().to(x_bar.dtype)
    t_model = t if t_model is None else t_model
    eps = call_model(eps_model, x_t, t_model, where=f"in the Euler step {t} -> {t_next}")
    return x_bar + (sigma_next - sigma).to(x_bar.dtype) * eps, eps


def _grid(schedule: Schedule, steps, tau) -> list[int]:
    return [0] + resolve_tau(tau, steps, schedule.T).tolist()


def _integrate(eps_model: EpsModel, schedule: Schedule, x: torch.Tensor, grid: list[int], desc: str, progress: bool) -> torch.Tensor:
    """Euler steps of Eq. 14 along `grid` (increasing: encode; decreasing: decode), from x at grid[0] to grid[-1].

    Each step evaluates the model at its start time, except that a start at t = 0 (only encode's
    first step) is evaluated at t = 1 (see encode).
    """
    _check_model(eps_model)
    x = check_x_T(x)
    alpha = schedule.alpha.to(x.device)
    x_bar = to_x_bar(x, alpha[grid[0]])
    for t, t_next in tqdm(list(zip(grid[:-1], grid[1:])), desc=desc, disable=not progress, leave=False):
        x_bar, _ = euler_step(eps_model, x_bar, schedule, t, t_next, t_model=max(t, 1))
    return from_x_bar(x_bar, alpha[grid[-1]])


@torch.no_grad()
def encode(
    eps_model: EpsModel,
    schedule: Schedule,
    x0: torch.Tensor,
    steps: int | None,
    tau: str | Sequence[int] | torch.Tensor = "linear",
    progress: bool = False,
) -> torch.Tensor:
    """Encode data x0 into the latent x_T by running Eq. 14 forward on 0 = tau_0 < tau_1 < ... < tau_S = T.

    Each Euler step evaluates the model at its start. The first step starts at t = 0, where the
    model was never trained (alpha_0 = 1, so x_0 carries no noise to predict) and sigma = 0; it is
    evaluated at t = 1 instead, the nearest time it was trained on, where x_1 differs from x_0 by
    noise of standard deviation sqrt(1 - alpha_1) (0.01 for the linear schedule). Near sigma = 0
    the true velocity eps is close to 0 there as well, so the first step moves x0 only slightly,
    as the exact ODE would. Every later step i evaluates the model at (x_{tau_{i-1}}, tau_{i-1}).
    (Measured on the eight-Gaussians oracle: evaluating the first step at t = 1 reconstructs better
    for S <= 50 than evaluating it at tau_1, MSE 7.4e-3 against 2.0e-2 at S = 10, and slightly worse
    for S >= 100; both agree at S = T, where tau_1 = 1.)

    x0: (B, ...). Returns x_T of the same shape. Decoding with the same tau inverts it up to the
    discretisation error, which vanishes as S grows (DDIM Section 5.4).
    """
    return _integrate(eps_model, schedule, x0, _grid(schedule, steps, tau), "encode", progress)


@torch.no_grad()
def decode(
    eps_model: EpsModel,
    schedule: Schedule,
    x_T: torch.Tensor,
    steps: int | None,
    tau: str | Sequence[int] | torch.Tensor = "linear",
    progress: bool = False,
) -> torch.Tensor:
    """Decode a latent x_T into x_0 by running Eq. 14 backward from tau_S = T to tau_0 = 0.

    Identical in exact arithmetic to sampling.sample with eta = 0 (DDIM is this Euler method).
    x_T: (B, ...). Returns x_0 of the same shape.
    """
    return _integrate(eps_model, schedule, x_T, _grid(schedule, steps, tau)[::-1], "decode", progress)


@torch.no_grad()
def dpm_solver_2m(
    eps_model: EpsModel,
    schedule: Schedule,
    x_T: torch.Tensor,
    steps: int | None,
    tau: str | Sequence[int] | torch.Tensor = "linear",
    progress: bool = False,
) -> torch.Tensor:
    """Decode x_T with DPM-Solver++(2M), a second-order multistep solver of the same ODE (one network call per grid time).

    Reference: Lu, Zhou, Bao, Chen, Li & Zhu, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
    Probabilistic Models", arXiv:2211.01095, Algorithm 2. In DDIM's notation, with a_t = sqrt(alpha_t),
    s_t = sqrt(1 - alpha_t), lambda_t = log(a_t / s_t) and h_i = lambda(tau_{i-1}) - lambda(tau_i) > 0:

        x_{tau_{i-1}} = (s_{tau_{i-1}} / s_{tau_i}) x_{tau_i} + a_{tau_{i-1}} (1 - e^{-h_i}) D_i,
        D_i = (1 + 1 / (2 r_i)) x0_pred(tau_i) - 1 / (2 r_i) x0_pred(tau_{i+1}),  r_i = h_{i+1} / h_i,

    a linear extrapolation in lambda of the "predicted x0" from the last two grid times. With D_i =
    x0_pred(tau_i) (the first step, and the last step to t = 0, where lambda is infinite) the update is
    exactly DDIM's eta = 0 step. The network is evaluated only at the grid times tau_i, where a
    discrete-time model was trained. x_T: (B, ...). Returns x_0.
    Taught in notebooks/05_ode_and_encoding.ipynb.
    """
    _check_model(eps_model)
    x = check_x_T(x_T)
    grid = _grid(schedule, steps, tau)[::-1]
    alpha = schedule.alpha.to(x.device)
    x0_before, h_before = None, None
    for t, t_next in tqdm(list(zip(grid[:-1], grid[1:])), desc="DPM-Solver++(2M)", disable=not progress, leave=False):
        eps = call_model(eps_model, x, t, where=f"in the step {t} -> {t_next}")
        x0_pred = predict_x0(x, eps, alpha[t])
        if t_next == 0:  # lambda_0 is infinite: the last step returns the predicted x0, as DDIM does
            x = x0_pred
            break
        a, s, a_next, s_next = alpha[t].sqrt(), (1 - alpha[t]).sqrt(), alpha[t_next].sqrt(), (1 - alpha[t_next]).sqrt()
        h = torch.log(a_next / s_next) - torch.log(a / s)
        if x0_before is None:
            direction = x0_pred
        else:
            r = h_before / h
            direction = (1 + 1 / (2 * r)).to(x.dtype) * x0_pred - (1 / (2 * r)).to(x.dtype) * x0_before
        x = (s_next / s).to(x.dtype) * x + (a_next * (1 - torch.exp(-h))).to(x.dtype) * direction
        x0_before, h_before = x0_pred, h
    return x


def slerp(z0: torch.Tensor, z1: torch.Tensor, lam) -> torch.Tensor:
    """Spherical linear interpolation between latents, as DDIM Section 5.3 uses.

    slerp(z0, z1, lam) = sin((1 - lam) theta) / sin(theta) z0 + sin(lam theta) / sin(theta) z1,
    theta = arccos(<z0, z1> / (|z0| |z1|)), computed per batch element over all other dimensions.
    Returns z0 exactly at lam = 0 and z1 exactly at lam = 1; where z0 and z1 are (nearly) parallel
    it falls back to linear interpolation. z0, z1: (B, ...); lam: a number in [0, 1].
    """
    require_floating("z0", z0)
    require_floating("z1", z1)
    require_same_shape("z1", z1, "z0", z0)
    require_same_kind("z1", z1, "z0", z0)
    lam = require_in_range("lam", lam, 0.0, 1.0)
    if lam == 0.0:
        return z0.clone()
    if lam == 1.0:
        return z1.clone()
    flat0, flat1 = z0.reshape(z0.shape[0], -1), z1.reshape(z1.shape[0], -1)
    cos = (flat0 * flat1).sum(1) / (flat0.norm(dim=1) * flat1.norm(dim=1))
    theta = cos.clamp(-1, 1).arccos()
    parallel = theta.sin().abs() < 1e-6
    safe_sin = torch.where(parallel, torch.ones_like(theta), theta.sin())
    w0 = torch.where(parallel, 1 - lam, ((1 - lam) * theta).sin() / safe_sin)
    w1 = torch.where(parallel, torch.full_like(theta, lam), (lam * theta).sin() / safe_sin)
    return expand_to(w0, z0) * z0 + expand_to(w1, z1) * z1


def observed_order(steps, errors) -> float:
    """The observed order p of a solver whose error behaves like C / S^p: minus the least-squares slope of
    log(error) against log(S), for S = number of steps (or network evaluations)."""
    log_s = torch.log(torch.as_tensor(steps, dtype=torch.float64))
    log_e = torch.log(torch.as_tensor(errors, dtype=torch.float64))
    if log_s.shape != log_e.shape or log_s.numel() < 2:
        raise ValueError(f"steps and errors must be equally long sequences of at least 2 values, got {len(steps)} and {len(errors)}")
    centred = log_s - log_s.mean()
    return float(-(centred * (log_e - log_e.mean())).sum() / (centred**2).sum())
