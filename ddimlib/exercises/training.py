"""Checks for notebook 03's exercises: the training loss L_simple written by hand and the EMA of the weights.

L_simple is DDPM's simple loss (Ho et al. 2020, Eq. 14), which is L_gamma with gamma = 1 in Song, Meng & Ermon,
"Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Eq. 5; the right answer is
`ddimlib.objective.l_simple`; the EMA is the one
`ddimlib.training.Trainer` keeps. The wrong variants below are the typical mistakes the hints explain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddimlib.exercises import NOT_ATTEMPTED, Feedback, attempt, check, compare

# ---------------------------------------------------------------- Exercise 1: L_simple


LOSS_SEEDS = (0, 1)  # the generator seeds the loss is checked with
LOSS_BATCH = 512  # points of the eight-Gaussians set per batch


def _loss_inputs():
    from ddimlib.data import toy_2d
    from ddimlib.oracle import eight_gaussians
    from ddimlib.schedules import linear_schedule

    schedule = linear_schedule(1000)
    return eight_gaussians().eps_model(schedule), toy_2d("eight_gaussians", LOSS_BATCH, seed=0).double(), schedule


# The typical mistakes, each a small function with the learner's arguments (x0 float64, the generator seeded as the
# check seeds it) and the hint that explains it. `_draw` and `_noised` are the right pieces the mistakes share.


def _draw(x0: torch.Tensor, alpha: torch.Tensor, generator: torch.Generator):
    """t ~ Uniform{1..T} first, then eps in x0's dtype, from generator: the order `l_simple` uses."""
    t = torch.randint(1, alpha.numel(), (len(x0),), generator=generator)
    return t, torch.randn(x0.shape, generator=generator, dtype=x0.dtype)


