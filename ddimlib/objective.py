"""The variational objective J_sigma, its equivalence to the weighted denoising loss L_gamma, and L_simple.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502,
Section 3.2: Eq. 5 (L_gamma), Eq. 10 (the generative process p_theta), Eq. 11 (J_sigma) and
Theorem 1 (J_sigma = L_gamma + C), proved in Appendix B.

The weight. For t >= 2 both q_sigma(x_{t-1} | x_t, x0) and p_theta(x_{t-1} | x_t) = q_sigma(x_{t-1} | x_t,
f_theta(x_t))
are Gaussians with covariance sigma_t^2 I whose means differ only through x0, so

    KL = |c_t (x0 - f_theta(x_t))|^2 / (2 sigma_t^2),   c_t = sqrt(alpha_{t-1}) - sqrt(1 - alpha_{t-1} - sigma_t^2)
    sqrt(alpha_t / (1 - alpha_t)),

c_t being the coefficient of x0 in the posterior mean of Eq. 7. With x0 - f_theta(x_t) = sqrt((1 - alpha_t) / alpha_t)
(eps_theta - eps),

    gamma_t = c_t^2 (1 - alpha_t) / (2 sigma_t^2 alpha_t)      (t >= 2),
    gamma_1 = (1 - alpha_1) / (2 sigma_1^2 alpha_1)             (p_theta(x0 | x1) = N(f_theta(x1), sigma_1^2 I)).

The paper's short proof (and many notes that follow it) drop c_t^2. Theorem 1 still holds because
c_t != 0 for every admissible sigma_t: c_t = 0 would need sigma_t^2 = 1 - alpha_{t-1} / alpha_t < 0.

Taught in notebooks/02_unified_objective.ipynb.
"""

from __future__ import annotations

import math

import torch

from ddimlib._validate import require_floating, require_sigma
from ddimlib.forward import expand_to, predict_x0, q_posterior_mean_std, q_sample_unchecked
from ddimlib.loop import EpsModel, ModelOutputs, call_model
from ddimlib.schedules import Schedule


def x0_coefficient(alpha_t, alpha_prev, sigma_t):
    """c_t: the coefficient of x0 in the mean of q_sigma(x_{t-1} | x_t, x0) (Eq. 7), x_t held fixed.

    sigma_t must be admissible, 0 <= sigma_t^2 <= 1 - alpha_{t-1}; at the top of that range rounding can make
    1 - alpha_{t-1} - sigma_t^2 a tiny negative number, which counts as 0 (it gave NaN). Returns float64 tensors.
    """
    require_sigma(sigma_t, alpha_prev)
    rest = torch.as_tensor(
        1 - alpha_prev - torch.as_tensor(sigma_t, dtype=torch.float64) ** 2, dtype=torch.float64
    ).clamp(min=0)
    return (
        torch.as_tensor(alpha_prev, dtype=torch.float64) ** 0.5
        - rest.sqrt() * torch.as_tensor(alpha_t / (1 - alpha_t), dtype=torch.float64) ** 0.5
    )


def _check_chain_sigma(schedule: Schedule, sigma) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if sigma.shape != schedule.alpha.shape:
        raise ValueError(f"sigma must have shape (T+1,) = {tuple(schedule.alpha.shape)}, got {tuple(sigma.shape)}")
    if not (sigma[1:] > 0).all():
        raise ValueError(
            f"sigma_t must be > 0 for t = 1..T for J_sigma to be finite; got min {sigma[1:].min().item()}"
        )
    require_sigma(sigma[2:], schedule.alpha[1:-1])
    return sigma


def gamma_weights(schedule: Schedule, sigma) -> torch.Tensor:
    """The weights gamma_t with J_sigma = L_gamma + C (Theorem 1), derived in the module docstring.

    sigma: (T+1,) with sigma[t] = sigma_t > 0 for t = 1..T (sigma[1] is the standard deviation of
    p_theta(x0 | x1)). Returns (T+1,) float64 with gamma[0] = 0. L_gamma weighs the squared norm
    |eps_theta - eps|^2 summed over all dimensions.
    """
    sigma = _check_chain_sigma(schedule, sigma)
    alpha = schedule.alpha
    coef = torch.ones_like(alpha)
    coef[2:] = x0_coefficient(alpha[2:], alpha[1:-1], sigma[2:])
    gamma = coef**2 * (1 - alpha) / (2 * sigma**2 * alpha)
    gamma[0] = 0.0
    return gamma


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std) -> torch.Tensor:
    """log N(x; mean, std^2 I) summed over all but the batch dimension: (B, ...) -> (B,)."""
    std = expand_to(std, x)
    log_density = -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return log_density.reshape(x.shape[0], -1).sum(1)


