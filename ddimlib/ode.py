"""DDIM as Euler's method on an ODE; encoding, decoding and spherical interpolation of latents.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502,
Section 4.3 (Eqs. 13 to 15, Proposition 1), Section 5.3 (interpolation) and Section 5.4 (reconstruction).

Change variables to sigma = sqrt((1 - alpha) / alpha) and x_bar = x / sqrt(alpha). The eta = 0 DDIM
update (Eq. 13) becomes one Euler step of

    d x_bar = eps_theta(x_bar / sqrt(sigma^2 + 1), t) d sigma                        (Eq. 14)

between the sigma of two grid times; x_bar / sqrt(sigma^2 + 1) = sqrt(alpha) x_bar = x is the point
the model sees. Running it forward in t encodes x0 into a latent x_T; backward decodes.
`euler_step_sigma_squared` is the other discretisation of the same ODE (Eq. 15, Proposition 1):
Euler's method in sigma^2, the probability-flow ODE of the variance-exploding SDE.

Taught in notebooks/05_ode_and_encoding.ipynb.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ddimlib._validate import (
    require_choice,
    require_floating,
    require_in_range,
    require_int,
    require_same_kind,
    require_same_shape,
)
from ddimlib.forward import expand_to
from ddimlib.loop import EpsModel, ModelOutputs, call_model, check_model, check_x_T, host_floats
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


def euler_step(
    eps_model: EpsModel, x_bar: torch.Tensor, schedule: Schedule, t: int, t_next: int, t_model: int | None = None
):
    """One Euler step of Eq. 14 from grid time t to t_next (either direction), in (sigma, x_bar).

    x_bar(t_next) = x_bar(t) + (sigma(t_next) - sigma(t)) eps_theta(x_bar(t) / sqrt(sigma(t)^2 + 1), t_model)

    The model is evaluated at the step's start, x(t), with time t_model (default t). Returns
    (x_bar_next, eps_pred), both of x_bar's shape.
    """
    sigma = ode_sigma(schedule.alpha[[t, t_next]])  # float64 on the CPU
    to_x, step = host_floats(1 / (sigma[:1] ** 2 + 1).sqrt(), sigma[1:] - sigma[:1])
    return _euler(
        eps_model, x_bar, to_x[0], step[0], t if t_model is None else t_model, f"in the Euler step {t} -> {t_next}"
    )


def euler_step_sigma_squared(
    eps_model: EpsModel, x_bar: torch.Tensor, schedule: Schedule, t: int, t_next: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step in d(sigma^2) of the probability-flow ODE of the variance-exploding SDE (DDIM Eq. 15).

    Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Proposition 1
    (Section 4.3, Appendix B). With x_bar = x / sqrt(alpha) and sigma = sqrt((1 - alpha) / alpha), the
    probability-flow ODE of the VE-SDE is d x_bar = -1/2 grad log p_sigma(x_bar) d(sigma^2) = eps / (2 sigma)
    d(sigma^2),
    the same ODE as Eq. 14 (d(sigma^2) = 2 sigma d sigma). Euler's method in sigma^2 instead of sigma gives

        x_bar(t_next) = x_bar(t) + (sigma(t_next)^2 - sigma(t)^2) / (2 sigma(t)) * eps_theta(x_bar(t) / sqrt(sigma(t)^2
        + 1), t),

    which differs from `euler_step` by (sigma(t_next) - sigma(t))^2 / (2 sigma(t)) * eps: second order in the
    step, so both schemes converge to the same solution, at first order, with different constants.
    t: 1..T (sigma(t) > 0, the field divides by it); t_next: 0..T, t_next != t. Returns (x_bar_next, eps_pred),
    both of x_bar's shape. Taught in notebooks/05_ode_and_encoding.ipynb (section 3).
    """
    t = require_int("t", t, 1, schedule.T)
    t_next = require_int("t_next", t_next, 0, schedule.T)
    if t_next == t:
        raise ValueError(f"t_next must differ from t (a step of zero length), got t = t_next = {t}")
    sigma = ode_sigma(schedule.alpha[[t, t_next]])  # float64 on the CPU
    to_x, step = host_floats(1 / (sigma[:1] ** 2 + 1).sqrt(), (sigma[1:] ** 2 - sigma[:1] ** 2) / (2 * sigma[:1]))
    return _euler(eps_model, x_bar, to_x[0], step[0], t, f"in the Euler step in sigma^2 {t} -> {t_next}")


def _euler(eps_model: EpsModel, x_bar, to_x, step, t_model: int, where: str, outputs: ModelOutputs | None = None):
    """Eq. 14's update with its coefficients as floats (`host_floats`): to_x = 1 / sqrt(sigma^2 + 1) at the
    start, step = sigma(t_next) - sigma(t). Returns (x_bar_next, eps_pred)."""
    eps = call_model(eps_model, x_bar * to_x, t_model, where, outputs)
    return torch.add(x_bar, eps, alpha=step), eps


def _grid(schedule: Schedule, steps, tau) -> list[int]:
    return [0] + resolve_tau(tau, steps, schedule.T).tolist()


SCHEMES = ("sigma", "sigma_squared")  # Euler's method in sigma (Eq. 14: DDIM) or in sigma^2 (Eq. 15)


