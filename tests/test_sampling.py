"""Samplers (DDIM Eq. 12, Eq. 16, sigma-hat) and DDPM's own, checked against each other and closed forms."""

import pytest
import torch
from helpers import smooth_model

from ddimlib.oracle import eight_gaussians
from ddimlib.sampling import ddim_step, ddpm_sample, sample, sigma_eta, sigma_hat, sigma_table
from ddimlib.schedules import linear_schedule, timesteps

SCHEDULE = linear_schedule()
F64 = torch.float64


def test_sigma_eta_1_is_ddpm_posterior_std():
    alpha = SCHEDULE.alpha
    beta = 1 - alpha[1:] / alpha[:-1]
    beta_tilde = beta * (1 - alpha[:-1]) / (1 - alpha[1:])  # DDPM Eq. 7
    assert torch.allclose(sigma_eta(alpha[1:], alpha[:-1], 1.0), beta_tilde.sqrt(), atol=1e-15, rtol=1e-12)
    assert torch.equal(sigma_eta(alpha[1:], alpha[:-1], 0.0), torch.zeros(SCHEDULE.T, dtype=F64))
    assert torch.allclose(sigma_hat(alpha[1:], alpha[:-1]), beta.sqrt(), atol=1e-15)


def test_sigma_table_is_eq_16_indexed_by_t():
    """(T+1,), sigma[0] = sigma[1] = 0; for t >= 2, eta times DDPM's posterior std sqrt(beta-tilde_t)."""
    alpha = SCHEDULE.alpha
    beta = 1 - alpha[1:] / alpha[:-1]  # beta_t for t = 1..T
    beta_tilde = beta[1:] * (1 - alpha[1:-1]) / (1 - alpha[2:])  # t = 2..T
    table = sigma_table(SCHEDULE, 0.4)
    assert table.shape == (SCHEDULE.T + 1,) and table.dtype == F64 and table[0] == table[1] == 0
    assert torch.allclose(table[2:], 0.4 * beta_tilde.sqrt(), atol=1e-15, rtol=1e-12)
    assert torch.equal(
        sigma_table(SCHEDULE, 0.4, sigma_1=0.05)[1:], torch.cat([torch.tensor([0.05], dtype=F64), table[2:]])
    )
    with pytest.raises(ValueError, match="eta"):
        sigma_table(SCHEDULE, 1.5)
    with pytest.raises(ValueError, match="sigma_1"):
        sigma_table(SCHEDULE, 0.5, sigma_1=-0.1)


def test_ddim_step_is_eq_12_term_by_term():
    g = torch.Generator().manual_seed(0)
    x_t, eps, noise = (torch.randn(3, 4, generator=g, dtype=F64) for _ in range(3))
    alpha_t, alpha_prev = SCHEDULE.alpha[600], SCHEDULE.alpha[400]
    sigma_t = 0.3 * sigma_eta(alpha_t, alpha_prev, 1.0)
    out = ddim_step(x_t, eps, alpha_t, alpha_prev, sigma_t, noise)
    x0_pred = (x_t - (1 - alpha_t).sqrt() * eps) / alpha_t.sqrt()
    expected = alpha_prev.sqrt() * x0_pred + (1 - alpha_prev - sigma_t**2).sqrt() * eps + sigma_t * noise
    assert torch.allclose(out.x0_pred, x0_pred, atol=1e-13) and torch.allclose(out.x_prev, expected, atol=1e-13)


def test_eq_12_cannot_take_sigma_hat_where_alpha_t_below_alpha_prev_squared():
    """sqrt(1 - alpha_prev - sigma_hat^2) is imaginary when alpha_t < alpha_prev^2; the step refuses it."""
    alpha_t, alpha_prev = SCHEDULE.alpha[900], SCHEDULE.alpha[100]
    assert alpha_t < alpha_prev**2
    x = torch.zeros(1, 2, dtype=F64)
    with pytest.raises(ValueError, match="sigma_t"):
        ddim_step(x, x, alpha_t, alpha_prev, sigma_hat(alpha_t, alpha_prev), x)


def test_ddim_eta_1_on_the_full_chain_is_ddpm_step_for_step():
    model = eight_gaussians().eps_model(SCHEDULE)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    _, ddim = sample(
        model,
        SCHEDULE,
        x_T,
        SCHEDULE.T,
        eta=1.0,
        generator=torch.Generator().manual_seed(2),
        progress=False,
        return_trajectory=True,
    )
    _, ddpm = ddpm_sample(
        model, SCHEDULE, x_T, generator=torch.Generator().manual_seed(2), progress=False, return_trajectory=True
    )
    assert torch.equal(ddim.tau, ddpm.tau)
    assert (ddim.x - ddpm.x).abs().max() <= 1e-10
    assert (ddim.x0_pred - ddpm.x0_pred).abs().max() <= 1e-10


