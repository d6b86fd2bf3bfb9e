"""The non-Markovian forward process q_sigma (DDIM Section 3.1), checked against closed forms in float64."""

import math

import pytest
import torch

from ddimlib.forward import (
    predict_eps,
    predict_x0,
    q_forward_mean_std,
    q_posterior_mean_std,
    q_sample,
    sample_forward_chain,
)
from ddimlib.sampling import sigma_eta
from ddimlib.schedules import linear_schedule

SCHEDULE = linear_schedule()
F64 = torch.float64


def gaussian_logpdf(x, mean, std):
    """log N(x; mean, std^2 I), summed over the last dimension; written out here, independently."""
    return (-0.5 * ((x - mean) / std) ** 2 - torch.log(std * math.sqrt(2 * math.pi))).sum(-1)


def random_case(generator):
    """A random t in 2..T, its alphas, and a random admissible sigma_t in [0, sqrt(1 - alpha_{t-1})]."""
    t = int(torch.randint(2, SCHEDULE.T + 1, (), generator=generator))
    alpha_t, alpha_prev = SCHEDULE.alpha[t], SCHEDULE.alpha[t - 1]
    sigma_t = torch.rand((), generator=generator, dtype=F64) * (1 - alpha_prev).sqrt()
    return t, alpha_t, alpha_prev, sigma_t


def test_q_sample_and_its_inverses_roundtrip():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(5, 3, generator=g, dtype=F64), torch.randn(5, 3, generator=g, dtype=F64)
    alpha_t = torch.rand(5, generator=g, dtype=F64) * 0.98 + 0.01  # per-sample alpha_t, (B,)
    x_t = q_sample(x0, alpha_t, noise)
    expected = alpha_t[:, None].sqrt() * x0 + (1 - alpha_t[:, None]).sqrt() * noise
    assert torch.allclose(x_t, expected, atol=1e-15)
    assert torch.allclose(predict_x0(x_t, noise, alpha_t), x0, atol=1e-12)
    assert torch.allclose(predict_eps(x_t, x0, alpha_t), noise, atol=1e-12)


def test_lemma1_induction_step_preserves_the_marginal():
    """x_t ~ N(sqrt(a_t) x0, 1 - a_t) pushed through q_sigma(x_{t-1} | x_t, x0) is N(sqrt(a_{t-1}) x0, 1 - a_{t-1}).

    The posterior mean is affine in x_t, mean = A x_t + b; we read A and b off the kernel and apply
    Gaussian marginalisation (Bishop 2.115): mean A sqrt(a_t) x0 + b, variance A^2 (1 - a_t) + sigma_t^2.
    """
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        t, alpha_t, alpha_prev, sigma_t = random_case(g)
        x0 = torch.randn(1, 4, generator=g, dtype=F64)
        b, _ = q_posterior_mean_std(torch.zeros_like(x0), x0, alpha_t, alpha_prev, sigma_t)
        one, std = q_posterior_mean_std(torch.ones_like(x0), x0, alpha_t, alpha_prev, sigma_t)
        A = one - b
        marginal_mean = A * alpha_t.sqrt() * x0 + b
        marginal_var = A**2 * (1 - alpha_t) + std**2
        assert torch.allclose(marginal_mean, alpha_prev.sqrt() * x0, atol=1e-12, rtol=0), t
        assert torch.allclose(marginal_var, (1 - alpha_prev).expand_as(marginal_var), atol=1e-12, rtol=0), t


def test_bayes_forward_is_bayes_rule_pointwise():
    """log q(x_t | x_{t-1}, x0) = log q(x_{t-1} | x_t, x0) + log q(x_t | x0) - log q(x_{t-1} | x0) at random points."""
    g = torch.Generator().manual_seed(2)
    for _ in range(100):
        t, alpha_t, alpha_prev, sigma_t = random_case(g)
        sigma_t = sigma_t.clamp(min=1e-3)  # a density needs sigma_t > 0
        x0, x_t, x_prev = (torch.randn(8, 3, generator=g, dtype=F64) for _ in range(3))
        post_mean, post_std = q_posterior_mean_std(x_t, x0, alpha_t, alpha_prev, sigma_t)
        fwd_mean, fwd_std = q_forward_mean_std(x_prev, x0, alpha_t, alpha_prev, sigma_t)
        lhs = gaussian_logpdf(x_t, fwd_mean, fwd_std)
        rhs = (
            gaussian_logpdf(x_prev, post_mean, post_std)
            + gaussian_logpdf(x_t, alpha_t.sqrt() * x0, (1 - alpha_t).sqrt())
            - gaussian_logpdf(x_prev, alpha_prev.sqrt() * x0, (1 - alpha_prev).sqrt())
        )
        assert torch.allclose(lhs, rhs, atol=1e-8, rtol=1e-10), t


