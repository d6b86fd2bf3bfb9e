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


# ---------------------------------------------------------------- Exercise 2: the EMA


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
