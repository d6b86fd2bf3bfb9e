"""ddimlib.exercises.forward (notebook 01): each check passes a right answer, says "not attempted" for a blank one,
and gives the typical mistake's hint for a wrong one."""

import torch
from helpers import assert_each_mistake_gets_its_hint, blank

from ddimlib.exercises import forward as ex


def posterior(
    x_t,
    x0,
    alpha_t,
    alpha_prev,
    sigma_t,
    direction=lambda a_p, s: (1 - a_p - s**2) ** 0.5,
    x0_scale=lambda a: a**0.5,
    std=lambda s: s,
):
    """Eq. 7 written out (with switches for the typical mistakes)."""
    eps = (x_t - x0_scale(alpha_t) * x0) / (1 - alpha_t) ** 0.5
    return alpha_prev**0.5 * x0 + direction(alpha_prev, sigma_t) * eps, std(sigma_t)


def sigma_ddpm(alpha_t, alpha_prev):
    """Eq. 16 at eta = 1: DDPM's beta-tilde_t = beta_t (1 - alpha_{t-1}) / (1 - alpha_t), beta_t = 1 - alpha_t /
    alpha_{t-1}."""
    return ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)) ** 0.5


def test_the_posterior_check():
    assert ex.check_posterior(posterior).passed
    tensor_std = ex.check_posterior(lambda x_t, x0, *a: (posterior(x_t, x0, *a)[0], torch.full_like(x_t, a[2])))
    assert tensor_std.passed, tensor_std  # a std the shape of the mean is right too
    assert not ex.check_posterior(blank).attempted and "Not attempted" in repr(ex.check_posterior(blank))
    wrong = {
        "not sqrt(1 - alpha_{t-1})": lambda *a: posterior(*a, direction=lambda a_p, s: (1 - a_p) ** 0.5),
        "not alpha_t x0": lambda *a: posterior(*a, x0_scale=lambda a: a),
        "you returned sigma_t^2, the variance": lambda *a: posterior(*a, std=lambda s: s**2),
        "return a pair (mean, std)": lambda *a: posterior(*a)[0],
    }
    assert_each_mistake_gets_its_hint(ex.check_posterior, wrong)
    other = ex.check_posterior(lambda *a: (posterior(*a)[0] * 1.01, a[-1]))
    assert not other.passed and "off by up to" in other.message, other


def test_the_sigma_check():
    feedback = ex.check_sigma_ddpm(sigma_ddpm)
    assert feedback.passed and "free of x0" in feedback.message, feedback
    assert not ex.check_sigma_ddpm(blank).attempted
    wrong = {
        "the larger choice the paper calls sigma-hat": lambda a_t, a_p: (1 - a_t / a_p) ** 0.5,
        "reading alpha_t as DDPM's alpha_t = 1 - beta_t": lambda a_t, a_p: ((1 - a_p) / (1 - a_t) * (1 - a_t)) ** 0.5,
        "that is sigma_t^2, the variance": lambda a_t, a_p: sigma_ddpm(a_t, a_p) ** 2,
    }
    assert_each_mistake_gets_its_hint(ex.check_sigma_ddpm, wrong)
    other = ex.check_sigma_ddpm(lambda a_t, a_p: 0.5 * sigma_ddpm(a_t, a_p))
    assert not other.passed and "The largest difference is at t =" in other.message, other


def test_the_correlation_prediction_check():
    from ddimlib.schedules import linear_schedule

    alpha = linear_schedule(1000).alpha
    snr = alpha / (1 - alpha)
    rho = float((snr[200] / snr[100]).sqrt())  # eta = 1: sqrt of the ratio of signal-to-noise ratios
    assert abs(rho - ex.correlation_on_tau(1.0)) < 1e-12 and ex.correlation_on_tau(0.0) == 1.0
    assert ex.check_correlation_on_tau(rho).passed and ex.check_correlation_on_tau(round(rho, 3)).passed
    assert not ex.check_correlation_on_tau(None).attempted
    adjacent = float((snr[200] / snr[199]).sqrt())
    wrong = {"1 is the eta = 0 answer": 1.0, "adjacent steps t - 1 = 199": adjacent, "that is rho^2": rho**2}
    assert_each_mistake_gets_its_hint(ex.check_correlation_on_tau, wrong)
    assert "off by" in ex.check_correlation_on_tau(rho + 0.05).message
