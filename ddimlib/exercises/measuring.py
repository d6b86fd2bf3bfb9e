"""Checks for the exercise of notebook 06 (the appendix on measuring): a predict-then-measure on the data floor, real
digits drawn without replacement against with replacement. The floor is `ddimlib.metrics.floor_draws`; the wrong
draws below are the typical mistakes the hints explain.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ddimlib.exercises import NOT_ATTEMPTED, Feedback, attempt, check, compare

# ---------------------------------------------------------------- Exercise 1: the floor, with and without replacement


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
                "your draw repeats an item: that is drawing *with* replacement (the i.i.d. floor of notebook 06, "
                "section 1). Without replacement each digit appears at most once: e.g. the first n of a random "
                "permutation of the pool."
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
