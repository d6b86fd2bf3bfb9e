"""Schedules (alpha_t = DDIM's cumulative alpha) and timestep subsequences tau (DDIM Appendix D.2)."""

import numpy as np
import pytest
import torch

from ddimlib.schedules import Schedule, cosine_schedule, linear_schedule, resolve_tau, schedule_from_betas, timesteps

SCHEDULES = [linear_schedule(), linear_schedule(T=10), cosine_schedule(1000), cosine_schedule(50)]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["linear1000", "linear10", "cosine1000", "cosine50"])
def test_schedule_shape_start_and_monotone(schedule):
    alpha = schedule.alpha
    assert alpha.dtype == torch.float64 and alpha.shape == (schedule.T + 1,)
    assert alpha[0].item() == 1.0
    assert (alpha[1:] < alpha[:-1]).all()
    assert alpha[-1] > 0


def test_linear_schedule_matches_ddpm_closed_form():
    """alpha_t = prod_{s<=t} (1 - beta_s), computed independently in numpy; DDPM's known alpha-bar_T."""
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)
    expected = np.concatenate([[1.0], np.cumprod(1 - betas)])
    alpha = linear_schedule().alpha.numpy()
    np.testing.assert_allclose(alpha, expected, rtol=1e-13, atol=0)
    assert abs(alpha[-1] - 4.0358e-05) < 1e-8  # DDPM's alphas_cumprod[-1] for this schedule
    np.testing.assert_allclose(linear_schedule().beta[1:].numpy(), betas, rtol=1e-9)


def test_cosine_schedule_matches_its_definition():
    T, s = 1000, 0.008
    f = lambda t: np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2
    alpha = cosine_schedule(T).alpha.numpy()
    t = np.arange(1, 600)  # before beta reaches its clip of 0.999
    np.testing.assert_allclose(alpha[t], f(t) / f(0), rtol=1e-12)


@pytest.mark.parametrize("kind", ["linear", "quadratic"])
@pytest.mark.parametrize("steps", [1, 2, 7, 10, 50, 999, 1000])
def test_timesteps_end_at_T_and_strictly_increase(steps, kind):
    tau = timesteps(steps, 1000, kind)
    assert tau.dtype == torch.int64 and tau.shape == (steps,)
    assert tau[-1].item() == 1000 and tau[0].item() >= 1
    assert (tau[1:] > tau[:-1]).all()


def test_timesteps_follow_appendix_d2():
    # linear: floor(c i) with c = T / S
    assert timesteps(10, 1000, "linear").tolist() == list(range(100, 1001, 100))
    assert timesteps(3, 10, "linear").tolist() == [3, 6, 10]
    # quadratic: floor(c i^2) with c = T / S^2, exact where S^2 <= T
    assert timesteps(10, 1000, "quadratic").tolist() == [10 * i * i for i in range(1, 11)]
    assert timesteps(7, 100, "quadratic").tolist() == [int(100 * i * i / 49) for i in range(1, 8)]
    # S = T gives every step for both kinds
    assert timesteps(1000, 1000, "quadratic").tolist() == list(range(1, 1001))
    assert timesteps(1000, 1000, "linear").tolist() == list(range(1, 1001))


def test_quadratic_timesteps_never_repeat_for_any_valid_steps():
    T = 200
    for steps in range(1, T + 1):
        tau = timesteps(steps, T, "quadratic")
        assert (tau[1:] > tau[:-1]).all() and tau[-1] == T, steps


def test_explicit_tau_is_accepted_as_given():
    tau = resolve_tau([5, 17, 400, 1000], None, 1000)
    assert tau.tolist() == [5, 17, 400, 1000] and tau.dtype == torch.int64
    assert resolve_tau(torch.tensor([3, 10]), 2, 10).tolist() == [3, 10]
    assert resolve_tau("quadratic", 10, 1000).tolist() == timesteps(10, 1000, "quadratic").tolist()


def test_schedule_from_betas_and_beta_roundtrip():
    betas = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    schedule = schedule_from_betas(betas)
    assert torch.allclose(schedule.alpha, torch.tensor([1.0, 0.9, 0.72, 0.504], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(schedule.beta[1:], betas, atol=1e-15) and schedule.beta[0] == 0
    assert isinstance(schedule, Schedule) and schedule.T == 3
