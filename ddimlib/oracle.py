"""Data whose distribution we know, and its exact noise predictor E[eps | x_t]: the "perfect model".

With them every sampler can be tested, and discretisation error told apart from model error,
without training anything. A `GaussianMixture` is the data's distribution (it draws samples);
`mixture.eps_model(schedule)` is its exact denoiser, usable wherever a trained eps_model is: call as
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


class GaussianMixture:
    """The distribution x0 ~ sum_k w_k N(mu_k, s_k^2 I) (s_k = 0 allowed: a point mass).

    means: (K, D); stds: (K,) >= 0; weights: (K,) > 0 summing to 1; all kept in float64 on the CPU.
    """

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
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
        self.means, self.stds, self.weights = means, stds, weights

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws x0 from the mixture, (n, D) float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z

    def eps_model(self, schedule: Schedule) -> GaussianMixtureEps:
        """The exact noise predictor E[eps | x_t] of this distribution under `schedule`."""
        return GaussianMixtureEps(self, schedule)


class GaussianMixtureEps:
    """E[eps | x_t] for x0 drawn from `mixture` and noised by `schedule` (the derivation: the module's docstring).

    Inputs x_t may be (B, D) or (B, ...) with prod(...) = D. Computed in float64, returned in x_t's dtype and
    device.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        self.mixture, self.schedule = mixture, schedule
        self._mean_sq = (mixture.means**2).sum(1)  # (K,)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mixture = self.mixture
        means, stds, weights = (v.to(x_t.device) for v in (mixture.means, mixture.stds, mixture.weights))
        B = x_t.shape[0]
        x = x_t.reshape(B, -1).to(torch.float64)
        if x.shape[1] != self.mixture.dim:
            raise ValueError(
                f"x_t has {x.shape[1]} features per sample but the mixture has dimension {self.mixture.dim}"
            )
        alpha = self.schedule.alpha.to(x.device)[t.to(x.device)][:, None]  # (B, 1)
        var = alpha * stds**2 + (1 - alpha)  # (B, K): v_k per sample
        # squared distance |x_t - sqrt(alpha) mu_k|^2 without a (B, K, D) tensor
        dist_sq = (x**2).sum(1, keepdim=True) - 2 * alpha.sqrt() * x @ means.T + alpha * self._mean_sq.to(x.device)
        log_r = weights.log() - 0.5 * dist_sq.clamp(min=0) / var - 0.5 * self.mixture.dim * var.log()
        r = torch.softmax(log_r, dim=1)  # responsibilities r_k(x_t), (B, K)
        c = r * (1 - alpha).sqrt() / var  # (B, K)
        eps = c.sum(1, keepdim=True) * x - alpha.sqrt() * (c @ means)
        return eps.reshape(x_t.shape).to(x_t.dtype)


def empirical(points: torch.Tensor, std: float = 0.0) -> GaussianMixture:
    """x0 drawn uniformly from a finite set of points (N, ...), each a Gaussian of `std` (0: point masses).

    Point masses are the "perfect" model of a finite data set, and sampling with their denoiser reproduces
    training points (it memorises); std > 0 gives a smooth density with volume that a sampler cannot copy.
    """
    require_floating("points", points)
    if not std >= 0:
        raise ValueError(f"std must be >= 0, got {std}")
    flat = points.reshape(points.shape[0], -1)
    N = flat.shape[0]
    return GaussianMixture(flat, torch.full((N,), float(std)), torch.full((N,), 1.0 / N, dtype=torch.float64))


def eight_gaussians(radius: float = 2.0, std: float = 0.1) -> GaussianMixture:
    """Eight equally weighted isotropic Gaussians on a circle, a standard 2-D toy set."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture(means, torch.full((8,), std), torch.full((8,), 1 / 8, dtype=torch.float64))
