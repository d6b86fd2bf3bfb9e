"""J_sigma = L_gamma + C (DDIM Theorem 1) with the exact weight gamma_t, and L_simple."""

import math

import pytest
import torch

from ddimlib.forward import predict_x0, q_posterior_mean_std, q_sample, sample_forward_chain
from ddimlib.objective import gamma_weights, l_simple, log_p_theta, log_q_sigma, x0_coefficient
from ddimlib.oracle import eight_gaussians
from ddimlib.sampling import sigma_eta
from ddimlib.schedules import linear_schedule

F64 = torch.float64


def eta_sigma(schedule, eta, sigma_1=0.05):
    alpha = schedule.alpha
    sigma = torch.cat([torch.zeros(1, dtype=F64), sigma_eta(alpha[1:], alpha[:-1], eta)])
    sigma[1] = sigma_1  # the standard deviation of p_theta(x0 | x1), free in the paper
    return sigma


def test_per_step_kl_is_gamma_times_squared_eps_error():
    """KL(q_sigma(x_{t-1}|x_t,x0) || q_sigma(x_{t-1}|x_t,f_theta(x_t))) = gamma_t |eps_theta - eps|^2, pointwise."""
    schedule = linear_schedule()
    g = torch.Generator().manual_seed(0)
    for eta in [0.1, 0.5, 1.0]:
        sigma = eta_sigma(schedule, eta)
        gamma = gamma_weights(schedule, sigma)
        for t in [2, 5, 50, 500, 1000]:
            alpha_t, alpha_prev = schedule.alpha[t], schedule.alpha[t - 1]
            x0, eps, eps_theta = (torch.randn(8, 3, generator=g, dtype=F64) for _ in range(3))
            x_t = q_sample(x0, alpha_t, eps)
            mean_q, std = q_posterior_mean_std(x_t, x0, alpha_t, alpha_prev, sigma[t])
            mean_p, _ = q_posterior_mean_std(x_t, predict_x0(x_t, eps_theta, alpha_t), alpha_t, alpha_prev, sigma[t])
            kl = ((mean_q - mean_p) ** 2).sum(1) / (2 * std**2)  # KL of equal-covariance Gaussians
            assert torch.allclose(kl, gamma[t] * ((eps_theta - eps) ** 2).sum(1), rtol=1e-9), (eta, t)


def test_gamma_at_eta_1_is_ddpms_weight():
    """DDPM Eq. 12: beta_t^2 / (2 sigma_t^2 (1 - beta_t)(1 - alpha-bar_t)), in DDIM's alpha."""
    schedule = linear_schedule()
    sigma = eta_sigma(schedule, 1.0)
    alpha, beta = schedule.alpha, schedule.beta
    ddpm = beta**2 / (2 * sigma**2 * (1 - beta) * (1 - alpha))
    assert torch.allclose(gamma_weights(schedule, sigma)[2:], ddpm[2:], rtol=1e-8)


def test_x0_coefficient_never_vanishes_on_the_admissible_range():
    schedule = linear_schedule()
    alpha = schedule.alpha
    for t in [2, 10, 100, 999, 1000]:
        sigma2 = torch.linspace(0, 1, 1001, dtype=F64) * (1 - alpha[t - 1])
        coef = x0_coefficient(alpha[t], alpha[t - 1], sigma2.sqrt())
        assert coef.abs().min() > 0, t
        # and it is what Eq. 7's mean multiplies x0 by
        x_t = torch.randn(2, 1, dtype=F64)
        m0, _ = q_posterior_mean_std(x_t, torch.zeros_like(x_t), alpha[t], alpha[t - 1], sigma2[500].sqrt())
        m1, _ = q_posterior_mean_std(x_t, torch.ones_like(x_t), alpha[t], alpha[t - 1], sigma2[500].sqrt())
        assert torch.allclose(m1 - m0, coef[500].expand(2, 1), atol=1e-12)


def test_j_sigma_equals_l_gamma_plus_the_constant_by_monte_carlo():
    """J_sigma = E[log q_sigma - log p_theta] against L_gamma + C, C = KL(q(x_T|x0) || N(0,I)) + (d/2) log(2 pi
    sigma_1^2)."""
    schedule = linear_schedule(T=8, beta_start=0.02, beta_end=0.4)
    model = eight_gaussians().eps_model(schedule)
    n, d = 20000, 2
    x0 = model.mixture.sample(n, generator=torch.Generator().manual_seed(1))
    alpha = schedule.alpha
    for eta in [0.3, 1.0]:
        sigma = eta_sigma(schedule, eta)
        chain = sample_forward_chain(x0, schedule, sigma, torch.Generator().manual_seed(2))
        j_terms = log_q_sigma(chain, schedule, sigma) - log_p_theta(model, chain, schedule, sigma)
        gamma = gamma_weights(schedule, sigma)
        l_terms = torch.zeros(n, dtype=F64)
        for t in range(1, schedule.T + 1):
            eps_t = (chain[t] - alpha[t].sqrt() * x0) / (1 - alpha[t]).sqrt()
            eps_theta = model(chain[t], torch.full((n,), t))
            l_terms += gamma[t] * ((eps_theta - eps_t) ** 2).sum(1)
        a_T = alpha[-1]
        kl_prior = 0.5 * (a_T * (x0**2).sum(1) + d * (1 - a_T) - d - d * torch.log(1 - a_T))
        c_terms = kl_prior + 0.5 * d * torch.log(2 * math.pi * sigma[1] ** 2)
        diff = j_terms - l_terms - c_terms
        se = diff.std() / math.sqrt(n)
        assert diff.mean().abs() < 4 * se, (eta, diff.mean().item(), se.item())


