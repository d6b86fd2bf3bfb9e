"""ddimlib.exercises.notation: the checks of notebook 00's exercises pass the solutions, say "not attempted" for a
blank answer, and name each typical mistake with its hint."""

import torch
from helpers import blank

from ddimlib.exercises import notation as ex
from ddimlib.schedules import linear_schedule


def solution_alpha(betas):
    """The notebook's solution: alpha_t = prod_{s<=t} (1 - beta_s), with alpha_0 = 1 in front."""
    return torch.cat([torch.ones(1, dtype=betas.dtype), torch.cumprod(1 - betas, dim=0)])


def test_alpha_passes_the_solution_in_float64_and_float32():
    feedback = ex.check_alpha(solution_alpha)
    assert feedback.passed and feedback.attempted and "correct" in repr(feedback)
    assert ex.check_alpha(lambda betas: solution_alpha(betas.float())).passed  # float32 rounding is fine
    assert ex.check_alpha(lambda betas: solution_alpha(betas).numpy()).passed  # so is a NumPy array


def test_alpha_not_attempted():
    for answer in (blank, None):
        feedback = ex.check_alpha(answer)
        assert not feedback.passed and not feedback.attempted and "Not attempted" in repr(feedback)


def test_alpha_names_the_typical_mistakes():
    one = lambda betas: torch.ones(1, dtype=betas.dtype)
    cases = {
        "DDPM calls alpha_t": [lambda b: 1 - b, lambda b: torch.cat([one(b), 1 - b])],  # the notation trap
        "put alpha_0 = 1": [lambda b: torch.cumprod(1 - b, 0)],  # shape T
        "cumulative product of beta_t itself": [
            lambda b: torch.cumprod(b, 0),
            lambda b: torch.cat([one(b), torch.cumprod(b, 0)]),
        ],
        "one step late": [lambda b: torch.cat([one(b), one(b), torch.cumprod(1 - b, 0)[:-1]])],  # prod over s < t
        "alpha[0] must be 1": [lambda b: torch.cat([torch.cumprod(1 - b, 0), one(b)])],  # alpha_0 at the end
    }
    for phrase, answers in cases.items():
        for answer in answers:
            feedback = ex.check_alpha(answer)
            assert not feedback.passed and feedback.attempted, phrase
            assert phrase in repr(feedback), (phrase, repr(feedback))


def test_alpha_other_wrong_answers_say_where():
    hard_coded = ex.check_alpha(lambda betas: linear_schedule(1000).alpha)  # ignores its argument
    assert not hard_coded.passed and "shape (1001,), expected (6,)" in repr(hard_coded)
    short = ex.check_alpha(lambda betas: solution_alpha(betas)[:-2])
    assert not short.passed and "expected (6,)" in repr(short)
    off = ex.check_alpha(lambda betas: solution_alpha(betas) ** 1.01)  # alpha[0] = 1, the rest a little off
    assert not off.passed and "off by up to" in repr(off)
    scaled = ex.check_alpha(lambda betas: solution_alpha(betas) * 1.01)  # alpha[0] = 1.01
    assert not scaled.passed and "alpha[0] must be 1" in repr(scaled)
    crashed = ex.check_alpha(lambda betas: betas.undefined_method())
    assert not crashed.passed and "raised AttributeError" in repr(crashed)
    schedule = ex.check_alpha(lambda betas: linear_schedule(len(betas)))
    assert not schedule.passed and "return the (T+1,) tensor" in repr(schedule)


def test_snr_crossing():
    alpha = linear_schedule(1000).alpha
    t = ex.snr_crossing()
    assert alpha[t] / (1 - alpha[t]) < 1 <= alpha[t - 1] / (1 - alpha[t - 1])  # the first t below 1, independently
    right = ex.check_snr_crossing(t)
    assert right.passed and "correct" in repr(right)
    assert ex.check_snr_crossing(torch.tensor(t)).passed and ex.check_snr_crossing(float(t)).passed
    blank_answer = ex.check_snr_crossing(None)
    assert not blank_answer.passed and not blank_answer.attempted


def test_snr_crossing_names_the_typical_mistakes():
    t = ex.snr_crossing()
    early = ex.check_snr_crossing(t - 1)  # a 0-based index
    assert not early.passed and "0-based index" in repr(early)
    nsr = ex.check_snr_crossing(1)  # (1 - alpha) / alpha
    assert not nsr.passed and "noise-to-signal" in repr(nsr)
    late, earlier = ex.check_snr_crossing(500), ex.check_snr_crossing(100)
    assert not late.passed and "look earlier" in repr(late)
    assert not earlier.passed and "look later" in repr(earlier)
    for bad in (0.5, 0, 1001, "260", [1, 2]):
        feedback = ex.check_snr_crossing(bad)
        assert not feedback.passed and feedback.attempted and "integer t in 1..1000" in repr(feedback), bad
