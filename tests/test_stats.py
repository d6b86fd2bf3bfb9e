"""Verdicts: resolved, not resolved at this sample size, or contradicted; the t table against the t density."""

import math

import pytest
import torch

from ddimlib.stats import T_975, compare, from_estimate, t_975

F64 = torch.float64


@pytest.mark.parametrize("dof", sorted(T_975))
def test_the_t_table_puts_95_percent_inside_plus_minus_t(dof):
    """Integrate Student's t density (torch.distributions) over [-t, t]: 0.95 up to the table's two decimals."""
    t = T_975[dof]
    grid = torch.linspace(-t, t, 200_001, dtype=F64)
    density = torch.distributions.StudentT(torch.tensor(float(dof), dtype=F64)).log_prob(grid).exp()
    inside = float(torch.trapezoid(density, grid))
    assert abs(inside - 0.95) < 0.0015, (dof, inside)


def test_t_rounds_down_to_a_tabulated_dof_and_refuses_less_than_one():
    assert t_975(7.9) == T_975[7] and t_975(21) == T_975[20] and t_975(500) == T_975[30]
    with pytest.raises(ValueError, match="dof must be >= 1, got 0.5"):
        t_975(0.5)


def test_paired_verdict_uses_the_differences():
    left = torch.tensor([10.0, 12.0, 11.0, 13.0], dtype=F64)
    right = left + torch.tensor([1.0, 1.2, 0.8, 1.0], dtype=F64)  # right is larger by ~1 in every pair
    verdict = compare("left < right", left, right, "<", paired=True)
    d = left - right
    assert math.isclose(verdict.difference, -1.0) and math.isclose(verdict.bound, 3.18 * float(d.std()) / 2)
    assert verdict.resolved and verdict.sign == "<" and "resolved" in str(verdict)
    # unpaired, the spread between replicates (~1.3) hides the same difference
    unpaired = compare("left < right", left, right, "<", paired=False)
    assert not unpaired.resolved and not unpaired.contradicted and "not resolved at this sample size" in str(unpaired)
    unpaired.check()  # an unresolved claim passes


def test_welch_bound_against_its_formula():
    left, right = torch.tensor([1.0, 2.0, 3.0], dtype=F64), torch.tensor([5.0, 5.5, 6.0, 6.5, 7.0], dtype=F64)
    verdict = compare("left < right", left, right, "<", paired=False)
    va, vb = 1.0 / 3, float(right.var()) / 5
    dof = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 4)
    assert math.isclose(verdict.bound, t_975(dof) * math.sqrt(va + vb)) and verdict.resolved


def test_only_a_contradicted_claim_fails_its_check():
    contradicted = from_estimate("A better than B", difference=2.0, se=0.5, expected="<")
    assert contradicted.contradicted and contradicted.status == "CONTRADICTED"
    with pytest.raises(AssertionError, match="A better than B: \\+2 \\+- 0.98 \\(95 %\\), CONTRADICTED"):
        contradicted.check()
    assert from_estimate("A better than B", difference=-0.5, se=0.5, expected="<").check().sign == "~"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="expected"):
        from_estimate("x", 1.0, 1.0, expected="less")
    with pytest.raises(ValueError, match="paired replicates must have the same length >= 2, got 3 and 2"):
        compare("x", torch.ones(3), torch.ones(2), "<", paired=True)
    with pytest.raises(ValueError, match="unpaired comparisons need >= 2 replicates on each side, got 1 and 3"):
        compare("x", torch.ones(1), torch.ones(3), "<", paired=False)
