"""Checks for notebook 03's exercises: the training loss L_simple written by hand, a predict-then-measure on
the data floor (real digits drawn without replacement against with replacement), and the EMA of the weights.

L_simple is DDPM's simple loss (Ho et al. 2020, Eq. 14), which is L_gamma with gamma = 1 in Song, Meng & Ermon,
"Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502, Eq. 5; the right answer is
`ddimlib.objective.l_simple`. The floor is `ddimlib.metrics.floor_draws`; the EMA is the one
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


# ---------------------------------------------------------------- Exercise 2: the floor, with and without replacement


FLOOR_SIZES = (300, 1250)  # n of the prediction: far below the 1,297 training digits, and nearly all of them
DRAWS_PER_SIZE = 40  # draws of each kind behind each measured mean (metrics.FLOOR_DRAWS is the floor's own count)
PREDICTION_TOLERANCE = 0.15  # a predicted ratio this close to the measured one counts as right


def _index_mistake(answer: Callable) -> str | None:
    """What is wrong with answer(pool_size, n, generator) -> indices of n distinct items, or None if nothing is."""
    checks = []
    for pool_size, n in ((20, 5), (1297, 1250)):
        got = attempt(answer, pool_size, n, torch.Generator().manual_seed(0))
        if got is None:
            return "not attempted"
        try:
            got = torch.as_tensor(got)
        except (TypeError, ValueError, RuntimeError) as error:
            return f"your answer is not a tensor of indices ({type(error).__name__}: {error})."
        if got.is_floating_point() or got.dtype == torch.bool or tuple(got.shape) != (n,):
            return f"return n = {n} integer indices, shape ({n},); got dtype {got.dtype} and shape {tuple(got.shape)}."
        if int(got.min()) < 0 or int(got.max()) >= pool_size:
            return f"indices must lie in 0..pool_size - 1 = {pool_size - 1}; got {int(got.min())}..{int(got.max())}."
        if got.unique().numel() < n:
            return (
                "your draw repeats an item: that is drawing *with* replacement (the i.i.d. floor of section 4.1). "
                "Without replacement each digit appears at most once: e.g. the first n of a random permutation of the "
                "pool."
            )
        again = torch.as_tensor(attempt(answer, pool_size, n, torch.Generator().manual_seed(0)))
        if not torch.equal(again, got):
            return (
                "two identically seeded generators gave different draws: draw from `generator` (generator=generator)."
            )
        checks.append(got)
    counts = torch.zeros(20)
    generator = torch.Generator().manual_seed(1)
    draws = [torch.as_tensor(answer(20, 5, generator)) for _ in range(400)]
    same_subset = (
        "every draw is the same subset: its FD would have no spread at all, a floor of one draw. "
        "Draw a new random subset each time (advance the generator)."
    )
    if all(torch.equal(d, draws[0]) for d in draws):
        return same_subset
    if max(int(d.max()) for d in draws) < 5:
        return (
            "your indices come only from 0..n - 1 (a permutation of the first n items): draw from all pool_size items."
        )
    if all(torch.equal(d.sort().values, draws[0].sort().values) for d in draws):
        return same_subset
    for d in draws:
        counts[d] += 1
    # each item is drawn with probability n / pool_size = 1/4 per draw: count 100 +- 8.7 in 400 draws
    if (counts - 100).abs().max() > 5 * (400 * 0.25 * 0.75) ** 0.5:
        return "some items are drawn far more often than others: every subset of n items should be equally likely."
    return None


def _floor_direction(guess: float, ratio: float) -> str:
    """The hint for a predicted ratio of the floors that is off: which way, and why."""
    if guess > 1:
        return (
            "above 1: drawing without replacement can only remove the sampling noise that drawing with replacement "
            "has."
        )
    if guess < ratio:
        return "too far below: at this n the draws overlap less than you assumed."
    return "too close to 1: at this n the draws overlap more than you assumed."


@check
def check_floor_prediction(prediction: dict | None, answer: Callable) -> Feedback:
    """prediction: {300: r, 1250: r}, the predicted ratio FD(n digits drawn without replacement) / FD(n drawn with
    replacement), both against the 500 held-out digits. answer(pool_size, n, generator) -> (n,) int64 indices of n
    distinct training digits. The check measures both with DRAWS_PER_SIZE draws (`ddimlib.metrics.floor_draws` for
    the draws with replacement) and compares the ratios with the prediction, within PREDICTION_TOLERANCE."""
    from ddimlib.data import load_digits
    from ddimlib.metrics import classifier_features, floor_draws, frechet_distance, load_classifier

    prediction = attempt(prediction)
    if prediction is None:
        return NOT_ATTEMPTED
    if not isinstance(prediction, dict) or set(prediction) != set(FLOOR_SIZES):
        return Feedback(
            False,
            f"✗ write the prediction as a dict {{300: ratio, 1250: ratio}}, e.g. {{300: 0.5, 1250: 0.5}}; got "
            f"{prediction!r}.",
        )
    mistake = _index_mistake(answer)
    if mistake == "not attempted":
        return NOT_ATTEMPTED
    if mistake is not None:
        return Feedback(False, f"✗ your draw without replacement: not yet. Hint: {mistake}")
    classifier = load_classifier()
    train = load_digits("train")
    pool, reference, labels = (
        classifier_features(train.images, classifier),
        classifier_features(load_digits("test").images, classifier),
        train.labels,
    )
    N, generator, rows, wrong = len(pool), torch.Generator().manual_seed(0), [], []
    for n in FLOOR_SIZES:
        drawn = (pool[torch.as_tensor(answer(N, n, generator))] for _ in range(DRAWS_PER_SIZE))
        without = torch.tensor([frechet_distance(features, reference) for features in drawn])
        with_ = floor_draws(n, DRAWS_PER_SIZE, seed=n, classifier=classifier)["fd"]
        ratio = float(without.mean() / with_.mean())
        se = (
            ratio
            * (
                float(without.var()) / DRAWS_PER_SIZE / float(without.mean()) ** 2
                + float(with_.var()) / DRAWS_PER_SIZE / float(with_.mean()) ** 2
            )
            ** 0.5
        )
        p = float((labels == 0).double().mean())  # a class's share, ~1/10
        class_sd_without = (n * p * (1 - p) * (N - n) / (N - 1)) ** 0.5  # hypergeometric
        class_sd_with = (n * p * (1 - p)) ** 0.5  # binomial
        guess = float(prediction[n])
        verdict = compare(
            f"your draw is right, but at n = {n:,} you predicted {guess:.2f} and measured {ratio:.2f}",
            guess,
            torch.tensor(ratio),
            rtol=0,
            atol=PREDICTION_TOLERANCE + 2 * se,
            otherwise=_floor_direction(guess, ratio),
        )
        close = verdict.passed
        rows.append(
            f"  n = {n:5,d}: two draws share {n / N:4.0%} of their images, (N - n)/(N - 1) = {(N - n) / (N - 1):.2f}; "
            f"a class's count varies by ±{class_sd_without:4.1f} without replacement, ±{class_sd_with:4.1f} with. FD "
            f"without {float(without.mean()):5.2f} (sd {float(without.std()):4.2f}), "
            f"with {float(with_.mean()):5.2f} (sd {float(with_.std()):4.2f}): ratio {ratio:.2f} ± {se:.2f}; "
            f"you predicted {guess:.2f} {'✓' if close else '✗'}"
        )
        if not close:
            wrong.append(verdict)
    why = (
        "Why: n digits drawn without replacement from the N = 1,297 are pinned to the training set. Any two such "
        "draws share a "
        "fraction n/N of their images, and the variance of a draw's mean, and of each class's count, is (N - n)/(N - "
        "1) times "
        "that of n independent draws: the class mix freezes as n nears N. FD adds up the squared errors of the mean "
        "and the "
        "covariance, so its sampling part shrinks with that factor, and near n = N what is left is the gap between "
        "the training "
        "and held-out splits alone: lower and steadier than n independent draws (a generator's samples) can score."
    )
    table = "\n".join(rows)
    if not wrong:
        return Feedback(
            True,
            f"✓ your draw is right and your predictions are within {PREDICTION_TOLERANCE} (plus two standard errors) "
            f"of the measured ratios:\n{table}\n{why}",
        )
    return Feedback(
        False, f"{wrong[0].message}\n{table}\nThink about the shared images and the class mix, then predict again."
    )


# ---------------------------------------------------------------- Exercise 3: the EMA of the weights


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
