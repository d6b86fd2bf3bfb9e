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
