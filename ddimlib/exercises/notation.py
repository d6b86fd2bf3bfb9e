"""Self-checks for the exercises of notebooks/00_start_here.ipynb: the notation.

Exercise 1, `check_alpha`: from DDPM's betas to DDIM's alpha_t = prod_{s<=t} (1 - beta_s), a (T+1,) tensor with
alpha[0] = 1, checked against `ddimlib.schedules.schedule_from_betas`. Exercise 2, `check_snr_crossing`: the first t
of the linear schedule (T = 1000) at which the signal-to-noise ratio alpha_t / (1 - alpha_t) falls below 1.

Each check recognises the notation's typical mistakes (DDPM's alpha = 1 - beta, a missing alpha_0, the cumulative
product of beta, a 0-based index) and says why they are wrong, without giving the answer away.

Reference: Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Section 2
(DDIM's alpha_t is DDPM's alpha-bar_t).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddimlib.exercises import NOT_ATTEMPTED, Feedback, attempt, check, compare
from ddimlib.schedules import linear_schedule, schedule_from_betas

# Fixed inputs of exercise 1: a short, irregular schedule (its numbers are easy to read) and DDPM's linear one.
SHORT_BETAS = torch.tensor([0.1, 0.2, 0.05, 0.3, 0.5], dtype=torch.float64)
LINEAR_BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)

HINT_DDPM_ALPHA = (
    "this is 1 - beta_t, what DDPM calls alpha_t: the notation trap. DDIM's alpha_t is DDPM's alpha-bar_t, the "
    "product of (1 - beta_s) over every step s <= t: the share of the signal's power left after t steps, not after "
    "one."
)
HINT_NO_ALPHA_0 = (
    "your values are right but there are only T of them. The schedule is indexed by the paper's t = 0..T, so that "
    "alpha[t] is alpha_t: put alpha_0 = 1 (no noise at t = 0) in front, shape (T+1,)."
)
HINT_CUMPROD_BETA = (
    "this is the cumulative product of beta_t itself. beta_t is the share of the signal a step replaces by noise; "
    "what survives a step is 1 - beta_t, and alpha_t multiplies those survivals."
)
HINT_SHIFTED = (
    "alpha[1] is 1, so every alpha_t is one step late: alpha_t includes step t itself, prod over s = 1..t (not s < "
    "t), "
    "and only alpha_0 = 1."
)
HINT_ALPHA_0 = (
    "alpha[0] must be 1: t = 0 is the clean data, and the paper's t = 1..T follow it (index t holds alpha_t)."
)


def _one_schedule(answer: Callable, betas: torch.Tensor) -> Feedback:
    """Feedback on answer(betas) for one set of betas (shape (T,))."""
    what = f"my_alpha on {len(betas)} betas"
    got = attempt(answer, betas.clone())  # an answer that raises gets check_alpha's feedback (exercises.check)
    if got is None:
        return NOT_ATTEMPTED
    if hasattr(got, "alpha") and not isinstance(got, torch.Tensor):
        return Feedback(
            False, f"✗ {what}: you returned a {type(got).__name__}; return the (T+1,) tensor of alpha_t itself."
        )
    try:
        got = torch.as_tensor(got, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as error:
        return Feedback(False, f"✗ {what}: your answer is not a tensor of numbers ({type(error).__name__}: {error}).")
    T = len(betas)
    expected = schedule_from_betas(betas).alpha
    one = torch.ones(1, dtype=torch.float64)
    close = lambda value: got.shape == value.shape and torch.allclose(got, value, rtol=1e-5, atol=1e-12)
    if got.shape == (T,):  # T values: which ones?
        for value, hint in [
            (torch.cumprod(1 - betas, 0), HINT_NO_ALPHA_0),
            (1 - betas, HINT_DDPM_ALPHA),
            (torch.cumprod(betas, 0), HINT_CUMPROD_BETA),
        ]:
            if close(value):
                return Feedback(False, f"✗ {what}: not yet. Hint: {hint}")
        return Feedback(
            False, f"✗ {what}: shape ({T},), expected ({T + 1},): one alpha_t for each t = 0..T, with alpha[0] = 1."
        )
    mistakes = [
        (torch.cat([one, 1 - betas]), HINT_DDPM_ALPHA),
        (torch.cat([one, torch.cumprod(betas, 0)]), HINT_CUMPROD_BETA),
        (torch.cat([one, one, torch.cumprod(1 - betas, 0)[:-1]]), HINT_SHIFTED),
    ]
    feedback = compare(what, got, expected, mistakes, rtol=1e-5, atol=1e-12)
    if not feedback.passed and "Hint" not in feedback.message and got.shape == expected.shape and got[0] != 1:
        return Feedback(False, f"✗ {what}: not yet. Hint: {HINT_ALPHA_0}")
    return feedback


@check
def check_alpha(my_alpha: Callable) -> Feedback:
    """Exercise 1: my_alpha(betas) -> DDIM's alpha_t for t = 0..T, (T+1,), alpha[0] = 1.

    Run on a short irregular schedule and on DDPM's linear one (T = 1000), against schedule_from_betas.
    """
    for betas in (SHORT_BETAS, LINEAR_BETAS):
        feedback = _one_schedule(my_alpha, betas)
        if not feedback.passed:
            return feedback
    alpha = schedule_from_betas(LINEAR_BETAS).alpha
    return Feedback(
        True,
        f"✓ my_alpha: correct on both schedules. On DDPM's linear one alpha_T = {alpha[-1]:.2e}, while "
        f"every 1 - beta_t is at least {float(1 - LINEAR_BETAS.max()):.2f}.",
    )


def snr_crossing(T: int = 1000) -> int:
    """The first t in 1..T of the linear schedule with alpha_t / (1 - alpha_t) < 1 (the library's answer)."""
    alpha = linear_schedule(T).alpha
    snr = alpha[1:] / (1 - alpha[1:])  # entry k is t = k + 1
    return int((snr < 1).nonzero()[0]) + 1


@check
def check_snr_crossing(my_t) -> Feedback:
    """Exercise 2: the first t of linear_schedule(1000) at which alpha_t / (1 - alpha_t) < 1, as an int."""
    if my_t is None:
        return NOT_ATTEMPTED
    what = "the first t with SNR below 1"
    try:
        value = float(torch.as_tensor(my_t, dtype=torch.float64).reshape(()))
    except (TypeError, ValueError, RuntimeError):
        return Feedback(False, f"✗ {what}: give one integer t in 1..1000, not {my_t!r}.")
    if value != int(value) or not 1 <= value <= 1000:
        return Feedback(False, f"✗ {what}: give a timestep, an integer t in 1..1000 (the paper's t); got {my_t!r}.")
    t = int(value)
    alpha = linear_schedule(1000).alpha
    snr = lambda s: float(alpha[s] / (1 - alpha[s]))
    answer = snr_crossing(1000)
    mistakes = [
        (
            answer - 1,
            f"at your t the SNR is {snr(answer - 1):.4f}, still at least 1. An answer one too early usually comes "
            "from a 0-based index: in an array without alpha_0 (or in alpha[1:]) position k holds t = k + 1. The "
            "paper's t starts at 1.",
        ),
        (
            1,
            f"at t = 1 the SNR is {snr(1):.0f}: x_1 is almost clean. If your ratio was below 1 there, you computed "
            "the noise-to-signal ratio (1 - alpha_t) / alpha_t.",
        ),
    ]
    side = "already below 1: look earlier" if snr(t) < 1 else "still at least 1: look later"
    return compare(
        what,
        t,
        torch.tensor(float(answer)),
        mistakes,
        rtol=0,
        atol=0.5,
        mistake_atol=0.5,
        success=f"t = {t}: SNR {snr(t - 1):.4f} at t = {t - 1}, {snr(t):.4f} at t = {t} (alpha_t = "
        f"{float(alpha[t]):.3f}). Half the signal's power is gone a quarter of the way through the schedule; at "
        f"t = 500 the SNR is {snr(500):.3f}.",
        otherwise=f"at your t = {t} the SNR alpha_t / (1 - alpha_t) is {snr(t):.4f}, {side}. (alpha_t here is DDIM's: "
        "the cumulative product, linear_schedule(1000).alpha[t].)",
    )
