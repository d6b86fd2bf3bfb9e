"""The forward (inference) processes of DDIM: the marginals and the non-Markovian family q_sigma.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502,
Section 3.1 (Eqs. 4, 6, 7, 8 and Lemma 1 in Appendix B) and Eq. 9 (the "predicted x0").

alpha_t is DDIM's cumulative alpha (DDPM's alpha-bar). Coefficients such as alpha_t may be Python
floats, 0-d tensors or (B,) tensors (one value per batch element); they are cast to the dtype and
device of the data they multiply.

Taught in notebooks/01_forward_process.ipynb.
"""

from __future__ import annotations

import torch

from ddimlib._validate import require_alpha, require_floating, require_same_kind, require_same_shape, require_sigma
from ddimlib.schedules import Schedule


def expand_to(coef, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (B,) coefficient as a tensor that broadcasts against x of shape (B, ...)."""
    # straight to x's dtype: a Python float is not rounded to float32 first
    coef = torch.as_tensor(coef, dtype=x.dtype, device=x.device)
    if coef.ndim == 1:
        if coef.numel() != x.shape[0]:
            raise ValueError(f"a per-sample coefficient has {coef.numel()} entries but the batch has {x.shape[0]}")
        coef = coef.reshape(-1, *([1] * (x.ndim - 1)))
    elif coef.ndim > 1:
        raise ValueError(f"coefficients must be scalars or of shape (B,), got shape {tuple(coef.shape)}")
    return coef


def q_sample(x0: torch.Tensor, alpha_t, noise: torch.Tensor) -> torch.Tensor:
    """The marginal q(x_t | x0) = N(sqrt(alpha_t) x0, (1 - alpha_t) I), reparameterised (DDIM Eq. 4).

    x_t = sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps, with eps = `noise` of the shape of x0.
    """
    require_floating("x0", x0)
    require_floating("noise", noise)
    require_same_shape("noise", noise, "x0", x0)
    require_same_kind("noise", noise, "x0", x0)
    require_alpha("alpha_t", alpha_t)
    return q_sample_unchecked(x0, alpha_t, noise)


def q_sample_unchecked(x0: torch.Tensor, alpha_t, noise: torch.Tensor) -> torch.Tensor:
    """q_sample without its checks (DDIM Eq. 4), for a training step whose alpha_t comes from a checked Schedule:
    checking alpha_t's values would read them back from the device at every step."""
    alpha_t = expand_to(alpha_t, x0)
    return alpha_t.sqrt() * x0 + (1 - alpha_t).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_t) -> torch.Tensor:
    """f_theta of DDIM Eq. 9, the "predicted x0": (x_t - sqrt(1 - alpha_t) eps) / sqrt(alpha_t)."""
    alpha_t = expand_to(alpha_t, x_t)
    return (x_t - (1 - alpha_t).sqrt() * eps) / alpha_t.sqrt()


def predict_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_t) -> torch.Tensor:
    """The noise that takes x0 to x_t: (x_t - sqrt(alpha_t) x0) / sqrt(1 - alpha_t) (Eq. 4 solved for eps)."""
    alpha_t = expand_to(alpha_t, x_t)
    return (x_t - alpha_t.sqrt() * x0) / (1 - alpha_t).sqrt()


def _step_coefficients(name: str, x: torch.Tensor, x0: torch.Tensor, alpha_t, alpha_prev, sigma_t):
    """Check the arguments of one step between t-1 and t; return (alpha_t, alpha_prev, sigma_t) broadcast to x."""
    require_floating(name, x)
    require_floating("x0", x0)
    require_same_kind("x0", x0, name, x)
    require_alpha("alpha_t", alpha_t)
    require_alpha("alpha_prev", alpha_prev)
    require_sigma(sigma_t, alpha_prev)
    return tuple(expand_to(c, x) for c in (alpha_t, alpha_prev, sigma_t))


def q_posterior_mean_std(x_t: torch.Tensor, x0: torch.Tensor, alpha_t, alpha_prev, sigma_t):
    """q_sigma(x_{t-1} | x_t, x0) of DDIM Eq. 7, returned as (mean, std).

    mean = sqrt(alpha_{t-1}) x0 + sqrt(1 - alpha_{t-1} - sigma_t^2) (x_t - sqrt(alpha_t) x0) / sqrt(1 - alpha_t)
    std  = sigma_t, with 0 <= sigma_t^2 <= 1 - alpha_{t-1}.

    x_t, x0: (B, ...). Returns mean of shape (B, ...) and std broadcastable to it.
    """
    alpha_t, alpha_prev, sigma_t = _step_coefficients("x_t", x_t, x0, alpha_t, alpha_prev, sigma_t)
    eps = (x_t - alpha_t.sqrt() * x0) / (1 - alpha_t).sqrt()
    direction = (1 - alpha_prev - sigma_t**2).clamp(min=0).sqrt() * eps
    return alpha_prev.sqrt() * x0 + direction, sigma_t


