"""Checks for notebook 02's exercises: the exact weight gamma_t of Theorem 1 (J_sigma = L_gamma + C), and where the
x0-coefficient c_t of the posterior mean would vanish.

Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Section 3.2 and Appendix B.
The wrong variants below are the typical mistakes the hints explain; the right answers are
`ddimlib.objective.gamma_weights` and the root of `ddimlib.objective.x0_coefficient` in sigma_t^2.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddimlib.exercises import Feedback, check, compare, numbers_from
from ddimlib.objective import gamma_weights, x0_coefficient
from ddimlib.sampling import sigma_eta
from ddimlib.schedules import linear_schedule, timesteps

F64 = torch.float64
GAMMA_TIMES = [2, 10, 100, 500, 1000]  # t of the cases the weight check tries, each at every eta below
GAMMA_ETAS = [0.2, 0.5, 1.0]
SIGMA_1 = 0.05  # sigma_1 (the std of p_theta(x0 | x1)); gamma_weights needs one, the check only reads t >= 2


def _gamma_cases():
    """(alpha_t, alpha_prev, sigma_t, expected gamma_t, label) for every t in GAMMA_TIMES and eta in GAMMA_ETAS."""
    schedule = linear_schedule(1000)
    alpha = schedule.alpha
    cases = []
    for eta in GAMMA_ETAS:
        sigma = torch.cat([torch.zeros(1, dtype=F64), sigma_eta(alpha[1:], alpha[:-1], eta)])
        sigma[1] = SIGMA_1
        gamma = gamma_weights(schedule, sigma)
        cases += [
            (float(alpha[t]), float(alpha[t - 1]), float(sigma[t]), float(gamma[t]), f"t = {t}, eta = {eta:g}")
            for t in GAMMA_TIMES
        ]
    return cases


@check
def check_gamma(answer: Callable) -> Feedback:
    """answer(alpha_t, alpha_prev, sigma_t) -> gamma_t, the weight with KL_t = gamma_t |eps_theta - eps|^2 (t >= 2).

    alpha_t, alpha_prev, sigma_t: Python floats (sigma_t > 0). Compared with ddimlib.objective.gamma_weights."""
    cases = _gamma_cases()
    got = numbers_from(answer, (case[:3] for case in cases), "gamma_t")
    if isinstance(got, Feedback):
        return got
    a_t, a_prev, sigma, expected = (torch.tensor([case[k] for case in cases], dtype=F64) for k in range(4))
    c = x0_coefficient(a_t, a_prev, sigma)
    mistakes = [
        (
            (1 - a_t) / (2 * sigma**2 * a_t),
            "this is the weight without c_t^2, as in the paper's short proof and the study notes: it assumes the two "
            "means differ "
            "by x0 - f_theta(x_t). But x0 enters the mean of Eq. 7 twice: in sqrt(alpha_{t-1}) x0, and with a minus "
            "sign inside "
            "the direction term (x_t - sqrt(alpha_t) x0) / sqrt(1 - alpha_t). Hold x_t fixed and collect x0's "
            "coefficient c_t: "
            "the means differ by c_t (x0 - f_theta(x_t)), and the KL by its square.",
        ),
        (
            c * (1 - a_t) / (2 * sigma**2 * a_t),
            "the KL of two Gaussians with the same covariance is |mu_q - mu_p|^2 / (2 sigma_t^2), quadratic in the "
            "difference of "
            "the means, so the coefficient c_t of x0 enters squared.",
        ),
        (
            c**2 * (1 - a_t) / (sigma**2 * a_t),
            "KL(N(mu_q, sigma^2 I) || N(mu_p, sigma^2 I)) = |mu_q - mu_p|^2 / (2 sigma^2): a factor 1/2 is missing.",
        ),
    ]
    feedback = compare("gamma_t", got, expected, mistakes, rtol=1e-9, atol=0.0)
    if not feedback.passed:
        if feedback.message.startswith("✗ gamma_t: off by"):
            worst = int(((got - expected).abs() / expected).argmax())
            return Feedback(False, feedback.message + f" (The largest relative difference is at {cases[worst][4]}.)")
        return feedback
    return Feedback(
        True,
        f"✓ gamma_t = c_t^2 (1 - alpha_t) / (2 sigma_t^2 alpha_t): agrees with ddimlib.objective.gamma_weights in "
        f"{len(cases)} cases (t = 2 to 1000, eta = 0.2, 0.5, 1).",
    )


def _vanish_pairs() -> list[tuple[float, float, str]]:
    """(alpha_t, alpha_prev, label): adjacent steps of the linear T = 1000 schedule and the skips of a quadratic S = 10
    tau."""
    alpha = linear_schedule(1000).alpha
    tau = [0] + timesteps(10, 1000, "quadratic").tolist()
    pairs = [(t, t - 1) for t in GAMMA_TIMES] + [(tau[i], tau[i - 1]) for i in range(2, len(tau))]
    return [(float(alpha[t]), float(alpha[t_prev]), f"t = {t} -> {t_prev}") for t, t_prev in pairs]


def _c_at(a_t: torch.Tensor, a_prev: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """c_t with sigma_t^2 given directly (it may be negative: c_t is defined wherever 1 - alpha_{t-1} - sigma_t^2 >=
    0)."""
    return a_prev.sqrt() - (1 - a_prev - sigma2).sqrt() * (a_t / (1 - a_t)).sqrt()


@check
def check_where_c_vanishes(answer: Callable) -> Feedback:
    """answer(alpha_t, alpha_prev) -> the sigma_t^2 at which c_t = sqrt(alpha_{t-1}) - sqrt(1 - alpha_{t-1} -
    sigma_t^2)
    sqrt(alpha_t / (1 - alpha_t)) is zero. alpha_t, alpha_prev: Python floats with alpha_t < alpha_prev."""
    pairs = _vanish_pairs()
    got = numbers_from(answer, (pair[:2] for pair in pairs), "sigma_t^2")
    if isinstance(got, Feedback):
        return got
    a_t, a_prev = (torch.tensor([p[k] for p in pairs], dtype=F64) for k in range(2))
    expected = 1 - a_prev / a_t
    mistakes = [
        (
            1 - a_t / a_prev,
            "1 - alpha_t / alpha_{t-1} is beta_t (the ratio inverted); put it back into c_t and you will find c_t > 0 "
            "there. Square "
            "sqrt(alpha_{t-1}) = sqrt(1 - alpha_{t-1} - sigma_t^2) sqrt(alpha_t / (1 - alpha_t)) and solve for "
            "sigma_t^2 again.",
        ),
        (
            1 - a_prev,
            "at sigma_t^2 = 1 - alpha_{t-1} the direction term vanishes, so the coefficient of x_t is zero and c_t = "
            "sqrt(alpha_{t-1}), "
            "its largest value, not zero.",
        ),
        (
            a_prev / a_t - 1,
            "your value has the wrong sign; check the step where you move sigma_t^2 across the equation.",
        ),
    ]
    feedback = compare("sigma_t^2 where c_t = 0", got, expected, mistakes, rtol=1e-9, atol=1e-15)
    if not feedback.passed:
        if feedback.message.startswith("✗ sigma_t^2 where c_t = 0: off by"):
            worst = int((got - expected).abs().argmax())
            if 1 - a_prev[worst] - got[worst] >= 0:
                c = float(_c_at(a_t[worst], a_prev[worst], got[worst]))
                return Feedback(
                    False, feedback.message + f" At {pairs[worst][2]}, c_t at your sigma_t^2 is {c:.3g}, not 0."
                )
        return feedback
    c_max = float(_c_at(a_t, a_prev, got).abs().max())
    return Feedback(
        True,
        f"✓ sigma_t^2 = 1 - alpha_t-1 / alpha_t (c_t there: |c_t| <= {c_max:.1e}). It is negative at every step "
        f"(from {float(expected.max()):.1e} to {float(expected.min()):.2f} here), because alpha_t-1 > alpha_t: "
        "outside the admissible range 0 <= sigma_t^2 <= 1 - alpha_t-1. So c_t never vanishes for an admissible "
        "sigma_t, and gamma_t > 0 wherever sigma_t > 0.",
    )
