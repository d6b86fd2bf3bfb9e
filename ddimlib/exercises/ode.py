"""Checks for notebook 05's exercises: one Euler step of DDIM's ODE in (sigma, x_bar) (Eq. 14), a
predict-then-measure on how the reconstruction error of encode/decode scales with S, and one Euler step in
sigma^2 (Eq. 15, the probability-flow ODE of Proposition 1).

Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Section 4.3 and
Section 5.4. The right answers are `ddimlib.ode.euler_step`, `ddimlib.ode.encode` / `decode` and
`ddimlib.ode.euler_step_sigma_squared`; the wrong variants below are the typical mistakes the hints explain.
All checks run on the exact denoiser of the eight-Gaussians data (`ddimlib.oracle.eight_gaussians`), in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import torch

from ddimlib.exercises import NOT_ATTEMPTED, Feedback, attempt, check, compare
from ddimlib.ode import decode, encode, euler_step, euler_step_sigma_squared, observed_order, ode_sigma, to_x_bar
from ddimlib.oracle import eight_gaussians
from ddimlib.schedules import linear_schedule

# (t, t_next) of the steps the step checks try: a middle decoding step (first: there every typical mistake is told
# apart, within the loose tolerance of `compare`), the last (to t = 0), an encoding step, the first decoding step
STEP_CASES = [(600, 400), (50, 0), (200, 400), (1000, 900)]
# S at which the reconstruction exponent is measured (first order shows from 50 on)
RECONSTRUCTION_STEPS = (
    50,
    100,
    200,
    400,
)
RECONSTRUCTION_SAMPLES = 500


@lru_cache(maxsize=1)
def _setting():
    schedule = linear_schedule(1000)
    return schedule, eight_gaussians().eps_model(schedule)


def _step_inputs(case, seed: int = 0):
    """The oracle, the schedule and x_bar(t) for a step case: x(t) drawn around the data, x_bar = x / sqrt(alpha_t)."""
    schedule, oracle = _setting()
    t, _ = case
    g = torch.Generator().manual_seed(seed + t)
    x = torch.randn(8, 2, generator=g, dtype=torch.float64) * 1.5
    return oracle, schedule, to_x_bar(x, schedule.alpha[t])


def _eps(oracle, x, t: int) -> torch.Tensor:
    return oracle(x, torch.full((len(x),), t, dtype=torch.int64))


def _first(result):
    """A learner's step may return x_bar_next alone or, like the library, (x_bar_next, eps_pred)."""
    return result[0] if isinstance(result, (tuple, list)) else result


def _check_each_step(answer: Callable, reference: Callable, success: str) -> Feedback:
    """answer(eps_model, x_bar, schedule, t, t_next) at every step of STEP_CASES against reference(oracle, schedule,
    x_bar, t, t_next) -> (the right x_bar(t_next), [(a typical mistake's value, its hint)]), to 1e-9 relative."""
    for case in STEP_CASES:
        oracle, schedule, x_bar = _step_inputs(case)
        got = attempt(answer, oracle, x_bar.clone(), schedule, *case)
        if got is None:
            return NOT_ATTEMPTED
        expected, mistakes = reference(oracle, schedule, x_bar, *case)
        feedback = compare(
            f"x_bar(t_next) for the step t = {case[0]} -> {case[1]}",
            _first(got),
            expected,
            mistakes,
            rtol=1e-9,
            atol=1e-12,
        )
        if not feedback.passed:
            return feedback
    return Feedback(True, success)


