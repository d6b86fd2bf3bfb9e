"""DDIM as Euler's method on the ODE of DDIM Eq. 14; encode/decode; slerp."""

import math

import pytest
import torch
from helpers import smooth_model

from ddimlib.ode import (
    decode,
    dpm_solver_2m,
    encode,
    euler_step,
    euler_step_sigma_squared,
    from_x_bar,
    observed_order,
    ode_sigma,
    slerp,
    to_x_bar,
)
from ddimlib.oracle import GaussianMixture, eight_gaussians
from ddimlib.sampling import ddim_step, sample
from ddimlib.schedules import linear_schedule, timesteps

SCHEDULE = linear_schedule()
F64 = torch.float64


def test_change_of_variables():
    alpha = SCHEDULE.alpha
    sigma = ode_sigma(alpha)
    assert sigma[0] == 0 and torch.allclose(1 / (sigma[1:] ** 2 + 1), alpha[1:], atol=1e-15)
    x = torch.randn(3, 2, dtype=F64)
    assert torch.allclose(from_x_bar(to_x_bar(x, alpha[500]), alpha[500]), x, atol=1e-15)


def test_one_ddim_step_at_eta_0_is_one_euler_step_of_eq_14():
    g = torch.Generator().manual_seed(0)
    alpha = SCHEDULE.alpha
    for _ in range(50):
        t = int(torch.randint(1, 1001, (), generator=g))
        t_prev = int(torch.randint(0, t, (), generator=g))
        x_t = torch.randn(4, 3, generator=g, dtype=F64) * 2
        eps = smooth_model(x_t, torch.full((4,), t))
        ddim = ddim_step(x_t, eps, alpha[t], alpha[t_prev], 0.0).x_prev
        x_bar_next, _ = euler_step(smooth_model, to_x_bar(x_t, alpha[t]), SCHEDULE, t, t_prev)
        assert (from_x_bar(x_bar_next, alpha[t_prev]) - ddim).abs().max() <= 1e-12, (t, t_prev)


def test_decode_is_sample_with_eta_0():
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    model = eight_gaussians().eps_model(SCHEDULE)
    for steps, kind in [(10, "linear"), (37, "quadratic"), (1000, "linear")]:
        via_ode = decode(model, SCHEDULE, x_T, steps, tau=kind)
        via_ddim = sample(model, SCHEDULE, x_T, steps, eta=0.0, tau=kind, progress=False)
        assert (via_ode - via_ddim).abs().max() <= 1e-12, steps


def test_encode_decode_with_the_oracle_converges():
    """Reconstruction error falls monotonically with S and is below 1e-4 per dimension at S = 1000."""
    model = eight_gaussians().eps_model(SCHEDULE)
    x0 = model.mixture.sample(1000, generator=torch.Generator().manual_seed(2))
    errors = []
    for steps in [10, 20, 50, 100, 200, 500, 1000]:
        x0_rec = decode(model, SCHEDULE, encode(model, SCHEDULE, x0, steps), steps)
        errors.append(((x0_rec - x0) ** 2).mean().item())
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-4, errors


def test_encoding_the_oracle_gives_gaussian_latents():
    """Data pushed through the ODE lands on q(x_T), which is N(0, I) up to sqrt(alpha_T) x0 ~ 0.006 x0."""
    model = eight_gaussians().eps_model(SCHEDULE)
    n = 4000
    x_T = encode(model, SCHEDULE, model.mixture.sample(n, generator=torch.Generator().manual_seed(3)), 200)
    assert (x_T.mean(0).abs() < 4 / math.sqrt(n)).all()
    assert ((x_T.std(0) - 1).abs() < 4 / math.sqrt(2 * n)).all()


