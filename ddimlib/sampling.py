"""The generative processes: DDIM's sampler for any eta, the sigma-hat sampler, and DDPM's own.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502,
Eq. 12 (one generative step), Eq. 16 (sigma as a function of eta), Section 4.2 (sampling on a
subsequence tau) and Section 5 (the sigma-hat variant). DDPM: Ho, Jain & Abbeel, NeurIPS 2020,
Algorithm 2 with sigma_t^2 = beta-tilde_t.

The model interface everywhere: eps_model(x_t, t) -> eps_pred of x_t's shape, where t is a (B,)
int64 tensor of the paper's timesteps 1..T.

Taught by the step sweep of notebooks/04_step_sweep.ipynb (Table 1, timing, consistency); used throughout
notebooks 03 and 05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ddimlib._validate import (
    require_choice,
    require_in_range,
    require_sigma,
    require_tensor,
)
from ddimlib.forward import expand_to, predict_x0
from ddimlib.loop import (
    EpsModel,
    ModelOutputs,
    call_model,
    check_model,
    check_x_T,
    host_floats,
    placement,
    standard_normal,
)
from ddimlib.schedules import Schedule, resolve_tau

VARIANCES = ("eta", "hat")


def sigma_eta(alpha_t, alpha_prev, eta: float):
    """DDIM Eq. 16: sigma_t(eta) = eta sqrt((1 - alpha_{t-1}) / (1 - alpha_t)) sqrt(1 - alpha_t / alpha_{t-1}).

    eta = 0 gives the deterministic DDIM, eta = 1 the DDPM posterior standard deviation. On a
    subsequence, t-1 stands for the previous element of tau. Works on floats and tensors alike.
    """
    eta = require_in_range("eta", eta, 0.0, 1.0)
    return eta * ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)) ** 0.5


def sigma_table(schedule: Schedule, eta: float, sigma_1: float = 0.0) -> torch.Tensor:
    """sigma_t(eta) of Eq. 16 for every t of the full chain, as a (T+1,) tensor indexed by the paper's t: the table
    `forward.sample_forward_chain`, `objective.gamma_weights` and `objective.log_q_sigma` take. sigma[0] = 0 is
    unused; Eq. 16 gives sigma_1 = 0 (alpha_0 = 1), and sigma_1 sets it instead: the standard deviation of
    p_theta(x0 | x1), a free choice that J_sigma needs positive."""
    alpha = schedule.alpha
    sigma = torch.cat([torch.zeros(1, dtype=alpha.dtype), sigma_eta(alpha[1:], alpha[:-1], eta)])
    sigma[1] = require_in_range("sigma_1", sigma_1, 0.0, math.inf)
    return sigma


def sigma_hat(alpha_t, alpha_prev):
    """The larger standard deviation of DDIM Section 5: sqrt(1 - alpha_t / alpha_{t-1}) (sqrt(beta_t) on the full
    chain).

    Eq. 12 cannot use it directly: sqrt(1 - alpha_{t-1} - sigma_hat^2) is imaginary whenever
    alpha_t < alpha_{t-1}^2. Like the paper's code, `sample(variance="hat")` takes the eta = 1 mean
    and adds noise with this standard deviation.
    """
    return (1 - alpha_t / alpha_prev) ** 0.5


@dataclass
class StepOutput:
    """One generative step: x_prev = x_{t-1} (or x_{tau_{i-1}}) and the "predicted x0" it came from."""

    x_prev: torch.Tensor
    x0_pred: torch.Tensor


def ddim_step(
    x_t: torch.Tensor, eps_pred: torch.Tensor, alpha_t, alpha_prev, sigma_t, noise: torch.Tensor | None = None
) -> StepOutput:
    """One step of DDIM Eq. 12, from x_t to x_{t-1}.

    x_{t-1} = sqrt(alpha_{t-1}) x0_pred                              "predicted x0"
            + sqrt(1 - alpha_{t-1} - sigma_t^2) eps_pred             "direction pointing to x_t"
            + sigma_t noise                                           "random noise"

    x_t, eps_pred, noise: (B, ...). alpha_t, alpha_prev, sigma_t: floats or (B,). With noise=None
    the random-noise term is left out (the step's mean).
    """
    require_sigma(sigma_t, alpha_prev)
    x0_pred = predict_x0(x_t, eps_pred, alpha_t)  # "predicted x0"
    alpha_prev, sigma_t = expand_to(alpha_prev, x_t), expand_to(sigma_t, x_t)
    # + "direction pointing to x_t"
    x_prev = alpha_prev.sqrt() * x0_pred + (1 - alpha_prev - sigma_t**2).clamp(min=0).sqrt() * eps_pred
    if noise is not None:
        x_prev = x_prev + sigma_t * noise  # + "random noise"
    return StepOutput(x_prev=x_prev, x0_pred=x0_pred)


@dataclass
class Trajectory:
    """A sampler's path. tau: (S+1,) int64 with tau[0] = 0; x: (S+1, B, ...) with x[i] = x_{tau_i}
    (so x[0] is the sample and x[S] = x_T); x0_pred: (S+1, B, ...), x0_pred[i] predicted at tau_i
    (x0_pred[0] = x[0])."""

    tau: torch.Tensor
    x: torch.Tensor
    x0_pred: torch.Tensor


@torch.no_grad()
def sample(
    eps_model: EpsModel,
    schedule: Schedule,
    x_T: torch.Tensor,
    steps: int | None,
    eta: float = 0.0,
    tau: str | Sequence[int] | torch.Tensor = "linear",
    variance: str = "eta",
    generator: torch.Generator | None = None,
    progress: bool = True,
    return_trajectory: bool = False,
):
    """Generate x_0 from x_T with DDIM (Eq. 12) on the subsequence tau (Section 4.2).

    steps: S = dim(tau); tau: "linear" or "quadratic" (Appendix D.2) or an explicit increasing list
    ending at T (then steps may be None). variance="eta" uses sigma_eta(eta) (Eq. 16); "hat" uses
    the eta = 1 mean plus sigma_hat noise (eta is then ignored). The last step, to t = 0, adds no
    noise for either (as in DDPM and the paper's code). Noise is drawn from `generator` (on the
    generator's device, see `standard_normal`), in step order, only for steps that add noise. Works on
    any device; the loop reads nothing back from it (the model outputs' finite check comes after it).

    Returns x_0 of x_T's shape, or (x_0, Trajectory) if return_trajectory.
    """
    check_model(eps_model)
    require_tensor("schedule.alpha", getattr(schedule, "alpha", None))
    x = check_x_T(x_T)
    variance = require_choice("variance", variance, VARIANCES)
    eta = require_in_range("eta", eta, 0.0, 1.0)
    tau = resolve_tau(tau, steps, schedule.T)
    tau_full = torch.cat([tau.new_zeros(1), tau])
    # Every step's coefficients at once, in float64 on the CPU: entry i - 1 belongs to the step tau_i -> tau_{i-1}.
    alpha_t, alpha_prev = schedule.alpha[tau_full[1:]], schedule.alpha[tau_full[:-1]]
    # Eq. 12 uses the eta = 1 mean for "hat"
    sigma_t = sigma_eta(alpha_t, alpha_prev, 1.0 if variance == "hat" else eta)
    require_sigma(sigma_t, alpha_prev)
    noise_std = sigma_hat(alpha_t, alpha_prev) if variance == "hat" else sigma_t
    adds_noise = ((noise_std > 0) & (tau_full[:-1] > 0)).tolist()  # the last step, to t = 0, adds none (host values)
    sqrt_one_minus_alpha_t, sqrt_alpha_t, sqrt_alpha_prev, direction, noise_std = host_floats(
        (1 - alpha_t).sqrt(),
        alpha_t.sqrt(),
        alpha_prev.sqrt(),
        (1 - alpha_prev - sigma_t**2).clamp(min=0).sqrt(),
        noise_std,
    )
    t_model = tau_full.tolist()
    outputs = ModelOutputs(len(tau), x)
    path, preds = [x], []
    for i in tqdm(range(len(tau), 0, -1), desc=f"DDIM S={len(tau)}", disable=not progress, leave=False):
        eps = call_model(eps_model, x, t_model[i], f"at step {len(tau) - i + 1} of {len(tau)}", outputs)
        k = i - 1  # Eq. 12, as ddim_step computes it:
        x0_pred = torch.add(x, eps, alpha=-sqrt_one_minus_alpha_t[k]).div_(sqrt_alpha_t[k])  # "predicted x0"
        x = torch.add(x0_pred * sqrt_alpha_prev[k], eps, alpha=direction[k])  # + "direction pointing to x_t"
        if adds_noise[k]:
            x = torch.add(x, standard_normal(x, generator), alpha=noise_std[k])  # + "random noise"
        if return_trajectory:
            path.append(x)
            preds.append(x0_pred)
    outputs.check()
    if not return_trajectory:
        return x
    return x, Trajectory(tau=tau_full, x=torch.stack(path[::-1]), x0_pred=torch.stack([x] + preds[::-1]))


@torch.no_grad()
def sample_sets(
    eps_model: EpsModel,
    schedule: Schedule,
    sets: int,
    n: int,
    steps: int,
    shape: Sequence[int],
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """`sets` independent sets of `n` samples, (sets, n, *shape) on the CPU: DDIM at eta = 0 on `steps` steps of a
    linear tau, every sample from its own x_T. The x_T are drawn on the CPU from `seed` (the same numbers on any
    device) and moved to the model's device; one set is sampled at a time."""
    x_T = torch.randn(sets, n, *shape, generator=torch.Generator().manual_seed(seed))
    device = placement(eps_model)[0]
    return torch.stack(
        [
            sample(eps_model, schedule, x.to(device), steps, progress=False).cpu()
            for x in tqdm(x_T, desc="sampling sets", disable=not progress)
        ]
    )


def ddpm_sample(
    eps_model: EpsModel,
    schedule: Schedule,
    x_T: torch.Tensor,
    generator: torch.Generator | None = None,
    progress: bool = True,
    return_trajectory: bool = False,
):
    """DDPM's ancestral sampler (Ho et al. 2020, Algorithm 2) on all T steps, with sigma_t^2 = beta-tilde_t.

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_t) eps_pred) / sqrt(1 - beta_t) + sqrt(beta-tilde_t) z,
    beta_t = 1 - alpha_t / alpha_{t-1}, beta-tilde_t = beta_t (1 - alpha_{t-1}) / (1 - alpha_t),
    with alpha DDIM's cumulative alpha. Written from DDPM's formula, independently of ddim_step, so
    that the equality with DDIM at eta = 1 (S = T) is a test, not a tautology. The last step adds
    no noise, and noise is drawn in the same order as in `sample`.

    Returns x_0, or (x_0, Trajectory) if return_trajectory (x0_pred from Eq. 9 for inspection).
    """
    check_model(eps_model)
    x = check_x_T(x_T)
    T, alpha, beta = schedule.T, schedule.alpha, schedule.beta  # float64 on the CPU, indexed by t = 0..T
    zero = alpha.new_zeros(1)
    eps_coef = torch.cat([zero, beta[1:] / (1 - alpha[1:]).sqrt()])  # beta_t / sqrt(1 - alpha_t)
    std = torch.cat([zero, (beta[1:] * (1 - alpha[:-1]) / (1 - alpha[1:])).sqrt()])  # sqrt(beta-tilde_t)
    scale = 1 / (1 - beta).sqrt()  # 1 / sqrt(1 - beta_t)
    eps_coef, std, scale, sqrt_alpha, sqrt_one_minus_alpha = host_floats(
        eps_coef, std, scale, alpha.sqrt(), (1 - alpha).sqrt()
    )
    outputs = ModelOutputs(T, x)
    path, preds = [x], []
    for t in tqdm(range(T, 0, -1), desc=f"DDPM T={T}", disable=not progress, leave=False):
        eps = call_model(eps_model, x, t, f"at step {T - t + 1} of {T}", outputs)
        mean = torch.add(x, eps, alpha=-eps_coef[t]).mul_(scale[t])
        # Eq. 9
        x0_pred = torch.add(x, eps, alpha=-sqrt_one_minus_alpha[t]).div_(sqrt_alpha[t]) if return_trajectory else None
        x = torch.add(mean, standard_normal(x, generator), alpha=std[t]) if t > 1 else mean
        if return_trajectory:
            path.append(x)
            preds.append(x0_pred)
    outputs.check()
    if not return_trajectory:
        return x
    tau = torch.arange(schedule.T + 1, dtype=torch.int64)
    return x, Trajectory(tau=tau, x=torch.stack(path[::-1]), x0_pred=torch.stack([x] + preds[::-1]))