def _integrate(
    eps_model: EpsModel,
    schedule: Schedule,
    x: torch.Tensor,
    grid: list[int],
    desc: str,
    progress: bool,
    scheme: str = "sigma",
) -> torch.Tensor:
    """Euler steps of Eq. 14 along `grid` (increasing: encode; decreasing: decode), from x at grid[0] to grid[-1];
    with scheme="sigma_squared" Euler steps in sigma^2 (Eq. 15, `euler_step_sigma_squared`), which need sigma > 0
    at every step's start (decoding only).

    Each step evaluates the model at its start time, except that a start at t = 0 (only encode's
    first step) is evaluated at t = 1 (see encode). Every step's coefficients are computed before the
    loop, so that the loop reads nothing back from the device.
    """
    check_model(eps_model)
    x = check_x_T(x)
    alpha = schedule.alpha[grid]  # float64 on the CPU
    sigma = ode_sigma(alpha)
    change = sigma[1:] - sigma[:-1] if scheme == "sigma" else (sigma[1:] ** 2 - sigma[:-1] ** 2) / (2 * sigma[:-1])
    to_x, steps = host_floats(1 / (sigma**2 + 1).sqrt(), change)
    x_bar = to_x_bar(x, alpha[0])
    outputs = ModelOutputs(len(grid) - 1, x)
    for k in tqdm(range(len(grid) - 1), desc=desc, disable=not progress, leave=False):
        t, t_next = grid[k], grid[k + 1]
        x_bar, _ = _euler(
            eps_model, x_bar, to_x[k], steps[k], max(t, 1), f"in the Euler step {t} -> {t_next}", outputs
        )
    outputs.check()
    return from_x_bar(x_bar, alpha[-1])


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
    (Measured on the eight-Gaussians oracle, 2,000 points: evaluating the first step at t = 1 reconstructs
    better at S = 10 than evaluating it at tau_1, MSE 6.4e-3 against 1.8e-2; tests/test_ode.py pins it. Both
    agree at S = T, where tau_1 = 1.)

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
    scheme: str = "sigma",
) -> torch.Tensor:
    """Decode a latent x_T into x_0 by running Eq. 14 backward from tau_S = T to tau_0 = 0.

    scheme "sigma" (Euler's method in sigma) is identical in exact arithmetic to sampling.sample with eta = 0
    (DDIM is this Euler method); "sigma_squared" takes Euler steps in sigma^2 instead (Eq. 15, Proposition 1:
    `euler_step_sigma_squared` at every step), the same ODE discretised otherwise.
    x_T: (B, ...). Returns x_0 of the same shape.
    """
    scheme = require_choice("scheme", scheme, SCHEMES)
    return _integrate(eps_model, schedule, x_T, _grid(schedule, steps, tau)[::-1], "decode", progress, scheme)


@torch.no_grad()
def dpm_solver_2m(
    eps_model: EpsModel,
    schedule: Schedule,
    x_T: torch.Tensor,
    steps: int | None,
    tau: str | Sequence[int] | torch.Tensor = "linear",
    progress: bool = False,
) -> torch.Tensor:
    """Decode x_T with DPM-Solver++(2M), a second-order multistep solver of the same ODE (one network call per grid
    time).

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
    check_model(eps_model)
    x = check_x_T(x_T)
    grid = _grid(schedule, steps, tau)[::-1]
    # Every step's coefficients in float64 on the CPU; entry k belongs to the step grid[k] -> grid[k + 1].
    alpha = schedule.alpha[grid]
    a, s = alpha.sqrt(), (1 - alpha).sqrt()
    h = torch.log(a[1:] / s[1:]) - torch.log(a[:-1] / s[:-1])  # the last entry, to lambda_0 = infinity, is not used
    r = torch.cat([h.new_ones(1), h[:-1] / h[1:]])  # r_k = h_{k-1} / h_k (entry 0 unused: the first step is DDIM's)
    keep, grow = s[1:] / s[:-1], a[1:] * (1 - torch.exp(-h))
    new_weight, old_weight = 1 + 1 / (2 * r), 1 / (2 * r)
    keep, grow, new_weight, old_weight, sqrt_alpha, sqrt_one_minus_alpha = host_floats(
        keep, grow, new_weight, old_weight, a, s
    )
    outputs = ModelOutputs(len(grid) - 1, x)
    x0_before = None
    for k in tqdm(range(len(grid) - 1), desc="DPM-Solver++(2M)", disable=not progress, leave=False):
        t, t_next = grid[k], grid[k + 1]
        eps = call_model(eps_model, x, t, f"in the step {t} -> {t_next}", outputs)
        x0_pred = torch.add(x, eps, alpha=-sqrt_one_minus_alpha[k]).div_(sqrt_alpha[k])  # "predicted x0", Eq. 9
        if t_next == 0:  # lambda_0 is infinite: the last step returns the predicted x0, as DDIM does
            x = x0_pred
            break
        direction = x0_pred if x0_before is None else new_weight[k] * x0_pred - old_weight[k] * x0_before
        x = keep[k] * x + grow[k] * direction
        x0_before = x0_pred
    outputs.check()
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
        raise ValueError(
            f"steps and errors must be equally long sequences of at least 2 values, got {len(steps)} and {len(errors)}"
        )
    centred = log_s - log_s.mean()
    return float(-(centred * (log_e - log_e.mean())).sum() / (centred**2).sum())