def q_forward_mean_std(x_prev: torch.Tensor, x0: torch.Tensor, alpha_t, alpha_prev, sigma_t):
    """q_sigma(x_t | x_{t-1}, x0), obtained from Eq. 7 by Bayes' rule (DDIM Eq. 8), as (mean, std).

    Write u_t = x_t - sqrt(alpha_t) x0. Under q_sigma(. | x0), u_t ~ N(0, (1 - alpha_t) I) and
    u_{t-1} = k u_t + sigma_t z with k = sqrt(1 - alpha_{t-1} - sigma_t^2) / sqrt(1 - alpha_t), so
    Cov(u_t, u_{t-1}) = sqrt((1 - alpha_t)(1 - alpha_{t-1} - sigma_t^2)) and Gaussian conditioning gives

        mean = sqrt(alpha_t) x0 + sqrt((1 - alpha_t)(1 - alpha_{t-1} - sigma_t^2)) / (1 - alpha_{t-1}) u_{t-1}
        std  = sigma_t sqrt((1 - alpha_t) / (1 - alpha_{t-1})).

    At t = 1 (alpha_{t-1} = 1, so sigma_1 = 0 and x_0 = x0 carries no information) this is the marginal
    q(x_1 | x0). At eta = 1 it is DDPM's N(sqrt(alpha_t / alpha_{t-1}) x_{t-1}, (1 - alpha_t / alpha_{t-1}) I),
    free of x0; at sigma_t = 0 the std is 0 and x_t is a deterministic function of x_{t-1} and x0.
    """
    alpha_t, alpha_prev, sigma_t = _step_coefficients("x_prev", x_prev, x0, alpha_t, alpha_prev, sigma_t)
    var_prev = 1 - alpha_prev  # Var(u_{t-1}); 0 only at t = 1
    at_first_step = var_prev == 0
    safe_var_prev = torch.where(at_first_step, torch.ones_like(var_prev), var_prev)
    gain = ((1 - alpha_t) * (1 - alpha_prev - sigma_t**2).clamp(min=0)).sqrt() / safe_var_prev
    gain = torch.where(at_first_step, torch.zeros_like(gain), gain)
    std = torch.where(at_first_step, (1 - alpha_t).sqrt(), sigma_t * ((1 - alpha_t) / safe_var_prev).sqrt())
    mean = alpha_t.sqrt() * x0 + gain * (x_prev - alpha_prev.sqrt() * x0)
    return mean, std


def sample_forward_chain(
    x0: torch.Tensor, schedule: Schedule, sigma: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw x_{1:T} from the non-Markovian forward process q_sigma(x_{1:T} | x0) (DDIM Eq. 6).

    Top-down, as the process is defined: x_T ~ q(x_T | x0), then x_{t-1} ~ q_sigma(x_{t-1} | x_t, x0)
    for t = T, ..., 2. By Lemma 1 every x_t has the marginal N(sqrt(alpha_t) x0, (1 - alpha_t) I),
    whatever admissible sigma is chosen; the joints differ.

    x0: (B, ...) data. sigma: (T+1,) with sigma[t] = sigma_t for t = 1..T (sigma[0] is ignored);
    see ddimlib.sampling.sigma_eta. Returns (T+1, B, ...) with entry t holding x_t and entry 0 = x0.
    """
    require_floating("x0", x0)
    sigma = torch.as_tensor(sigma, dtype=torch.float64)
    if sigma.shape != schedule.alpha.shape:
        raise ValueError(f"sigma must have shape (T+1,) = {tuple(schedule.alpha.shape)}, got {tuple(sigma.shape)}")
    require_sigma(sigma[2:], schedule.alpha[1:-1])
    alpha = schedule.alpha
    chain = x0.new_empty((schedule.T + 1, *x0.shape))
    chain[0] = x0
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    chain[-1] = q_sample(x0, alpha[-1], noise)
    for t in range(schedule.T, 1, -1):
        mean, std = q_posterior_mean_std(chain[t], x0, alpha[t], alpha[t - 1], sigma[t])
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        chain[t - 1] = mean + std * noise
    return chain
