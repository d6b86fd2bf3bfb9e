"""ddimlib.exercises.training: each check passes a right answer, says "not attempted" for a blank one, and
gives the typical mistake's hint for a wrong one."""

import torch
from helpers import assert_each_mistake_gets_its_hint, blank

from ddimlib.exercises import training as ex

# ---------------------------------------------------------------- Exercise 1: L_simple


def loss(
    eps_model,
    x0,
    schedule,
    generator,
    coefficient=lambda a: a.sqrt(),
    model_t=lambda t: t,
    low=1,
    target="eps",
    eps_first=False,
    eps_dtype=None,
    reduce="mean",
    use_generator=True,
):
    T, B = schedule.T, x0.shape[0]
    g = generator if use_generator else None
    draw_t = lambda: torch.randint(low, T + low, (B,), generator=g)
    draw_eps = lambda: torch.randn(x0.shape, generator=g, dtype=eps_dtype or x0.dtype).to(x0.dtype)
    if eps_first:
        eps, t = draw_eps(), draw_t()
    else:
        t, eps = draw_t(), draw_eps()
    a = schedule.alpha[t].to(x0.dtype).reshape(-1, *[1] * (x0.ndim - 1))
    x_t = coefficient(a) * x0 + (1 - a).sqrt() * eps
    error = (eps_model(x_t, model_t(t)) - (eps if target == "eps" else x0)) ** 2
    return error.mean() if reduce == "mean" else error.flatten(1).sum(1).mean()


def test_the_l_simple_check():
    assert ex.check_l_simple(loss).passed
    assert not ex.check_l_simple(blank).attempted and "Not attempted" in repr(ex.check_l_simple(blank))
    assert not ex.check_l_simple(None).attempted
    wrong = {
        "the coefficients are square roots": lambda *a: loss(*a, coefficient=lambda a: a),
        "the model must see the same t that picked alpha_t": lambda *a: loss(*a, model_t=lambda t: t - 1),
        "the paper's t runs 1..T": lambda *a: loss(*a, low=0),
        "the target is eps, the noise you added, not x0": lambda *a: loss(*a, target="x0"),
        "draw t first, then eps": lambda *a: loss(*a, eps_first=True),
        "draw eps in x0's dtype": lambda *a: loss(*a, eps_dtype=torch.float32),
        "you summed over dimensions": lambda *a: loss(*a, reduce="sum"),
        "not from the global random state": lambda *a: loss(*a, use_generator=False),
    }
    assert_each_mistake_gets_its_hint(ex.check_l_simple, wrong)
    other = ex.check_l_simple(lambda *a: 1.1 * loss(*a))  # a mistake the check does not know: where and by how much
    assert not other.passed and "off by up to" in other.message


# ---------------------------------------------------------------- Exercise 2: the floor without replacement


def draw(pool_size, n, generator):
    return torch.randperm(pool_size, generator=generator)[:n]


PREDICTION = {300: 0.85, 1250: 0.6}


def test_the_floor_check_passes_a_right_draw_and_a_close_prediction_and_explains_why():
    feedback = ex.check_floor_prediction(PREDICTION, draw)
    assert feedback.passed, feedback
    assert "96% of their images" in feedback.message and "the class mix freezes" in feedback.message
    other_draw = lambda N, n, g: torch.multinomial(torch.ones(N), n, replacement=False, generator=g)
    assert ex.check_floor_prediction(PREDICTION, other_draw).passed


def test_the_floor_check_says_not_attempted_and_names_a_wrong_prediction():
    assert not ex.check_floor_prediction(None, draw).attempted
    assert not ex.check_floor_prediction(PREDICTION, blank).attempted
    assert "write the prediction as a dict" in ex.check_floor_prediction(0.7, draw).message
    higher = ex.check_floor_prediction({300: 1.1, 1250: 1.3}, draw)
    assert not higher.passed and "can only remove the sampling noise" in higher.message, higher
    unmoved = ex.check_floor_prediction({300: 0.85, 1250: 0.98}, draw)
    assert (
        not unmoved.passed and "at n = 1,250" in unmoved.message and "overlap more than you assumed" in unmoved.message
    ), unmoved


def test_the_floor_check_recognises_the_typical_wrong_draws():
    wrong = {
        "that is drawing *with* replacement": lambda N, n, g: torch.randint(N, (n,), generator=g),
        "every draw is the same subset": lambda N, n, g: torch.arange(n),
        "a permutation of the first n items": lambda N, n, g: torch.randperm(n, generator=g),
        "draw from `generator`": lambda N, n, g: torch.randperm(N)[:n],
        "return n = 5 integer indices": lambda N, n, g: torch.randperm(N, generator=g)[:n].float(),
    }
    assert_each_mistake_gets_its_hint(lambda answer: ex.check_floor_prediction(PREDICTION, answer), wrong)


# ---------------------------------------------------------------- Exercise 3: the EMA


def ema(ema, weights, decay):
    return decay * ema + (1 - decay) * weights


def test_the_ema_check():
    feedback = ex.check_ema(ema)
    assert feedback.passed and "0.223" in feedback.message, feedback
    assert ex.check_ema(lambda e, w, d: torch.lerp(e, w, 1 - d)).passed
    assert not ex.check_ema(blank).attempted and not ex.check_ema(None).attempted
    wrong = {
        "Swapped, the EMA keeps only": lambda e, w, d: (1 - d) * e + d * w,
        "without it the average grows": lambda e, w, d: d * e + w,
    }

    def in_place_without_return(e, w, d):
        e.mul_(d).add_((1 - d) * w)

    wrong["returned None"] = in_place_without_return
    assert_each_mistake_gets_its_hint(ex.check_ema, wrong)
