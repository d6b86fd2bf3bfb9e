"""Checks for notebook 04's exercises: one DDIM step (Eq. 12), the whole sampler on a subsequence tau
(Section 4.2), and a predict-then-measure on the sampler's discretisation error.

Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502. The wrong variants
below are the typical mistakes the hints explain; the right answers are `ddimlib.sampling.ddim_step` and
`ddimlib.sampling.sample`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ddimlib.exercises import NOT_ATTEMPTED, Feedback, attempt, check, compare
from ddimlib.ode import observed_order
from ddimlib.sampling import ddim_step, sample, sigma_eta
from ddimlib.schedules import Schedule, linear_schedule

# (t, t_prev, eta) of the steps the step check tries: early, middle and last, deterministic and not
STEP_CASES = [(1000, 900, 0.0), (500, 450, 0.5), (100, 50, 1.0), (20, 0, 1.0)]


def _step_inputs(case, seed: int = 0):
    t, t_prev, eta = case
    alpha = linear_schedule(1000).alpha
    alpha_t, alpha_prev = float(alpha[t]), float(alpha[t_prev])
    g = torch.Generator().manual_seed(seed + t)
    x_t, eps_pred, noise = (torch.randn(6, 2, generator=g, dtype=torch.float64) for _ in range(3))
    return x_t, eps_pred, alpha_t, alpha_prev, sigma_eta(alpha_t, alpha_prev, eta), noise


@check
def check_ddim_step(answer: Callable) -> Feedback:
    """answer(x_t, eps_pred, alpha_t, alpha_prev, sigma_t, noise) -> x_prev, Eq. 12 with the random-noise term."""
    results = []
    for case in STEP_CASES:
        x_t, eps, a_t, a_prev, sigma, noise = _step_inputs(case)
        got = attempt(answer, x_t.clone(), eps.clone(), a_t, a_prev, sigma, noise.clone())
        if got is None:
            return NOT_ATTEMPTED
        x0_pred = (x_t - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        mistakes = [
            (
                a_prev**0.5 * x0_pred + (1 - a_prev) ** 0.5 * eps + sigma * noise,
                "the coefficient of the direction pointing to x_t is sqrt(1 - alpha_{t-1} - sigma_t^2), not sqrt(1 - "
                "alpha_{t-1}): "
                "the random noise takes sigma_t^2 of x_{t-1}'s variance 1 - alpha_{t-1}, the direction gets the rest.",
            ),
            (
                ddim_step(x_t, eps, a_t, a_prev, sigma).x_prev,
                "the random-noise term sigma_t * noise is missing (it vanishes only where sigma_t = 0, at eta = 0).",
            ),
            (
                a_prev**0.5 * (x_t - (1 - a_t) ** 0.5 * eps) / a_t
                + (1 - a_prev - sigma**2) ** 0.5 * eps
                + sigma * noise,
                "the predicted x0 divides by sqrt(alpha_t), not alpha_t: invert "
                "x_t = sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps.",
            ),
            (
                a_prev * x0_pred + (1 - a_prev - sigma**2) ** 0.5 * eps + sigma * noise,
                "the predicted x0 enters x_{t-1} scaled by sqrt(alpha_{t-1}), the marginal's mean coefficient, not "
                "alpha_{t-1}.",
            ),
        ]
        results.append(
            compare(
                f"x_prev at t = {case[0]} -> {case[1]}, eta = {case[2]:g}",
                got,
                ddim_step(x_t, eps, a_t, a_prev, sigma, noise).x_prev,
                mistakes,
                rtol=1e-9,
                atol=1e-12,
            )
        )
        if not results[-1].passed:
            return results[-1]
    return Feedback(
        True, f"✓ ddim_step: correct at {len(results)} steps (t = 1000 -> 900 down to 20 -> 0; eta = 0, 0.5, 1)."
    )


def _ddim_loop(eps_model, alpha, x_T, eta, generator, steps) -> torch.Tensor:
    """DDIM through steps, a list of (t, t_prev, the t the model is called with), drawing noise as the check asks
    (on every step with sigma > 0 but the last)."""
    x = x_T
    for k, (t, t_prev, t_model) in enumerate(steps):
        eps = eps_model(x, torch.full((len(x),), t_model, dtype=torch.int64))
        a_t, a_prev = alpha[t].to(x.dtype), alpha[t_prev].to(x.dtype)
        sigma = sigma_eta(a_t, a_prev, eta)
        adds_noise = float(sigma) > 0 and k < len(steps) - 1
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) if adds_noise else None
        x = ddim_step(x, eps, a_t, a_prev, sigma, noise).x_prev
    return x


# The typical mistakes, each a small function with the learner's arguments.


def _model_at_step_index(eps_model, alpha, tau, x_T, eta, generator):
    tau_full = [0] + list(tau)
    steps = [(tau_full[i], tau_full[i - 1], i) for i in range(len(tau), 0, -1)]
    return _ddim_loop(eps_model, alpha, x_T, eta, generator, steps)


def _previous_alpha_of_the_full_chain(eps_model, alpha, tau, x_T, eta, generator):
    steps = [(t, t - 1, t) for t in reversed(tau)]
    return _ddim_loop(eps_model, alpha, x_T, eta, generator, steps)


SAMPLER_MISTAKES = [
    (
        _model_at_step_index,
        "the model takes the paper's timestep t = tau_i (e.g. 1000, 900, ...), not the step's index i (10, 9, ...).",
    ),
    (
        _previous_alpha_of_the_full_chain,
        "on a subsequence the step goes from tau_i to tau_{i-1}: the previous alpha is alpha[tau_{i-1}], not "
        "alpha[tau_i - 1] (the full chain's neighbour). Skipping steps is legal because q_sigma can be defined on tau "
        "(Appendix C.1).",
    ),
]


@check
@torch.no_grad()
def check_sampler(
    answer: Callable,
    eps_model: Callable,
    schedule: Schedule,
    x_T: torch.Tensor,
    taus: Sequence[str] = ("linear", "quadratic"),
    steps: int = 10,
    etas: Sequence[float] = (0.0, 0.5),
) -> Feedback:
    """answer(eps_model, alpha, tau, x_T, eta, generator) -> x_0: DDIM on the subsequence tau (a list tau_1 < ... <
    tau_S = T),
    drawing each step's noise as torch.randn(x.shape, generator=generator, dtype=x.dtype) in step order, and only on
    the
    steps that add noise (sigma > 0 and not the last step, to t = 0). Compared with `ddimlib.sampling.sample` in
    float64
    (a module is copied to float64), to 1e-8: in float32 the same arithmetic in another order drifts by ~1e-5 over ten
    steps of a UNet, more than any tolerance that would still catch a small mistake."""
    import copy

    from ddimlib.schedules import timesteps

    if isinstance(eps_model, torch.nn.Module):
        eps_model = copy.deepcopy(eps_model).double()
    x_T = x_T.double()
    checked = 0
    for kind in taus:
        tau = timesteps(steps, schedule.T, kind).tolist()
        for eta in etas:
            got = attempt(answer, eps_model, schedule.alpha, tau, x_T.clone(), eta, torch.Generator().manual_seed(1))
            if got is None:
                return NOT_ATTEMPTED
            expected = sample(
                eps_model,
                schedule,
                x_T,
                None,
                eta=eta,
                tau=tau,
                generator=torch.Generator().manual_seed(1),
                progress=False,
            )
            mistakes = [
                (mistake(eps_model, schedule.alpha, tau, x_T, eta, torch.Generator().manual_seed(1)), hint)
                for mistake, hint in SAMPLER_MISTAKES
            ]
            feedback = compare(
                f"x_0 on a {kind} tau, S = {steps}, eta = {eta:g}", got, expected, mistakes, rtol=1e-8, atol=1e-8
            )
            if not feedback.passed:
                return feedback
            checked += 1
    return Feedback(
        True,
        f"✓ your sampler agrees with ddimlib.sampling.sample in {checked} runs ({', '.join(taus)} tau; "
        f"eta = {', '.join(f'{e:g}' for e in etas)}) to 1e-8 in float64.",
    )


# a prediction's typical mistakes: (the exponent it predicts, why it is not this one)
EXPONENT_MISTAKES = (
    (
        0.5,
        "1/sqrt(S) is the Monte Carlo rate of an average of S random draws; this error is deterministic "
        "discretisation error.",
    ),
    (
        2.0,
        "a second-order method would give p = 2; Eq. 12 at eta = 0 is one Euler step in the variables of notebook 05.",
    ),
    (0.0, "the error does shrink with S: the table above shows it at each S."),
)


@check
def check_error_exponent(guess, steps: Sequence[int], errors: Sequence[float]) -> Feedback:
    """guess: the predicted p in error ~ C / S^p for the eta = 0 sampler's distance to its own many-step limit; the
    measured p is fitted to (steps, errors) by `ddimlib.ode.observed_order`. Right within 0.3; a guess within 0.3 of
    one of EXPONENT_MISTAKES gets its hint."""
    guess = attempt(guess)
    if guess is None:
        return NOT_ATTEMPTED
    measured = observed_order(steps, errors)
    return compare(
        f"predicted p = {float(guess):g}, measured {measured:.2f}",
        float(guess),
        torch.tensor(measured),
        EXPONENT_MISTAKES,
        rtol=0,
        atol=0.3,
        mistake_atol=0.3,
        success="DDIM at eta = 0 is Euler's method for an ODE (notebook 05), a first-order scheme: halving the step "
        "halves the error.",
        otherwise="fit the slope of log(error) against log(S) from the table above, and think which numerical method "
        "Eq. 12 is.",
    )