@check
def check_euler_step(answer: Callable) -> Feedback:
    """answer(eps_model, x_bar, schedule, t, t_next) -> x_bar(t_next), one Euler step of Eq. 14:
    x_bar(t_next) = x_bar(t) + (sigma(t_next) - sigma(t)) eps_theta(x(t), t), x(t) = sqrt(alpha_t) x_bar(t).
    Compared with `ddimlib.ode.euler_step` to 1e-9 (relative) at four steps, decoding and encoding."""

    def reference(oracle, schedule, x_bar, t, t_next):
        a, a_next = schedule.alpha[t], schedule.alpha[t_next]
        sigma, sigma_next = ode_sigma(a), ode_sigma(a_next)
        x = a.sqrt() * x_bar
        expected, eps = euler_step(oracle, x_bar, schedule, t, t_next)
        mistakes = [
            (
                x_bar + (a_next - a) * eps,
                "the step is taken in alpha; Eq. 14's time variable is sigma = sqrt((1 - alpha) / alpha), which runs "
                "from 0 at t = 0 "
                "to about 157 at t = T, so the step is sigma(t_next) - sigma(t).",
            ),
            (
                x_bar + (sigma_next - sigma) * _eps(oracle, x_bar, t),
                "the model was called on x_bar; it was trained on x_t, so convert first: x(t) = sqrt(alpha_t) "
                "x_bar(t) "
                "= x_bar / sqrt(sigma^2 + 1), then eps_model(x, t).",
            ),
            (
                x_bar + ((1 - a_next).sqrt() - (1 - a).sqrt()) * eps,
                "sqrt(1 - alpha) is the noise scale of x_t; x_bar = x / sqrt(alpha) carries noise sigma = sqrt((1 - "
                "alpha) / alpha), "
                "and that sigma is the ODE's time.",
            ),
            (
                x_bar + (sigma_next - sigma) * _eps(oracle, x, t_next),
                "Euler's method evaluates the slope at the start of the step: the model at (x(t), t), not at t_next.",
            ),
            (
                x_bar + (sigma - sigma_next) * eps,
                "the sign of the step is reversed: d x_bar = eps d sigma, so the step is (sigma(t_next) - sigma(t)) "
                "eps, "
                "negative when decoding (sigma falls), positive when encoding.",
            ),
            (
                a_next.sqrt() * expected,
                "you returned x(t_next); the step's result is x_bar(t_next) (divide by sqrt(alpha_{t_next}) to stay "
                "in the ODE's variables).",
            ),
        ]
        return expected, mistakes

    return _check_each_step(
        answer,
        reference,
        f"✓ your Euler step agrees with ddimlib.ode.euler_step at {len(STEP_CASES)} steps "
        "(t = 600 -> 400, 50 -> 0, 200 -> 400 (an encoding step) and 1000 -> 900).",
    )


@lru_cache(maxsize=1)
def reconstruction_reference() -> tuple[tuple[int, ...], tuple[float, ...], float]:
    """The library's measurement: mean |decode(encode(x0, S), S) - x0| over 500 draws of the eight-Gaussians data
    (seed 7), at S in RECONSTRUCTION_STEPS, and its observed order. Returns (steps, errors, order)."""
    schedule, oracle = _setting()
    x0 = oracle.mixture.sample(RECONSTRUCTION_SAMPLES, generator=torch.Generator().manual_seed(7))
    errors = tuple(
        float((decode(oracle, schedule, encode(oracle, schedule, x0, S), S) - x0).norm(dim=1).mean())
        for S in RECONSTRUCTION_STEPS
    )
    return RECONSTRUCTION_STEPS, errors, observed_order(RECONSTRUCTION_STEPS, errors)


# a measurement's typical mistakes, recognised by the exponent they give
MEASUREMENT_MISTAKES = {
    "squared": "you measured a squared error (an MSE, as the paper's Table 2 reports): squaring doubles the exponent. "
    "Measure the distance itself, e.g. (x0_rec - x0).norm(dim=1).mean().",
    "fixed": "your error hardly changes with S: encode and decode with the same S (and the same tau), and compare "
    "with the x0 you encoded.",
}
# a prediction's typical mistakes: (the exponent it predicts, why it is not this one)
RECONSTRUCTION_MISTAKES = (
    (
        2.0,
        "p = 2 holds for the squared error (Table 2's MSE), or for a second-order solver; the distance itself, after "
        "Euler steps, falls as 1 / S^p with p = Euler's order.",
    ),
    (
        0.5,
        "1 / sqrt(S) is the Monte Carlo rate of averaging S random draws; here nothing is random: the error is "
        "discretisation error.",
    ),
    (0.0, "the error does shrink with S: look at your own measurement."),
)


