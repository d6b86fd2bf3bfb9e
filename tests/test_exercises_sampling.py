"""ddimlib.exercises.sampling: each check passes a right answer, says "not attempted" for a blank one, and
gives the typical mistake's hint for a wrong one."""

import torch
from helpers import assert_each_mistake_gets_its_hint, blank

from ddimlib.exercises import sampling as ex
from ddimlib.oracle import eight_gaussians
from ddimlib.sampling import sigma_eta
from ddimlib.schedules import linear_schedule

SCHEDULE = linear_schedule(1000)
ORACLE = eight_gaussians().eps_model(SCHEDULE)
X_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))  # float32, as a learner's x_T would be


def step(x_t, eps_pred, alpha_t, alpha_prev, sigma_t, noise, direction_sigma=True, with_noise=True, x0_divisor=None):
    x0_pred = (x_t - (1 - alpha_t) ** 0.5 * eps_pred) / (x0_divisor(alpha_t) if x0_divisor else alpha_t**0.5)
    direction = (1 - alpha_prev - (sigma_t**2 if direction_sigma else 0)) ** 0.5 * eps_pred
    return alpha_prev**0.5 * x0_pred + direction + (sigma_t * noise if with_noise else 0)


def my_sample(eps_model, alpha, tau, x_T, eta, generator, t_of=lambda i, t: t):
    tau = [0] + list(tau)
    x = x_T
    for i in range(len(tau) - 1, 0, -1):
        a_t, a_prev = float(alpha[tau[i]]), float(alpha[tau[i - 1]])
        eps = eps_model(x, torch.full((len(x),), t_of(i, tau[i])))
        sigma = float(sigma_eta(a_t, a_prev, eta))
        noise = (
            torch.randn(x.shape, generator=generator, dtype=x.dtype)
            if sigma > 0 and tau[i - 1] > 0
            else torch.zeros_like(x)
        )
        x = step(x, eps, a_t, a_prev, sigma, noise)
    return x


def test_the_step_check():
    assert ex.check_ddim_step(step).passed
    assert not ex.check_ddim_step(blank).attempted and "Not attempted" in repr(ex.check_ddim_step(blank))
    wrong = {
        "not sqrt(1 - alpha_{t-1})": lambda *a: step(*a, direction_sigma=False),
        "random-noise term sigma_t * noise is missing": lambda *a: step(*a, with_noise=False),
        "divides by sqrt(alpha_t), not alpha_t": lambda *a: step(*a, x0_divisor=lambda a_t: a_t),
    }
    assert_each_mistake_gets_its_hint(ex.check_ddim_step, wrong)


def test_the_sampler_check():
    assert ex.check_sampler(my_sample, ORACLE, SCHEDULE, X_T).passed
    assert not ex.check_sampler(blank, ORACLE, SCHEDULE, X_T).attempted
    index = ex.check_sampler(lambda *a: my_sample(*a, t_of=lambda i, t: i), ORACLE, SCHEDULE, X_T)
    assert not index.passed and "not the step's index" in index.message, index

    def full_chain_neighbour(eps_model, alpha, tau, x_T, eta, generator):
        x = x_T  # alpha[t_prev] read as alpha[t - 1], as on the full chain
        for i in range(len(tau) - 1, -1, -1):
            t = tau[i]
            a_t, a_prev = float(alpha[t]), float(alpha[t - 1])
            eps = eps_model(x, torch.full((len(x),), t))
            sigma = float(sigma_eta(a_t, a_prev, eta))
            noise = (
                torch.randn(x.shape, generator=generator, dtype=x.dtype)
                if sigma > 0 and i > 0
                else torch.zeros_like(x)
            )
            x = step(x, eps, a_t, a_prev, sigma, noise)
        return x

    neighbour = ex.check_sampler(full_chain_neighbour, ORACLE, SCHEDULE, X_T)
    assert not neighbour.passed and "not alpha[tau_i - 1]" in neighbour.message, neighbour
    nudged = ex.check_sampler(lambda *a: my_sample(*a) + 1e-3, ORACLE, SCHEDULE, X_T)
    assert not nudged.passed and "off by up to 0.001" in nudged.message, nudged


def test_the_error_exponent_check():
    steps, errors = [10, 20, 50, 100], [0.094, 0.051, 0.020, 0.010]  # notebook 04's measured discretisation errors
    assert ex.check_error_exponent(1, steps, errors).passed
    assert not ex.check_error_exponent(None, steps, errors).attempted
    assert "Monte Carlo rate" in ex.check_error_exponent(0.5, steps, errors).message
    assert "second-order" in ex.check_error_exponent(2, steps, errors).message
    assert not ex.check_error_exponent(2, steps, errors).passed