def test_slerp_endpoints_norms_and_geometry():
    g = torch.Generator().manual_seed(4)
    d = 3072
    z0, z1 = torch.randn(64, d, generator=g, dtype=F64), torch.randn(64, d, generator=g, dtype=F64)
    assert torch.equal(slerp(z0, z1, 0.0), z0) and torch.equal(slerp(z0, z1, 1.0), z1)
    for lam in [0.1, 0.25, 0.5, 0.9]:
        z = slerp(z0, z1, lam)
        # independent N(0, I) vectors have norm sqrt(d) +- about 1/sqrt(2) (4 sd band below);
        # slerp keeps it there, while the linear midpoint shrinks it by about 1/sqrt(2)
        assert ((z.norm(dim=1) - math.sqrt(d)).abs() < 4 / math.sqrt(2) + 1).all(), lam
    mid_lerp = 0.5 * (z0 + z1)
    assert (mid_lerp.norm(dim=1) / math.sqrt(d) - 1 / math.sqrt(2)).abs().max() < 0.05
    # on unit vectors slerp moves along the great circle: angle lam * theta from z0, norm 1
    u0, u1 = z0 / z0.norm(dim=1, keepdim=True), z1 / z1.norm(dim=1, keepdim=True)
    theta = torch.arccos((u0 * u1).sum(1))
    u = slerp(u0, u1, 0.3)
    assert torch.allclose(u.norm(dim=1), torch.ones(64, dtype=F64), atol=1e-12)
    assert torch.allclose(torch.arccos((u0 * u).sum(1)), 0.3 * theta, atol=1e-9)
    # parallel inputs fall back to linear interpolation
    assert torch.allclose(slerp(z0, 2 * z0, 0.5), 1.5 * z0)


def test_encode_evaluates_the_model_at_t_1_then_at_each_steps_start():
    seen = []

    def recording_model(x_t, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x_t)

    encode(recording_model, SCHEDULE, torch.zeros(2, 3, dtype=F64), 4)
    assert seen == [1, 250, 500, 750]


def test_dpm_solver_2m_with_two_steps_is_ddim():
    """Its first step and its last step (to t = 0) are DDIM's eta = 0 step, so with S = 2 it is DDIM."""
    model = eight_gaussians().eps_model(SCHEDULE)
    x_T = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    assert (dpm_solver_2m(model, SCHEDULE, x_T, 2) - decode(model, SCHEDULE, x_T, 2)).abs().max() <= 1e-12


def test_observed_orders_one_for_ddim_and_two_for_dpm_solver_2m():
    """Error against a fine reference (DPM-Solver++(2M), S = 1000) on the oracle, over NFE = S in {25, 50, 100}."""
    model = GaussianMixture(
        torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=F64),
        torch.tensor([0.5, 0.5], dtype=F64),
        torch.tensor([0.5, 0.5], dtype=F64),
    ).eps_model(SCHEDULE)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    reference = dpm_solver_2m(model, SCHEDULE, x_T, 1000)
    steps = [25, 50, 100]
    error = lambda x0: (x0 - reference).norm(dim=1).mean().item()
    ddim_order = observed_order(steps, [error(decode(model, SCHEDULE, x_T, s)) for s in steps])
    dpm_order = observed_order(steps, [error(dpm_solver_2m(model, SCHEDULE, x_T, s)) for s in steps])
    assert 0.8 < ddim_order < 1.3, ddim_order
    assert 1.7 < dpm_order < 2.6, dpm_order


def test_observed_order_reads_the_exponent():
    assert abs(observed_order([10, 20, 40], [3 / 10**1.5, 3 / 20**1.5, 3 / 40**1.5]) - 1.5) < 1e-12


def test_euler_step_in_sigma_squared_is_eq_15():
    """Against DDIM Eq. 15 written in x (an independent closed form), and against Eq. 14's step: they differ by
    exactly (sigma' - sigma)^2 / (2 sigma) eps, second order in the step."""
    g = torch.Generator().manual_seed(7)
    alpha = SCHEDULE.alpha
    for _ in range(50):
        t = int(torch.randint(1, 1001, (), generator=g))
        t_next = int(torch.randint(0, t, (), generator=g))
        x_t = torch.randn(4, 3, generator=g, dtype=F64)
        eps = smooth_model(x_t, torch.full((4,), t))
        a, a_next = alpha[t], alpha[t_next]
        # x_bar(t_next)
        eq_15 = x_t / a.sqrt() + 0.5 * ((1 - a_next) / a_next - (1 - a) / a) * (a / (1 - a)).sqrt() * eps
        x_bar_next, eps_pred = euler_step_sigma_squared(smooth_model, to_x_bar(x_t, a), SCHEDULE, t, t_next)
        assert torch.allclose(eps_pred, eps, rtol=0, atol=1e-12) and (x_bar_next - eq_15).abs().max() <= 1e-12 * max(
            1.0, eq_15.abs().max()
        ), (t, t_next)
        sigma, sigma_next = ode_sigma(a), ode_sigma(a_next)
        in_sigma, _ = euler_step(smooth_model, to_x_bar(x_t, a), SCHEDULE, t, t_next)
        gap = (sigma_next - sigma) ** 2 / (2 * sigma) * eps
        assert (x_bar_next - in_sigma - gap).abs().max() <= 1e-9 * max(1.0, in_sigma.abs().max()), (t, t_next)