def test_l_simple_is_the_unweighted_eps_regression():
    schedule = linear_schedule()
    model = eight_gaussians().eps_model(schedule)
    x0 = model.mixture.sample(512, generator=torch.Generator().manual_seed(3))
    loss = l_simple(model, x0, schedule, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    t = torch.randint(1, 1001, (512,), generator=g)
    noise = torch.randn(512, 2, generator=g, dtype=F64)
    manual = ((model(q_sample(x0, schedule.alpha[t], noise), t) - noise) ** 2).mean()
    assert torch.allclose(loss, manual, atol=1e-14)
    zero = l_simple(lambda x, t: torch.zeros_like(x), x0, schedule, torch.Generator().manual_seed(4))
    assert loss < 0.6 * zero  # the exact E[eps | x_t] beats predicting 0 (whose loss is E|eps|^2 / d = 1)


def test_x0_coefficient_at_the_top_of_the_range_is_finite_and_refuses_an_inadmissible_sigma():
    alpha = linear_schedule().alpha
    top = (1 - alpha[99]).sqrt() * (1 + 1e-15)  # sigma_t^2 = 1 - alpha_{t-1}, plus a rounding's worth
    assert torch.isfinite(x0_coefficient(alpha[100], alpha[99], top))
    # no direction term left
    assert torch.allclose(x0_coefficient(alpha[100], alpha[99], top), alpha[99].sqrt(), atol=1e-6)
    with pytest.raises(ValueError, match="sigma_t must satisfy"):
        x0_coefficient(alpha[100], alpha[99], 1.1 * (1 - alpha[99]).sqrt())


def test_per_step_losses_are_l_simple_at_each_step_of_the_chains_and_average_to_d_for_a_model_that_predicts_zero():
    """Row t - 1 is |eps_theta(x_t, t) - eps_t|^2 with eps_t the noise x_t carries: summed over the dimensions, what
    l_simple_given returns per element for the same x0, t and noise. For eps_theta = 0 it is |eps_t|^2, whose mean
    is D = 2 at every t, since eps_t ~ N(0, I) under any q_sigma (its marginals are DDPM's)."""
    from ddimlib.objective import l_simple_given, per_step_losses
    from ddimlib.sampling import sigma_table

    schedule = linear_schedule(20, beta_start=0.02, beta_end=0.5)
    mixture = eight_gaussians()
    x0 = mixture.sample(4000, generator=torch.Generator().manual_seed(0))
    chain = sample_forward_chain(x0, schedule, sigma_table(schedule, 0.5), torch.Generator().manual_seed(1))
    oracle = mixture.eps_model(schedule)
    losses = per_step_losses(oracle, chain, schedule)
    assert losses.shape == (20, 4000)
    for t in (1, 7, 20):
        eps_t = (chain[t] - schedule.alpha[t].sqrt() * x0) / (1 - schedule.alpha[t]).sqrt()
        per_element = l_simple_given(oracle, x0, schedule.alpha, torch.full((4000,), t), eps_t)
        assert torch.allclose(losses[t - 1].mean() / 2, per_element, rtol=1e-10)
    zero = per_step_losses(lambda x_t, t: torch.zeros_like(x_t), chain, schedule)
    se = zero.std(1) / 4000**0.5
    assert ((zero.mean(1) - 2).abs() < 4.5 * se).all()
    assert (losses.mean(1) < zero.mean(1)).all()  # the exact E[eps | x_t] beats predicting 0 at every step
    with pytest.raises(ValueError, match="chain must have shape"):
        per_step_losses(oracle, chain[1:], schedule)


def test_per_step_losses_run_on_the_meta_device_and_name_a_non_finite_output():
    """They run on meta (a stand-in for a GPU: no tensors of two devices meet), and a NaN is still named, after the
    loop (test_devices counts the read-backs)."""
    from ddimlib.objective import per_step_losses

    schedule = linear_schedule(5)
    chain = torch.zeros(6, 3, 2, device="meta")
    assert per_step_losses(lambda x_t, t: x_t * 2, chain, schedule).shape == (5, 3)
    with pytest.raises(ValueError, match="in per_step_losses"):
        per_step_losses(lambda x_t, t: x_t / 0 * 0, torch.zeros(6, 3, 2), schedule)