def _noised(x0: torch.Tensor, alpha_t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    a = alpha_t.reshape(-1, *([1] * (x0.ndim - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _alpha_for_sqrt_alpha(eps_model, x0, alpha, generator):
    t, noise = _draw(x0, alpha, generator)
    a = alpha[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return ((eps_model(a * x0 + (1 - a).sqrt() * noise, t) - noise) ** 2).mean()


def _alpha_and_one_minus_alpha(eps_model, x0, alpha, generator):
    t, noise = _draw(x0, alpha, generator)
    a = alpha[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return ((eps_model(a * x0 + (1 - a) * noise, t) - noise) ** 2).mean()


def _model_at_t_minus_1(eps_model, x0, alpha, generator):
    t, noise = _draw(x0, alpha, generator)
    return ((eps_model(_noised(x0, alpha[t], noise), t - 1) - noise) ** 2).mean()


def _zero_based_t(eps_model, x0, alpha, generator):
    t = torch.randint(0, alpha.numel() - 1, (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    return ((eps_model(_noised(x0, alpha[t], noise), t) - noise) ** 2).mean()


def _x0_target(eps_model, x0, alpha, generator):
    t, noise = _draw(x0, alpha, generator)
    return ((eps_model(_noised(x0, alpha[t], noise), t) - x0) ** 2).mean()


def _eps_first(eps_model, x0, alpha, generator):
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    t = torch.randint(1, alpha.numel(), (len(x0),), generator=generator)
    return ((eps_model(_noised(x0, alpha[t], noise), t) - noise) ** 2).mean()


def _float32_eps(eps_model, x0, alpha, generator):
    t = torch.randint(1, alpha.numel(), (len(x0),), generator=generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.dtype)
    return ((eps_model(_noised(x0, alpha[t], noise), t) - noise) ** 2).mean()


def _sum_over_dimensions(eps_model, x0, alpha, generator):
    t, noise = _draw(x0, alpha, generator)
    return ((eps_model(_noised(x0, alpha[t], noise), t) - noise) ** 2).flatten(1).sum(1).mean()


SQRT_HINT = (
    "x_t = sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps (Eq. 4): alpha_t is the share of x_t's *variance* that comes from "
    "x0, so the coefficients are square roots; with alpha_t itself x_t's variance is no longer 1."
)
T_HINT = (
    "the paper's t runs 1..T and alpha[0] = 1 is clean data: the model must see the same t that picked alpha_t "
    "(yours sees t - 1; the loss is only ~0.1 % off, which no loss curve would show, but the samplers call it with t)."
)
LOSS_MISTAKES = [
    (_alpha_for_sqrt_alpha, SQRT_HINT),
    (_alpha_and_one_minus_alpha, SQRT_HINT),
    (_model_at_t_minus_1, T_HINT),
    (_zero_based_t, T_HINT),
    (
        _x0_target,
        "L_simple regresses the noise: the target is eps, the noise you added, not x0. The samplers of notebooks "
        "04-05 read the network's output as eps_theta(x_t, t).",
    ),
    (
        _eps_first,
        "draw t first, then eps, both from `generator` (the order l_simple uses), so that your batch is the same "
        "batch.",
    ),
    (
        _float32_eps,
        "draw eps in x0's dtype, torch.randn(x0.shape, generator=generator, dtype=x0.dtype): float32 and float64 "
        "draws from the same generator are different numbers.",
    ),
    (
        _sum_over_dimensions,
        "l_simple is the mean over the batch *and* the dimensions (a per-element mean); you summed over dimensions, "
        "which multiplies the loss by D.",
    ),
]


def _numbers(value) -> torch.Tensor | None:
    """value as a float64 tensor, or None where it is not numbers (compare then says so)."""
    try:
        return torch.as_tensor(value, dtype=torch.float64).detach()
    except (TypeError, ValueError, RuntimeError):
        return None


@check
def check_l_simple(answer: Callable) -> Feedback:
    """answer(eps_model, x0, schedule, generator) -> the scalar L_simple of the batch x0: t ~ Uniform{1..T} per
    sample, drawn first with torch.randint(1, T + 1, (B,), generator=generator), then eps with
    torch.randn(x0.shape, generator=generator, dtype=x0.dtype); x_t = sqrt(alpha_t) x0 + sqrt(1 - alpha_t) eps;
    the mean over batch and dimensions of (eps_model(x_t, t) - eps)^2. Compared with `ddimlib.objective.l_simple`
    on the same generator state, with the exact denoiser of the eight Gaussians as eps_model, in float64."""
    from ddimlib.objective import l_simple

    eps_model, x0, schedule = _loss_inputs()
    seeded = lambda seed: torch.Generator().manual_seed(seed)
    values = []
    for seed in LOSS_SEEDS:
        got = attempt(answer, eps_model, x0.clone(), schedule, seeded(seed))
        if got is None:
            return NOT_ATTEMPTED
        again = attempt(answer, eps_model, x0.clone(), schedule, seeded(seed))
        first, second = _numbers(got), _numbers(again)
        if first is not None and second is not None and not torch.equal(first, second):
            return Feedback(
                False,
                "✗ L_simple: not yet. Hint: two calls with identically seeded generators gave different losses: "
                "draw t and eps from `generator` (generator=generator), not from the global random state.",
            )
        expected = l_simple(eps_model, x0, schedule, generator=seeded(seed))
        mistakes = [(mistake(eps_model, x0, schedule.alpha, seeded(seed)), hint) for mistake, hint in LOSS_MISTAKES]
        # a mistake is matched tightly: a 0-based t is only ~0.1 % off
        feedback = compare(
            f"L_simple with generator seed {seed}", got, expected, mistakes, rtol=1e-9, atol=1e-12, mistake_rtol=1e-9
        )
        if not feedback.passed:
            return feedback
        values.append(float(expected))
    return Feedback(
        True,
        f"✓ L_simple: correct, the same as ddimlib.objective.l_simple on the same generator "
        f"({', '.join(f'{v:.4f}' for v in values)} for seeds {', '.join(map(str, LOSS_SEEDS))}). The eps_model here "
        "is the exact denoiser E[eps | x_t] of the eight Gaussians, so this is the irreducible part of the loss, "
        "E|eps - E[eps | x_t]|^2 per dimension, that no network trained on this set can go below.",
    )


# ---------------------------------------------------------------- Exercise 2: the EMA of the weights


EMA_DECAY = 0.9  # the check's decay (the Trainer's 0.999 needs thousands of steps to show)
EMA_STEPS = 60


def _ema_inputs():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(4, generator=generator, dtype=torch.float64), torch.randn(
        EMA_STEPS, 4, generator=generator, dtype=torch.float64
    )


def _run_ema(update: Callable, ema: torch.Tensor, weights: torch.Tensor, decay: float):
    """ema after update(ema, w, decay) for each w in weights (None as soon as the update gives None)."""
    for w in weights:
        ema = update(ema, w, decay)
        if ema is None:
            return None
    return ema


def _returns_none(answer: Callable, *args) -> bool:
    """True if answer(*args) runs and returns None (an update written in place that forgot to return)."""
    try:
        return answer(*args) is None
    except NotImplementedError:
        return False


@check
def check_ema(answer: Callable) -> Feedback:
    """answer(ema, weights, decay) -> the new EMA, ema + (1 - decay) (weights - ema) (what `ddimlib.training.Trainer`
    applies after every step, to every parameter, from a copy of the weights at the first step). Run for EMA_STEPS
    steps on fixed float64 weights and compared with the closed form
    decay^K ema_0 + sum_k (1 - decay) decay^(K - k) w_k."""
    ema_0, weights = _ema_inputs()
    if attempt(answer, ema_0.clone(), weights[0].clone(), EMA_DECAY) is None:
        if callable(answer) and _returns_none(answer, ema_0.clone(), weights[0].clone(), EMA_DECAY):
            return Feedback(
                False,
                "✗ the EMA: your function returned None. Return the new EMA (an in-place update must return it too).",
            )
        return NOT_ATTEMPTED
    got = _run_ema(lambda e, w, d: answer(e, w.clone(), d), ema_0.clone(), weights, EMA_DECAY)
    K, d = len(weights), EMA_DECAY
    powers = d ** torch.arange(K - 1, -1, -1, dtype=torch.float64)  # decay^(K - k), k = 1..K
    expected = d**K * ema_0 + (1 - d) * (powers[:, None] * weights).sum(0)
    mistakes = [
        (
            _run_ema(lambda e, w, dd: (1 - dd) * e + dd * w, ema_0, weights, d),
            "decay weighs the *old* average: ema <- decay * ema + (1 - decay) * weights. Swapped, the EMA keeps only "
            "a share "
            "1 - decay of its past and follows the raw weights almost step for step.",
        ),
        (
            _run_ema(lambda e, w, dd: dd * e + w, ema_0, weights, d),
            "the new weights enter with the factor (1 - decay), so that the shares add up to 1; without it the "
            "average grows "
            "like 1 / (1 - decay).",
        ),
    ]
    feedback = compare(f"the EMA after {K} steps at decay {d}", got, expected, mistakes, rtol=1e-9, atol=1e-12)
    if not feedback.passed:
        return feedback
    share = float(
        _run_ema(answer, torch.ones(1, dtype=torch.float64), torch.zeros(1500, 1, dtype=torch.float64), 0.999)
    )
    return Feedback(
        True,
        f"✓ the EMA: correct after {K} steps. Run from weights 1 with the weights then held at 0, your update "
        f"leaves {share:.3f} of the start after 1,500 steps at decay 0.999 (= 0.999^1500): the share of the random "
        "initialisation that section 3's short run would still carry in its EMA, "
        "and why it samples from the raw weights.",
    )