def test_sigma_hat_sampler_is_eta_1_mean_plus_sigma_hat_noise():
    x_T = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    tau = [200, 1000]
    out, path = sample(
        smooth_model,
        SCHEDULE,
        x_T,
        None,
        tau=tau,
        variance="hat",
        eta=0.0,
        generator=torch.Generator().manual_seed(4),
        progress=False,
        return_trajectory=True,
    )
    g = torch.Generator().manual_seed(4)
    alpha = SCHEDULE.alpha
    t_batch = torch.full((5,), 1000, dtype=torch.int64)
    mean = ddim_step(
        x_T, smooth_model(x_T, t_batch), alpha[1000], alpha[200], sigma_eta(alpha[1000], alpha[200], 1.0)
    ).x_prev
    x_200 = mean + sigma_hat(alpha[1000], alpha[200]) * torch.randn(5, 3, generator=g, dtype=F64)
    assert torch.allclose(path.x[1], x_200, atol=1e-13)
    last = ddim_step(x_200, smooth_model(x_200, torch.full((5,), 200)), alpha[200], alpha[0], 0.0).x_prev
    assert torch.allclose(out, last, atol=1e-13)  # no noise on the last step


def test_eta_0_is_deterministic_and_noise_enters_only_for_eta_above_0():
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    a = sample(smooth_model, SCHEDULE, x_T, 10, eta=0.0, generator=torch.Generator().manual_seed(6), progress=False)
    b = sample(smooth_model, SCHEDULE, x_T, 10, eta=0.0, generator=torch.Generator().manual_seed(7), progress=False)
    c = sample(smooth_model, SCHEDULE, x_T, 10, eta=0.5, generator=torch.Generator().manual_seed(6), progress=False)
    d = sample(smooth_model, SCHEDULE, x_T, 10, eta=0.5, generator=torch.Generator().manual_seed(7), progress=False)
    assert torch.equal(a, b) and not torch.allclose(c, d)


def test_trajectory_layout_and_the_model_sees_paper_timesteps():
    seen = []

    def recording_model(x_t, t):
        assert t.dtype == torch.int64 and t.shape == (x_t.shape[0],)
        seen.append(int(t[0]))
        return torch.zeros_like(x_t)

    x_T = torch.randn(2, 1, 4, 4, dtype=torch.float32)
    out, path = sample(recording_model, SCHEDULE, x_T, 5, tau="quadratic", progress=False, return_trajectory=True)
    tau = timesteps(5, 1000, "quadratic").tolist()
    assert seen == tau[::-1]
    assert path.tau.tolist() == [0] + tau
    assert path.x.shape == (6, 2, 1, 4, 4) and torch.equal(path.x[-1], x_T) and torch.equal(path.x[0], out)
    assert out.dtype == torch.float32


def test_samplers_follow_input_dtype():
    model = eight_gaussians().eps_model(SCHEDULE)
    x_T = torch.randn(8, 2, dtype=torch.float32)
    assert sample(model, SCHEDULE, x_T, 10, eta=0.5, progress=False).dtype == torch.float32
    assert ddpm_sample(model, SCHEDULE, x_T, progress=False).dtype == torch.float32


def test_sample_at_any_eta_on_a_quadratic_tau_is_a_loop_of_ddim_step():
    """eta = 0.5 on the quadratic tau, float64: the sampler's floats from `host_floats` against Eq. 12 as ddim_step
    writes it, step for step from the same x_T and the same noise (drawn in step order, none on the last step)."""
    model = eight_gaussians().eps_model(SCHEDULE)
    x_T = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    out, path = sample(
        model,
        SCHEDULE,
        x_T,
        20,
        eta=0.5,
        tau="quadratic",
        generator=torch.Generator().manual_seed(6),
        progress=False,
        return_trajectory=True,
    )
    tau = path.tau.tolist()
    g, x = torch.Generator().manual_seed(6), x_T
    for i in range(len(tau) - 1, 0, -1):
        alpha_t, alpha_prev = SCHEDULE.alpha[tau[i]], SCHEDULE.alpha[tau[i - 1]]
        eps = model(x, torch.full((32,), tau[i]))
        noise = torch.randn(x.shape, generator=g, dtype=F64) if tau[i - 1] > 0 else None
        x = ddim_step(x, eps, alpha_t, alpha_prev, sigma_eta(alpha_t, alpha_prev, 0.5), noise).x_prev
        assert (path.x[i - 1] - x).abs().max() <= 1e-12
    assert tau[1:] == timesteps(20, SCHEDULE.T, "quadratic").tolist() != timesteps(20, SCHEDULE.T, "linear").tolist()
    assert (out - x).abs().max() <= 1e-12


def test_sample_sets_draws_each_set_from_its_own_seeded_x_T_with_ddim_at_eta_0():
    from ddimlib.sampling import sample_sets

    schedule = linear_schedule(100)
    oracle = eight_gaussians().eps_model(schedule)
    sets = sample_sets(oracle, schedule, 3, 5, 10, (2,), seed=7, progress=False)
    assert sets.shape == (3, 5, 2) and sets.device.type == "cpu"
    x_T = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(7))
    for k in range(3):  # set k is DDIM (eta = 0, S = 10) of the k-th block of the seeded x_T
        assert torch.equal(sets[k], sample(oracle, schedule, x_T[k], 10, eta=0.0, progress=False))
    assert not torch.equal(sets[0], sets[1])
    assert torch.equal(sample_sets(oracle, schedule, 3, 5, 10, (2,), seed=7, progress=False), sets)
