"""Checks for notebook 01's exercises: the posterior q_sigma(x_{t-1} | x_t, x0) (Eq. 7), the sigma that makes
q_sigma DDPM's (eta = 1 in Eq. 16), and a predict-then-measure on the correlation of consecutive states of the
process on a subsequence tau (Appendix C.1).

Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502. The wrong variants
below are the typical mistakes the hints explain; the right answers are `ddimlib.forward.q_posterior_mean_std`
and `ddimlib.sampling.sigma_eta(alpha_t, alpha_prev, 1.0)`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddimlib.exercises import NOT_ATTEMPTED, Feedback, attempt, check, compare, numbers_from
from ddimlib.forward import q_posterior_mean_std
from ddimlib.sampling import sigma_eta
from ddimlib.schedules import linear_schedule, timesteps

F64 = torch.float64
# (t, t_prev, eta) of the cases the posterior check tries: adjacent steps of the full chain and two steps of a
# subsequence tau; eta = 1 and "near top" (sigma_t = 0.99 sqrt(1 - alpha_{t-1}), near the top of the admissible range:
# at the top itself a right answer's 1 - alpha_{t-1} - sigma_t^2 can round to -1e-17, whose square root is not real).
# The first case sets every typical mistake far apart from the right answer (sqrt(alpha_t) = 0.28 against alpha_t =
# 0.079,
# sigma_t^2 a large part of 1 - alpha_{t-1}), since `compare` recognises a mistake to within 1e-3 of its value.
POSTERIOR_CASES = [
    (500, 400, 1.0),
    (2, 1, 0.5),
    (10, 9, 1.0),
    (100, 99, 0.0),
    (500, 499, "near top"),
    (1000, 999, 0.5),
    (200, 10, 0.3),
]
# (t, t_prev) of the sigma check: adjacent steps, and steps of the quadratic S = 10 subsequence
SIGMA_PAIRS = [(2, 1), (10, 9), (100, 99), (500, 499), (1000, 999)]
# the predict-then-measure: eta = 1 on the linear S = 10 subsequence, the step tau_i = 200 -> tau_{i-1} = 100
TAU_STEPS, TAU_T, TAU_PREV = 10, 200, 100


def _sigma(alpha_t: float, alpha_prev: float, eta) -> float:
    return 0.99 * (1 - alpha_prev) ** 0.5 if eta == "near top" else float(sigma_eta(alpha_t, alpha_prev, eta))


@check
def check_posterior(answer: Callable) -> Feedback:
    """answer(x_t, x0, alpha_t, alpha_prev, sigma_t) -> (mean, std) of q_sigma(x_{t-1} | x_t, x0), DDIM Eq. 7.

    x_t, x0: (4, 2) float64 tensors; alpha_t, alpha_prev, sigma_t: Python floats. std may be a float or a tensor.
    """
    alpha = linear_schedule(1000).alpha
    for number, (t, t_prev, eta) in enumerate(POSTERIOR_CASES):
        a_t, a_prev = float(alpha[t]), float(alpha[t_prev])
        sigma = _sigma(a_t, a_prev, eta)
        g = torch.Generator().manual_seed(number)
        x_t, x0 = (torch.randn(4, 2, generator=g, dtype=F64) for _ in range(2))
        got = attempt(answer, x_t.clone(), x0.clone(), a_t, a_prev, sigma)
        if got is None:
            return NOT_ATTEMPTED
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return Feedback(False, f"✗ your function returned {type(got).__name__}; return a pair (mean, std).")
        # the kernel gets 0-d float64 tensors: ddimlib.forward.expand_to turns a Python float into a float32 tensor
        # first, which would cost the expected value its last 8 digits
        mean, std = q_posterior_mean_std(x_t, x0, *(torch.tensor(v, dtype=F64) for v in (a_t, a_prev, sigma)))
        case = f"t = {t} -> {t_prev}, sigma_t = {sigma:.4g}"
        mean_mistakes = [
            (
                a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * (x_t - a_t**0.5 * x0) / (1 - a_t) ** 0.5,
                "the direction term's coefficient is sqrt(1 - alpha_{t-1} - sigma_t^2), not sqrt(1 - alpha_{t-1}): "
                "x_{t-1} has variance "
                "1 - alpha_{t-1} around sqrt(alpha_{t-1}) x0, and the random noise already takes sigma_t^2 of it "
                "(Lemma 1 needs "
                "A^2 (1 - alpha_t) + sigma_t^2 = 1 - alpha_{t-1}). The two agree only at sigma_t = 0.",
            ),
            (
                a_prev**0.5 * x0 + (1 - a_prev - sigma**2) ** 0.5 * (x_t - a_t * x0) / (1 - a_t) ** 0.5,
                "the direction term is the noise that took x0 to x_t, (x_t - sqrt(alpha_t) x0) / sqrt(1 - alpha_t): "
                "the mean of x_t "
                "given x0 is sqrt(alpha_t) x0 (Eq. 4), not alpha_t x0.",
            ),
        ]
        feedback = compare(f"the mean at {case}", got[0], mean, mean_mistakes, rtol=1e-9, atol=1e-12)
        if not feedback.passed:
            return feedback
        std_mistakes = [
            (sigma**2, "you returned sigma_t^2, the variance; the function returns the standard deviation sigma_t.")
        ]
        feedback = compare(f"the std at {case}", got[1], std.expand_as(mean), std_mistakes, rtol=1e-9, atol=1e-12)
        if not feedback.passed:
            return feedback
    return Feedback(
        True,
        f"✓ mean and std of q_sigma(x_t-1 | x_t, x0): correct in {len(POSTERIOR_CASES)} cases (t = 2 to 1000, "
        "steps of 1 and skips of a subsequence, sigma_t from 0 to near the top of its range).",
    )


def _sigma_pairs() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """alpha_t, alpha_prev for SIGMA_PAIRS and the steps of the quadratic S = 10 tau, (K,) each, with labels."""
    alpha = linear_schedule(1000).alpha
    tau = [0] + timesteps(10, 1000, "quadratic").tolist()
    pairs = SIGMA_PAIRS + [(tau[i], tau[i - 1]) for i in range(2, len(tau))]
    t, t_prev = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    return alpha[t], alpha[t_prev], [f"t = {a} -> {b}" for a, b in pairs]


@check
def check_sigma_ddpm(answer: Callable) -> Feedback:
    """answer(alpha_t, alpha_prev) -> sigma_t that makes q_sigma DDPM's forward process (eta = 1 in Eq. 16).

    alpha_t, alpha_prev: Python floats (one step t -> t-1, or tau_i -> tau_{i-1} on a subsequence)."""
    alpha_t, alpha_prev, labels = _sigma_pairs()
    got = numbers_from(answer, zip(alpha_t.tolist(), alpha_prev.tolist()), "sigma_t")
    if isinstance(got, Feedback):
        return got
    expected = sigma_eta(alpha_t, alpha_prev, 1.0)
    variance = (1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)
    mistakes = [
        (
            (1 - alpha_t / alpha_prev).sqrt(),
            "sqrt(1 - alpha_t / alpha_{t-1}) = sqrt(beta_t) is the standard deviation of DDPM's forward step q(x_t | "
            "x_{t-1}); the larger "
            "choice the paper calls sigma-hat (Section 5). Here sigma_t is the std of the posterior q(x_{t-1} | x_t, "
            "x0): "
            "DDPM's beta-tilde_t, which is beta_t times a factor that involves alpha_{t-1} and alpha_t.",
        ),
        (
            (1 - alpha_prev).sqrt(),
            "you took beta_t = 1 - alpha_t, reading alpha_t as DDPM's alpha_t = 1 - beta_t. Here alpha_t is DDIM's "
            "cumulative product "
            "(DDPM's alpha-bar), so beta_t = 1 - alpha_t / alpha_{t-1}. (Your sigma_t is the top of the admissible "
            "range, where "
            "the posterior forgets x_t.)",
        ),
        (variance, "that is sigma_t^2, the variance; the function returns the standard deviation."),
    ]
    feedback = compare("sigma_t", got, expected, mistakes, rtol=1e-9, atol=1e-12)
    if not feedback.passed and feedback.message.startswith("✗ sigma_t: off by"):
        worst = int((got - expected).abs().argmax())
        return Feedback(False, feedback.message + f" (The largest difference is at {labels[worst]}.)")
    if not feedback.passed:
        return feedback
    return Feedback(
        True,
        f"✓ sigma_t = sigma_t(eta = 1) of Eq. 16 in {len(labels)} steps (adjacent, and the skips of a "
        "quadratic S = 10 subsequence): with it q_sigma(x_t | x_t-1, x0) is free of x0, DDPM's Markov chain.",
    )


def correlation_on_tau(eta: float = 1.0) -> float:
    """The closed form of corr(x_{tau_{i-1}}, x_{tau_i} | x0) at the exercise's step (tau_i = 200, tau_{i-1} = 100)."""
    alpha = linear_schedule(1000).alpha
    a_t, a_prev = alpha[TAU_T], alpha[TAU_PREV]
    sigma = sigma_eta(a_t, a_prev, eta)
    return float(((1 - a_prev - sigma**2) / (1 - a_prev)).sqrt())