def test_euler_in_sigma_squared_converges_at_first_order_to_the_same_solution():
    """On a smooth mixture (stds 0.5), decoded with Eq. 15's steps, S in {50, 100, 200}: error ~ 1/S against the
    reference."""
    model = GaussianMixture(
        torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=F64),
        torch.tensor([0.5, 0.5], dtype=F64),
        torch.tensor([0.5, 0.5], dtype=F64),
    ).eps_model(SCHEDULE)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(8), dtype=F64)
    reference = dpm_solver_2m(model, SCHEDULE, x_T, 1000)

    def decode_in_sigma_squared(steps):  # Eq. 15's step, one at a time along the linear grid
        grid = [0] + timesteps(steps, SCHEDULE.T, "linear").tolist()
        x_bar = to_x_bar(x_T, SCHEDULE.alpha[SCHEDULE.T])
        for t, t_next in zip(grid[:0:-1], grid[-2::-1]):
            x_bar, _ = euler_step_sigma_squared(model, x_bar, SCHEDULE, t, t_next)
        return x_bar  # alpha_0 = 1

    for steps in (7, 50):
        by_decode = decode(model, SCHEDULE, x_T, steps, scheme="sigma_squared")
        assert (by_decode - decode_in_sigma_squared(steps)).abs().max() <= 1e-12, steps
    steps = [50, 100, 200]
    decoded = [decode(model, SCHEDULE, x_T, s, scheme="sigma_squared") for s in steps]
    errors = [(x0 - reference).norm(dim=1).mean().item() for x0 in decoded]
    assert 0.8 < observed_order(steps, errors) < 1.3, errors


@pytest.mark.parametrize(
    "t, t_next, message",
    [
        (0, 0, r"t must be an integer in \[1, 1000\], got 0"),
        (10, 1001, r"t_next must be an integer in \[0, 1000\], got 1001"),
        (10, 10, r"t_next must differ from t .* got t = t_next = 10"),
    ],
)
def test_euler_step_in_sigma_squared_refuses_bad_times(t, t_next, message):
    with pytest.raises(ValueError, match=message):
        euler_step_sigma_squared(smooth_model, torch.zeros(2, 3, dtype=F64), SCHEDULE, t, t_next)


def test_encoding_evaluates_its_first_step_at_t_1_because_that_reconstructs_better_at_small_S():
    # encode's docstring: the first step starts at t = 0, where the model was never trained; evaluating it at t = 1
    # rather
    # than at tau_1 reconstructs better at S = 10 (measured here on the exact eight-Gaussians oracle)
    from ddimlib.ode import euler_step, from_x_bar, to_x_bar
    from ddimlib.schedules import timesteps

    schedule = linear_schedule()
    oracle = eight_gaussians().eps_model(schedule)
    x0 = oracle.mixture.sample(2000, generator=torch.Generator().manual_seed(0))
    grid = [0] + timesteps(10, schedule.T).tolist()
    x_bar = to_x_bar(x0, schedule.alpha[0])
    for k, (t, t_next) in enumerate(zip(grid, grid[1:])):
        # first step at tau_1
        x_bar, _ = euler_step(oracle, x_bar, schedule, t, t_next, t_model=grid[1] if k == 0 else t)
    at_tau_1 = from_x_bar(x_bar, schedule.alpha[-1])
    mse = lambda latent: float(((decode(oracle, schedule, latent, 10) - x0) ** 2).mean())
    assert mse(encode(oracle, schedule, x0, 10)) < 0.5 * mse(at_tau_1)
