"""Exact noise predictors: closed forms, quadrature, brute force, and what DDIM does with them."""

import math

import torch

from ddimlib.oracle import GaussianMixture, eight_gaussians, empirical
from ddimlib.sampling import sample
from ddimlib.schedules import linear_schedule

SCHEDULE = linear_schedule()
F64 = torch.float64


def test_single_gaussian_matches_the_closed_form():
    mu, s = torch.tensor([[0.7, -1.2, 0.1]], dtype=F64), 0.4
    model = GaussianMixture(mu, torch.tensor([s], dtype=F64), torch.tensor([1.0], dtype=F64)).eps_model(SCHEDULE)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(32, 3, generator=g, dtype=F64) * 2
    t = torch.randint(1, 1001, (32,), generator=g)
    alpha = SCHEDULE.alpha[t][:, None]
    expected = (x_t - alpha.sqrt() * mu) / (alpha * s**2 + 1 - alpha) * (1 - alpha).sqrt()
    assert torch.allclose(model(x_t, t), expected, atol=1e-13, rtol=1e-12)


def test_mixture_matches_quadrature_of_the_posterior():
    """E[eps | x_t] = integral p(x0 | x_t) (x_t - sqrt(a) x0) / sqrt(1 - a) dx0, by quadrature in 1-D."""
    means, stds, weights = (
        torch.tensor([[-1.0], [0.5], [2.0]], dtype=F64),
        torch.tensor([0.3, 0.2, 0.5]),
        torch.tensor([0.2, 0.5, 0.3], dtype=F64),
    )
    model = GaussianMixture(means, stds, weights).eps_model(SCHEDULE)
    grid = torch.linspace(-6, 8, 200001, dtype=F64)
    prior = sum(
        w * torch.exp(-0.5 * ((grid - m) / s) ** 2) / s for m, s, w in zip(means[:, 0], stds.double(), weights)
    )
    for t in [5, 100, 400, 900]:
        a = SCHEDULE.alpha[t]
        x_t = torch.linspace(-2.5, 2.5, 11, dtype=F64)[:, None]
        likelihood = torch.exp(-0.5 * (x_t - a.sqrt() * grid) ** 2 / (1 - a))  # (11, grid)
        posterior = prior * likelihood
        eps = (posterior * (x_t - a.sqrt() * grid) / (1 - a).sqrt()).sum(1) / posterior.sum(1)
        got = model(x_t, torch.full((11,), t))[:, 0]
        assert torch.allclose(got, eps, atol=1e-6), t


def test_empirical_oracle_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    points = torch.randn(7, 2, 2, generator=g, dtype=F64)  # seven 2x2 "images"
    model = empirical(points).eps_model(SCHEDULE)
    x_t = torch.randn(5, 2, 2, generator=g, dtype=F64)
    t = torch.tensor([1, 50, 300, 700, 1000])
    a = SCHEDULE.alpha[t].reshape(5, 1, 1, 1)
    diff = x_t[:, None] - a.sqrt() * points[None]  # (B, N, 2, 2)
    log_r = -0.5 * (diff**2).sum((2, 3)) / (1 - a.reshape(5, 1))
    r = torch.softmax(log_r, dim=1)
    expected = (r[:, :, None, None] * diff).sum(1) / (1 - a[:, 0]).sqrt()
    got = model(x_t, t)
    assert got.shape == x_t.shape and torch.allclose(got, expected, atol=1e-10)


def test_ddim_eta_0_maps_noise_to_a_1d_gaussian():
    mu, s = 0.8, 0.5
    model = GaussianMixture(
        torch.tensor([[mu]], dtype=F64),
        torch.tensor([s], dtype=F64),
        torch.tensor([1.0], dtype=F64),
    ).eps_model(SCHEDULE)
    n = 4000
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(2), dtype=F64)
    x0 = sample(model, SCHEDULE, x_T, 1000, eta=0.0, progress=False)[:, 0]
    assert abs(x0.mean().item() - mu) < 4 * s / math.sqrt(n)
    assert abs(x0.std().item() - s) < 4 * s / math.sqrt(2 * (n - 1))


def test_ddim_eta_0_recovers_mixture_weights():
    means, weights = torch.tensor([[-2.0], [0.0], [2.5]], dtype=F64), torch.tensor([0.5, 0.2, 0.3], dtype=F64)
    model = GaussianMixture(means, torch.tensor([0.3, 0.3, 0.3]), weights).eps_model(SCHEDULE)
    n = 4000
    x_T = torch.randn(n, 1, generator=torch.Generator().manual_seed(3), dtype=F64)
    x0 = sample(model, SCHEDULE, x_T, 1000, eta=0.0, progress=False)
    nearest = (x0 - means.T).abs().argmin(1)
    freq = torch.bincount(nearest, minlength=3).double() / n
    se = (weights * (1 - weights) / n).sqrt()
    assert ((freq - weights).abs() < 4 * se).all(), freq


def test_eight_gaussians_sampler_and_oracle_agree():
    model = eight_gaussians().eps_model(SCHEDULE)
    x0 = model.mixture.sample(2000, generator=torch.Generator().manual_seed(4))
    radius = x0.norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.02
    generated = sample(
        model,
        SCHEDULE,
        torch.randn(2000, 2, generator=torch.Generator().manual_seed(5), dtype=F64),
        100,
        progress=False,
    )
    assert ((generated.norm(dim=1) - 2.0).abs() < 0.5).float().mean() > 0.99