def test_bayes_forward_at_eta_1_is_ddpm_markov_chain():
    g = torch.Generator().manual_seed(3)
    for t in [2, 3, 10, 500, 1000]:
        alpha_t, alpha_prev = SCHEDULE.alpha[t], SCHEDULE.alpha[t - 1]
        sigma_t = sigma_eta(alpha_t, alpha_prev, 1.0)
        x_prev = torch.randn(6, 2, generator=g, dtype=F64)
        means = [
            q_forward_mean_std(x_prev, torch.randn(6, 2, generator=g, dtype=F64), alpha_t, alpha_prev, sigma_t)
            for _ in range(3)
        ]
        for mean, std in means:
            assert torch.allclose(mean, (alpha_t / alpha_prev).sqrt() * x_prev, atol=1e-12), t  # free of x0
            assert torch.allclose(std, (1 - alpha_t / alpha_prev).sqrt(), atol=1e-12), t


def test_bayes_forward_below_eta_1_depends_on_x0_and_is_deterministic_at_eta_0():
    """The mean's coefficient of x0 is sqrt(a_t) - sqrt(a_{t-1}) k_t with k_t the gain on x_{t-1}: zero only at eta =
    1."""
    g = torch.Generator().manual_seed(4)
    x_prev, x0 = torch.randn(6, 2, generator=g, dtype=F64), torch.randn(6, 2, generator=g, dtype=F64)
    for t in [2, 300, 1000]:
        alpha_t, alpha_prev = SCHEDULE.alpha[t], SCHEDULE.alpha[t - 1]
        for eta in [0.0, 0.5, 1.0]:
            sigma_t = sigma_eta(alpha_t, alpha_prev, eta)
            mean, std = q_forward_mean_std(x_prev, x0, alpha_t, alpha_prev, sigma_t)
            shifted, _ = q_forward_mean_std(x_prev, x0 + 1, alpha_t, alpha_prev, sigma_t)
            gain = ((1 - alpha_t) * (1 - alpha_prev - sigma_t**2)).sqrt() / (1 - alpha_prev)
            x0_coef = alpha_t.sqrt() - alpha_prev.sqrt() * gain
            assert torch.allclose(shifted - mean, x0_coef.expand_as(mean), atol=1e-12), (t, eta)
            if eta < 1:
                assert x0_coef.abs() > 1e-8, (t, eta)  # far above rounding: q_sigma(x_t | x_{t-1}, x0) depends on x0
            else:
                assert x0_coef.abs() < 1e-12, t
            if eta == 0.0:
                assert float(std) == 0.0  # x_t is a function of x_{t-1} and x0


def test_bayes_forward_at_t_1_is_the_marginal():
    x0, x_prev = torch.randn(4, 2, dtype=F64), torch.randn(4, 2, dtype=F64)
    alpha_1 = SCHEDULE.alpha[1]
    mean, std = q_forward_mean_std(x_prev, x0, alpha_1, SCHEDULE.alpha[0], 0.0)
    assert torch.allclose(mean, alpha_1.sqrt() * x0) and torch.allclose(std, (1 - alpha_1).sqrt())


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_forward_chain_has_the_marginals_by_monte_carlo(eta):
    """Every x_t of a sampled chain has mean sqrt(a_t) x0 and variance 1 - a_t within 4 standard errors."""
    schedule = linear_schedule(T=40, beta_start=1e-3, beta_end=0.2)
    alpha = schedule.alpha
    sigma = torch.cat([torch.zeros(1, dtype=F64), sigma_eta(alpha[1:], alpha[:-1], eta)])
    n = 20000
    x0 = torch.tensor([[1.5, -0.5]], dtype=F64).expand(n, 2)
    chain = sample_forward_chain(x0, schedule, sigma, generator=torch.Generator().manual_seed(5))
    assert torch.equal(chain[0], x0)
    mean, var = chain[1:].mean(1), chain[1:].var(1)  # (T, 2)
    true_mean = alpha[1:, None].sqrt() * x0[0]
    true_var = (1 - alpha[1:, None]).expand_as(var)
    se_mean = (true_var / n).sqrt()
    se_var = true_var * math.sqrt(2 / (n - 1))
    assert ((mean - true_mean).abs() < 4 * se_mean).all()
    assert ((var - true_var).abs() < 4 * se_var).all()


def test_a_python_float_coefficient_keeps_float64_precision():
    # a float coefficient used to become a float32 tensor before the cast to x's dtype: errors of ~1e-8 in float64
    x0 = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    alpha_t = 0.123456789012345
    exact = math.sqrt(alpha_t) * x0 + math.sqrt(1 - alpha_t) * noise
    assert (q_sample(x0, alpha_t, noise) - exact).abs().max() < 1e-15
