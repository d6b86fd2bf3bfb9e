"""ddimlib.exercises.ode: each check passes a right answer, says "not attempted" for a blank one, and gives
the typical mistake's hint for a wrong one."""

import torch
from helpers import assert_each_mistake_gets_its_hint, blank

from ddimlib.exercises import ode as ex
from ddimlib.ode import decode, encode, ode_sigma
from ddimlib.oracle import eight_gaussians
from ddimlib.schedules import linear_schedule


def eps_at(eps_model, x, t):
    return eps_model(x, torch.full((len(x),), t, dtype=torch.int64))


def euler(
    eps_model, x_bar, schedule, t, t_next, time=ode_sigma, convert=True, model_time=None, flip=1.0, return_x=False
):
    """The Euler step of Eq. 14 written out (the right answer with the defaults), or one of its typical mistakes."""
    alpha, alpha_next = schedule.alpha[t], schedule.alpha[t_next]
    x = alpha.sqrt() * x_bar if convert else x_bar
    x_bar_next = x_bar + flip * (time(alpha_next) - time(alpha)) * eps_at(
        eps_model, x, t if model_time is None else model_time(t, t_next)
    )
    return alpha_next.sqrt() * x_bar_next if return_x else x_bar_next


def euler_sigma_squared(eps_model, x_bar, schedule, t, t_next, half=0.5, convert=True, variance=lambda a: (1 - a) / a):
    """The Euler step in sigma^2 of Eq. 15 written out (right with the defaults), or a typical mistake."""
    alpha, alpha_next = schedule.alpha[t], schedule.alpha[t_next]
    x = alpha.sqrt() * x_bar if convert else x_bar
    return x_bar + half * (variance(alpha_next) - variance(alpha)) / variance(alpha).sqrt() * eps_at(eps_model, x, t)


def test_the_euler_step_check():
    assert ex.check_euler_step(euler).passed
    assert ex.check_euler_step(lambda *a: (euler(*a), None)).passed  # the library's (x_bar_next, eps) form is fine too
    assert not ex.check_euler_step(blank).attempted and "Not attempted" in repr(ex.check_euler_step(blank))
    wrong = {
        "the step is taken in alpha": lambda *a: euler(*a, time=lambda alpha: alpha),
        "the model was called on x_bar": lambda *a: euler(*a, convert=False),
        "sqrt(1 - alpha) is the noise scale of x_t": lambda *a: euler(*a, time=lambda alpha: (1 - alpha).sqrt()),
        "evaluates the slope at the start of the step": lambda *a: euler(*a, model_time=lambda t, t_next: t_next),
        "the sign of the step is reversed": lambda *a: euler(*a, flip=-1.0),
        "you returned x(t_next)": lambda *a: euler(*a, return_x=True),
    }
    assert_each_mistake_gets_its_hint(ex.check_euler_step, wrong)
    other = ex.check_euler_step(lambda *a: 1.01 * euler(*a))
    assert not other.passed and "off by up to" in other.message


def reconstruction_error(S, squared=False, decode_steps=None):
    schedule = linear_schedule(1000)
    oracle = eight_gaussians().eps_model(schedule)
    # other data than the check's: p agrees within 0.15
    x0 = oracle.mixture.sample(500, generator=torch.Generator().manual_seed(11))
    x0_rec = decode(oracle, schedule, encode(oracle, schedule, x0, S), decode_steps or S)
    return ((x0_rec - x0) ** 2).mean().item() if squared else (x0_rec - x0).norm(dim=1).mean().item()


def test_the_reconstruction_exponent_check():
    steps, errors, order = ex.reconstruction_reference()
    assert 0.8 < order < 1.2 and all(b < a for a, b in zip(errors, errors[1:])), (errors, order)
    right = ex.check_reconstruction_exponent(1, reconstruction_error)
    assert right.passed and "first order" in right.message, right
    assert not ex.check_reconstruction_exponent(None, reconstruction_error).attempted
    assert not ex.check_reconstruction_exponent(blank, reconstruction_error).attempted
    unmeasured = ex.check_reconstruction_exponent(1, blank)
    assert not unmeasured.attempted and "Not measured yet" in unmeasured.message
    squared = ex.check_reconstruction_exponent(1, lambda S: reconstruction_error(S, squared=True))
    assert not squared.passed and "squared error" in squared.message, squared
    fixed_decoder = ex.check_reconstruction_exponent(1, lambda S: reconstruction_error(S, decode_steps=20))
    assert not fixed_decoder.passed and "same S" in fixed_decoder.message, fixed_decoder
    for guess, hint in [
        (2, "Table 2's MSE"),
        (0.5, "Monte Carlo rate"),
        (0, "does shrink"),
        (3, "which order is Euler's"),
    ]:
        feedback = ex.check_reconstruction_exponent(guess, reconstruction_error)
        assert not feedback.passed and hint in feedback.message, (guess, feedback)


def test_the_sigma_squared_step_check():
    assert ex.check_euler_step_sigma_squared(euler_sigma_squared).passed
    assert not ex.check_euler_step_sigma_squared(blank).attempted
    wrong = {
        "that is Euler in sigma, DDIM's step": euler,
        "the factor 1/2 is missing": lambda *a: euler_sigma_squared(*a, half=1.0),
        "the model was called on x_bar": lambda *a: euler_sigma_squared(*a, convert=False),
        "1 - alpha is the noise variance of x_t": lambda *a: euler_sigma_squared(*a, variance=lambda alpha: 1 - alpha),
    }
    assert_each_mistake_gets_its_hint(ex.check_euler_step_sigma_squared, wrong)
