"""Exact noise predictors E[eps | x_t] for data whose distribution we know: the "perfect model".

With them every sampler can be tested, and discretisation error told apart from model error,
without training anything. Both are usable wherever a trained eps_model is: call as
eps_model(x_t, t) with t a (B,) int64 tensor of the paper's timesteps.

Derivation (DDIM Eq. 4, alpha = DDIM's cumulative alpha_t). For one Gaussian component
x0 ~ N(mu, s^2 I), x_t = sqrt(alpha) x0 + sqrt(1 - alpha) eps is Gaussian with mean sqrt(alpha) mu,
variance v = alpha s^2 + 1 - alpha and Cov(eps, x_t) = sqrt(1 - alpha) I, so

    E[eps | x_t, component k] = sqrt(1 - alpha) (x_t - sqrt(alpha) mu_k) / v_k.

For a mixture, weight these by the posterior responsibilities r_k(x_t) proportional to
w_k N(x_t; sqrt(alpha) mu_k, v_k I). A finite data set is the mixture with s = 0 and equal weights.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502.
Used in notebooks/05_ode_and_encoding.ipynb and throughout the tests.
"""

from __future__ import annotations

import math

import torch

from ddimlib._validate import require_floating, require_tensor
from ddimlib.schedules import Schedule


class GaussianMixtureEps:
    """E[eps | x_t] for x0 ~ sum_k w_k N(mu_k, s_k^2 I) (s_k = 0 allowed: a point mass).

    means: (K, D); stds: (K,) >= 0; weights: (K,) > 0 summing to 1. Inputs x_t may be (B, D) or
    (B, ...) with prod(...) = D. Computed in float64, returned in x_t's dtype and device.
    """

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor, schedule: Schedule):
        means = require_floating("means", means).to(torch.float64)
        stds = require_tensor("stds", stds).to(torch.float64)
        weights = require_tensor("weights", weights).to(torch.float64)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(means.shape)}")
        K = means.shape[0]
        if stds.shape != (K,) or weights.shape != (K,):
            raise ValueError(
                f"stds and weights must have shape (K,) = ({K},), got {tuple(stds.shape)} and {tuple(weights.shape)}"
            )
        if (stds < 0).any():
            raise ValueError(f"stds must all be >= 0, got {stds.min().item()}")
        if (weights <= 0).any() or abs(weights.sum().item() - 1) > 1e-9:
            raise ValueError(
                f"weights must be positive and sum to 1, got sum {weights.sum().item()} and min {weights.min().item()}"
            )
        self.means, self.stds, self.weights, self.schedule = means, stds, weights, schedule
        self._mean_sq = (means**2).sum(1)  # (K,)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws x0 from the mixture, (n, D) float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x_t.shape[0]
        x = x_t.reshape(B, -1).to(torch.float64)
        if x.shape[1] != self.dim:
            raise ValueError(f"x_t has {x.shape[1]} features per sample but the mixture has dimension {self.dim}")
        alpha = self.schedule.alpha.to(x.device)[t.to(x.device)][:, None]  # (B, 1)
        var = alpha * self.stds.to(x.device) ** 2 + (1 - alpha)  # (B, K): v_k per sample
        # squared distance |x_t - sqrt(alpha) mu_k|^2 without a (B, K, D) tensor
        dist_sq = (
            (x**2).sum(1, keepdim=True)
            - 2 * alpha.sqrt() * x @ self.means.to(x.device).T
            + alpha * self._mean_sq.to(x.device)
        )
        log_r = self.weights.to(x.device).log() - 0.5 * dist_sq.clamp(min=0) / var - 0.5 * self.dim * var.log()
        r = torch.softmax(log_r, dim=1)  # responsibilities r_k(x_t), (B, K)
        c = r * (1 - alpha).sqrt() / var  # (B, K)
        eps = c.sum(1, keepdim=True) * x - alpha.sqrt() * (c @ self.means.to(x.device))
        return eps.reshape(x_t.shape).to(x_t.dtype)


def empirical_eps(points: torch.Tensor, schedule: Schedule) -> GaussianMixtureEps:
    """E[eps | x_t] when x0 is drawn uniformly from a finite set of points (N, ...): a point-mass mixture.

    Sampling with it reproduces training points (the "perfect" model of a finite data set memorises).
    """
    require_floating("points", points)
    flat = points.reshape(points.shape[0], -1)
    N = flat.shape[0]
    return GaussianMixtureEps(flat, torch.zeros(N), torch.full((N,), 1.0 / N, dtype=torch.float64), schedule)


def eight_gaussians(schedule: Schedule, radius: float = 2.0, std: float = 0.1) -> GaussianMixtureEps:
    """Eight equally weighted isotropic Gaussians on a circle, a standard 2-D toy set, with its oracle."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixtureEps(means, torch.full((8,), std), torch.full((8,), 1 / 8, dtype=torch.float64), schedule)
