"""ddimlib.exercises.measuring: the floor check passes a right answer, says "not attempted" for a blank one, and
gives the typical mistake's hint for a wrong one."""

import torch
from helpers import assert_each_mistake_gets_its_hint, blank

from ddimlib.exercises import measuring as ex

# ---------------------------------------------------------------- Exercise 1: the floor without replacement


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
