"""ddimlib.exercises.compare, the check under every exercise: right, a known mistake, or off by how much."""

import pytest
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


def _raising(kind: str):
    """A learner's answer that raises `kind`, at a line of its own code, whatever it is called with."""

    def answer(*args, **kwargs):
        # the slips: an attribute that does not exist, a function called on the wrong type, one past the end, and a
        # shape error (torch raises RuntimeError); no comments on their lines, which the feedback quotes
        if kind == "AttributeError":
            return args[0].shape_of_x
        if kind == "TypeError":
            return len(1.5)
        if kind == "IndexError":
            return [1.0, 2.0][2]
        return torch.zeros(2, 3) + torch.zeros(4)

    return answer


RAISED = {
    "AttributeError": "return args[0].shape_of_x",
    "TypeError": "return len(1.5)",
    "IndexError": "return [1.0, 2.0][2]",
    "RuntimeError": "return torch.zeros(2, 3) + torch.zeros(4)",
}


@pytest.mark.parametrize("kind", list(RAISED))
def test_an_answer_that_raises_gets_feedback_naming_the_error_its_message_and_its_line(kind):
    """Anything but NotImplementedError from the learner's code: no traceback through the check, but feedback that
    names the exception, its one-line message and the learner's line, with a hint, for every check that runs the
    learner's function."""
    from helpers import smooth_model

    from ddimlib import exercises as ex
    from ddimlib.exercises import forward, measuring, notation, objective, ode, sampling, training
    from ddimlib.schedules import linear_schedule

    wrong = _raising(kind)
    checks = {
        "alpha": lambda: notation.check_alpha(wrong),
        "posterior": lambda: forward.check_posterior(wrong),
        "sigma_ddpm": lambda: forward.check_sigma_ddpm(wrong),
        "gamma": lambda: objective.check_gamma(wrong),
        "where_c_vanishes": lambda: objective.check_where_c_vanishes(wrong),
        "euler_step": lambda: ode.check_euler_step(wrong),
        "euler_step_sigma_squared": lambda: ode.check_euler_step_sigma_squared(wrong),
        "reconstruction_exponent": lambda: ode.check_reconstruction_exponent(1.0, wrong),
        "ddim_step": lambda: sampling.check_ddim_step(wrong),
        "sampler": lambda: sampling.check_sampler(wrong, smooth_model, linear_schedule(20), torch.zeros(2, 1, 2, 2)),
        "l_simple": lambda: training.check_l_simple(wrong),
        "floor_prediction": lambda: measuring.check_floor_prediction({300: 0.8, 1250: 0.6}, wrong),
        "ema": lambda: training.check_ema(wrong),
    }
    for name, run in checks.items():
        feedback = run()
        assert isinstance(feedback, ex.Feedback) and feedback.attempted and not feedback.passed, name
        assert f"your function raised {kind}: " in feedback.message, (name, feedback.message)
        assert f"at `{RAISED[kind]}`" in feedback.message and "Hint:" in feedback.message, (name, feedback.message)
        assert "\n" not in feedback.message and "Traceback" not in feedback.message, (name, feedback.message)


def test_a_check_does_not_hide_its_own_errors():
    from ddimlib import exercises as ex

    with pytest.raises(RuntimeError, match="the check's own bug"):  # the check's own errors are not hidden

        @ex.check
        def broken():
            raise RuntimeError("the check's own bug")

        broken()