@check
def check_correlation_on_tau(prediction) -> Feedback:
    """prediction: the number corr(x_{tau_{i-1}}, x_{tau_i} | x0) at eta = 1 on the linear S = 10 tau, tau_i = 200
    -> 100.

    Right to within 0.002 (ask for three decimals: two can be off by 0.005)."""
    prediction = attempt(prediction)
    if prediction is None:
        return NOT_ATTEMPTED
    alpha = linear_schedule(1000).alpha
    adjacent = float(
        ((1 - alpha[TAU_T - 1] - sigma_eta(alpha[TAU_T], alpha[TAU_T - 1], 1.0) ** 2) / (1 - alpha[TAU_T - 1])).sqrt()
    )
    expected = correlation_on_tau(1.0)
    mistakes = [
        (
            1.0,
            "1 is the eta = 0 answer, where sigma = 0 and x_{tau_i-1} is a deterministic function of x_{tau_i} and "
            "x0. At "
            "eta = 1 the random-noise term sigma_{tau_i} z takes part of x_{tau_i-1}'s variance.",
        ),
        (
            adjacent,
            "that is the correlation of adjacent steps t - 1 = 199 and t = 200 of the full chain. On tau the previous "
            "state is tau_{i-1} = 100, so alpha_{t-1} and sigma_t are taken at tau_{i-1}, not at tau_i - 1.",
        ),
        (expected**2, "that is rho^2, the fraction of variance explained; the correlation is its square root."),
    ]
    feedback = compare(
        "corr(x_100, x_200 | x0) at eta = 1",
        float(prediction),
        torch.tensor(expected, dtype=F64),
        mistakes,
        rtol=0.0,
        atol=2e-3,
    )
    if feedback.passed:
        return Feedback(
            True,
            f"✓ predicted {float(prediction):.3f}, closed form {expected:.4f}. At eta = 1 it is "
            "sqrt(SNR(tau_i) / SNR(tau_i-1)), SNR = alpha / (1 - alpha): a Markov chain forgets at the rate "
            "its signal-to-noise ratio falls. Compare it with the measurement.",
        )
    return feedback