@check
def check_reconstruction_exponent(predicted, measure: Callable | None) -> Feedback:
    """predicted: your p in reconstruction error ~ C / S^p, written before measuring. measure(S) -> the mean distance
    |decode(encode(x0, S), S) - x0| over the oracle's data, your measurement. The check fits p to your measurement at
    S in RECONSTRUCTION_STEPS (`ddimlib.ode.observed_order`), checks it against the library's own measurement (within
    0.15), then your prediction against it (within 0.25)."""
    predicted = attempt(predicted)
    if predicted is None:
        return NOT_ATTEMPTED
    steps, reference_errors, reference = reconstruction_reference()
    errors = [attempt(measure, S) for S in steps] if measure is not None else [None]
    if any(e is None for e in errors):
        return Feedback(
            False,
            f"Prediction noted (p = {float(predicted):g}). Not measured yet: write my_reconstruction_error(S), "
            "run it, then run this check again.",
            attempted=False,
        )
    errors = [float(e) for e in errors]
    if min(errors) <= 0:
        return Feedback(
            False,
            f"✗ your errors {', '.join(f'{e:.3g}' for e in errors)} include zero or a negative value: "
            "measure a distance, e.g. (x0_rec - x0).norm(dim=1).mean().",
        )
    measured = observed_order(steps, errors)
    table = ", ".join(f"S={S}: {e:.2e}" for S, e in zip(steps, errors))
    measurement = compare(
        f"your measurement ({table}) gives p = {measured:.2f}; the library's gives {reference:.2f}",
        measured,
        torch.tensor(reference),
        [(2 * reference, MEASUREMENT_MISTAKES["squared"]), (0.0, MEASUREMENT_MISTAKES["fixed"])],
        rtol=0,
        atol=0.15,
        mistake_atol=0.3,
        otherwise="encode x0 with S steps, decode the latent with the same S steps, and average the distance to x0 "
        "over the data.",
    )
    if not measurement.passed:
        return measurement
    return compare(
        f"predicted p = {float(predicted):g}, measured {measured:.2f} ({table})",
        float(predicted),
        torch.tensor(measured),
        RECONSTRUCTION_MISTAKES,
        rtol=0,
        atol=0.25,
        mistake_atol=0.25,
        success="Euler's method is first order: each leg (encoding, then decoding) makes an error ~ C / S, so their "
        "sum does too. The paper's Table 2 reports the squared error, which falls as 1 / S^2.",
        otherwise="Euler's global error after S steps of size h ~ 1 / S is of order h^p for a method of order p; "
        "which order is Euler's?",
    )


@check
def check_euler_step_sigma_squared(answer: Callable) -> Feedback:
    """answer(eps_model, x_bar, schedule, t, t_next) -> x_bar(t_next), one Euler step in sigma^2 (DDIM Eq. 15):
    x_bar(t_next) = x_bar(t) + (sigma(t_next)^2 - sigma(t)^2) / (2 sigma(t)) eps_theta(x(t), t).
    Compared with `ddimlib.ode.euler_step_sigma_squared` to 1e-9 (relative) at four steps."""

    def reference(oracle, schedule, x_bar, t, t_next):
        a, a_next = schedule.alpha[t], schedule.alpha[t_next]
        sigma, sigma_next = ode_sigma(a), ode_sigma(a_next)
        expected, eps = euler_step_sigma_squared(oracle, x_bar, schedule, t, t_next)
        mistakes = [
            (
                euler_step(oracle, x_bar, schedule, t, t_next)[0],
                "that is Euler in sigma, DDIM's step (Eq. 14). Eq. 15 steps in sigma^2: write the ODE as "
                "d x_bar = eps / (2 sigma) d(sigma^2) and multiply the slope at the start by the change in sigma^2.",
            ),
            (
                x_bar + (sigma_next**2 - sigma**2) / sigma * eps,
                "the factor 1/2 is missing: d(sigma^2) = 2 sigma d sigma, so d x_bar / d(sigma^2) = eps / (2 sigma).",
            ),
            (
                x_bar + (sigma_next**2 - sigma**2) / (2 * sigma) * _eps(oracle, x_bar, t),
                "the model was called on x_bar; convert first: x(t) = sqrt(alpha_t) x_bar(t), then eps_model(x, t).",
            ),
            (
                x_bar + (a - a_next) / (2 * (1 - a).sqrt()) * eps,
                "1 - alpha is the noise variance of x_t; x_bar = x / sqrt(alpha) has noise variance sigma^2 = (1 - "
                "alpha) / alpha, "
                "and that sigma^2 is Eq. 15's time variable.",
            ),
        ]
        return expected, mistakes

    return _check_each_step(
        answer,
        reference,
        f"✓ your Euler step in sigma^2 agrees with ddimlib.ode.euler_step_sigma_squared at "
        f"{len(STEP_CASES)} steps. Note its last step, to sigma = 0: it moves x_bar by "
        "-sigma(t)/2 * eps, half of DDIM's -sigma(t) * eps.",
    )
