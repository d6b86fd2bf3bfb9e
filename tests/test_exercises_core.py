"""ddimlib.exercises.compare, the check under every exercise: right, a known mistake, or off by how much."""

import torch

from ddimlib.exercises import compare


def test_of_two_mistakes_within_the_loose_tolerance_the_closer_ones_hint_is_given():
    expected = torch.tensor([1.0, 2.0])
    near, nearer = (expected + 1.5e-3, "the first mistake"), (expected + 0.5e-3, "the second mistake")
    got = expected + 0.6e-3  # both mistakes are within 1e-3 of the largest value, so both match loosely
    for mistakes in ([near, nearer], [nearer, near]):
        feedback = compare("x", got, expected, mistakes)
        assert not feedback.passed and "the second mistake" in repr(feedback), (mistakes, feedback)


def test_a_right_answer_passes_and_an_unknown_one_says_by_how_much():
    expected = torch.tensor([1.0, 2.0])
    assert compare("x", expected.float(), expected, [(expected + 1, "a mistake")]).passed
    feedback = compare("x", expected + torch.tensor([0.0, 0.5]), expected, [(expected + 1, "a mistake")])
    assert not feedback.passed and "off by up to 0.5" in repr(feedback) and "flat index 1" in repr(feedback)


def test_an_answer_that_raises_gets_feedback_naming_the_error_and_its_line():
    """Anything but NotImplementedError from the learner's code: no traceback through the check, but feedback that
    names the exception and the learner's line, for every check that runs the learner's function."""
    import pytest
    from helpers import smooth_model

    from ddimlib import exercises as ex
    from ddimlib.exercises import forward, notation, objective, ode, sampling, training
    from ddimlib.schedules import linear_schedule

    def typo(*args):
        return args[0].shape_of_x  # a learner's slip: an attribute that does not exist

    checks = {
        "alpha": lambda: notation.check_alpha(typo),
        "posterior": lambda: forward.check_posterior(typo),
        "sigma_ddpm": lambda: forward.check_sigma_ddpm(typo),
        "gamma": lambda: objective.check_gamma(typo),
        "where_c_vanishes": lambda: objective.check_where_c_vanishes(typo),
        "euler_step": lambda: ode.check_euler_step(typo),
        "euler_step_sigma_squared": lambda: ode.check_euler_step_sigma_squared(typo),
        "ddim_step": lambda: sampling.check_ddim_step(typo),
        "sampler": lambda: sampling.check_sampler(typo, smooth_model, linear_schedule(20), torch.zeros(2, 1, 2, 2)),
        "l_simple": lambda: training.check_l_simple(typo),
        "ema": lambda: training.check_ema(typo),
    }
    for name, run in checks.items():
        feedback = run()
        assert isinstance(feedback, ex.Feedback) and feedback.attempted and not feedback.passed, name
        assert "your function raised AttributeError" in feedback.message, (name, feedback.message)
        assert "at `return args[0].shape_of_x" in feedback.message, (name, feedback.message)
    with pytest.raises(RuntimeError, match="the check's own bug"):  # the check's own errors are not hidden

        @ex.check
        def broken():
            raise RuntimeError("the check's own bug")

        broken()