def log_q_sigma(chain: torch.Tensor, schedule: Schedule, sigma) -> torch.Tensor:
    """log q_sigma(x_{1:T} | x0) of Eq. 6 for chains (T+1, B, ...) laid out as sample_forward_chain returns. -> (B,)"""
    sigma = _check_chain_sigma(schedule, sigma)
    alpha, x0 = schedule.alpha, chain[0]
    log_prob = gaussian_log_prob(chain[-1], alpha[-1].sqrt() * x0, (1 - alpha[-1]).sqrt())
    for t in range(2, schedule.T + 1):
        mean, std = q_posterior_mean_std(chain[t], x0, alpha[t], alpha[t - 1], sigma[t])
        log_prob = log_prob + gaussian_log_prob(chain[t - 1], mean, std)
    return log_prob


@torch.no_grad()
def log_p_theta(eps_model: EpsModel, chain: torch.Tensor, schedule: Schedule, sigma) -> torch.Tensor:
    """log p_theta(x_{0:T}) of the generative process, Eq. 10, for chains (T+1, B, ...). -> (B,)

    p(x_T) = N(0, I); p_theta(x_{t-1} | x_t) = q_sigma(x_{t-1} | x_t, f_theta(x_t)) for t >= 2;
    p_theta(x0 | x1) = N(f_theta(x1), sigma_1^2 I), with f_theta the predicted x0 (Eq. 9).
    """
    sigma = _check_chain_sigma(schedule, sigma)
    alpha = schedule.alpha
    log_prob = gaussian_log_prob(chain[-1], torch.zeros_like(chain[-1]), 1.0)
    for t in range(1, schedule.T + 1):
        x0_pred = predict_x0(chain[t], call_model(eps_model, chain[t], t, where="in log_p_theta"), alpha[t])
        if t == 1:
            mean, std = x0_pred, sigma[1]
        else:
            mean, std = q_posterior_mean_std(chain[t], x0_pred, alpha[t], alpha[t - 1], sigma[t])
        log_prob = log_prob + gaussian_log_prob(chain[t - 1], mean, std)
    return log_prob


@torch.no_grad()
def per_step_losses(eps_model: EpsModel, chain: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The denoising loss of every step of every chain, |eps_theta(x_t, t) - eps_t|^2 with eps_t = (x_t - sqrt(alpha_t)
    x0) / sqrt(1 - alpha_t) the noise that x_t carries (Eq. 4), for chains (T+1, B, ...) laid out as
    sample_forward_chain returns (x0 = chain[0]). -> (T, B), row t - 1 for step t; L_gamma of Eq. 5 on these chains is
    (gamma[1:, None] * per_step_losses(...)).sum(0)."""
    require_floating("chain", chain)
    if chain.ndim < 2 or chain.shape[0] != schedule.T + 1:
        raise ValueError(f"chain must have shape (T+1, B, ...) = ({schedule.T + 1}, B, ...), got {tuple(chain.shape)}")
    alpha, x0 = schedule.alpha.to(chain.dtype).to(chain.device), chain[0]
    outputs, losses = ModelOutputs(schedule.T, chain), []  # finite checks read back once, after the loop
    for t in range(1, schedule.T + 1):
        eps_t = (chain[t] - alpha[t].sqrt() * x0) / (1 - alpha[t]).sqrt()
        error = call_model(eps_model, chain[t], t, "in per_step_losses", outputs) - eps_t
        losses.append((error**2).flatten(1).sum(1))
    outputs.check()
    return torch.stack(losses)


def l_simple(
    eps_model: EpsModel, x0: torch.Tensor, schedule: Schedule, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DDPM's L_simple, i.e. L_gamma with gamma = 1 (Eq. 5), as a per-element mean for training.

    t ~ Uniform{1..T} and eps ~ N(0, I) per sample; returns mean |eps_theta(x_t, t) - eps|^2 over
    batch and dimensions (a scalar with gradients). x0: (B, ...).
    """
    require_floating("x0", x0)
    return l_simple_on(eps_model, x0, schedule.alpha.to(x0.dtype).to(x0.device), generator)


def l_simple_on(
    eps_model: EpsModel, x0: torch.Tensor, alpha: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """l_simple with the schedule's alpha already in x0's dtype and on its device, (T+1,): what a training
    loop calls, so that no step copies the table to the device (a copy that waits for the device)."""
    t = torch.randint(1, alpha.numel(), (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return l_simple_given(eps_model, x0, alpha, t, noise)


def l_simple_given(
    eps_model: EpsModel, x0: torch.Tensor, alpha: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """l_simple for given draws: mean |eps_theta(x_t, t) - eps|^2 with x_t = sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps
    (Eq. 4). x0, noise: (B, ...); t: (B,) in 1..T; alpha: (T+1,) in x0's dtype and on its device. What a
    training loop that draws its own t and noise calls (ddimlib.training: a process's share of a global batch)."""
    x_t = q_sample_unchecked(x0, alpha[t], noise)  # Eq. 4, unchecked: alpha comes from a checked Schedule
    return ((eps_model(x_t, t) - noise) ** 2).mean()
