"""Verdicts: resolved, not resolved at this sample size, or contradicted; the t table against the t density."""

import math

import pytest
import torch

from ddimlib import stats
from ddimlib.stats import T_975, Verdict, check_together, compare, from_estimate, mean_se, t_975, t_quantile

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


@pytest.mark.parametrize("dof", [1, 3, 10, 30])
def test_t_quantile_against_the_table_and_known_values(dof):
    assert abs(t_quantile(0.975, dof) - T_975[dof]) < 0.005  # the table has two decimals
    assert math.isclose(t_quantile(0.975, None), 1.959964, abs_tol=1e-5)  # the normal
    assert math.isclose(t_quantile(0.995, 10), 3.169273, abs_tol=1e-4)  # a textbook value
    with pytest.raises(ValueError, match=r"p must be in \[0.5, 1\), got 1"):
        t_quantile(1, dof)


def test_claims_checked_together_fail_only_beyond_the_bound_widened_for_their_number():
    contradicted = Verdict("a < b", 5.0, 3.18, "<", dof=3)  # beyond its 95 % bound, on the wrong side
    with pytest.raises(AssertionError, match="CONTRADICTED"):
        contradicted.check()
    with pytest.raises(AssertionError, match="for 1 claims checked together"):  # alone, together is the same check
        check_together([contradicted])
    fine = [Verdict(f"claim {k}", -1.0, 0.5, "<", dof=3) for k in range(25)]
    check_together(fine + [contradicted])  # widened for 26: 3.18 -> about 10.35
    with pytest.raises(AssertionError, match="beyond 10.4,"):
        check_together(fine + [Verdict("a < b", 11.0, 3.18, "<", dof=3)])
    assert compare("x", torch.ones(4, dtype=F64), torch.arange(4, dtype=F64), "<", paired=True).dof == 3


def test_mean_se_against_its_formula():
    values = [1.0, 2.0, 4.0, 9.0]  # mean 4, sample variance (9 + 4 + 0 + 25) / 3
    mean, se = mean_se(torch.tensor(values))
    assert mean == 4.0 and math.isclose(se, math.sqrt(38 / 3 / 4), rel_tol=1e-12)
    assert mean_se(values) == (mean, se) and mean_se([3.5]) == (3.5, 0.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_se([])


def test_replicates_to_resolve_is_the_smallest_count_whose_t_bound_falls_below_the_difference():
    """Differences of mean 1 and sd 1 over 4 pairs: t_975(3) / 2 = 1.59 covers 1, so not resolved;
    t_975(K - 1) / sqrt(K) first drops below 1 at K = 7 (2.45 / 2.65 = 0.93; K = 6: 2.57 / 2.45 = 1.05)."""
    d = (
        torch.tensor([1.0, 1.0, 1.0, 1.0])
        + torch.tensor([-1.5, -0.5, 0.5, 1.5]) / torch.tensor([-1.5, -0.5, 0.5, 1.5]).std()
    )
    verdict = stats.compare("a < b", d, torch.zeros(4), ">", paired=True)
    assert verdict.sign == "~" and stats.replicates_to_resolve(verdict) == 7
    resolved = stats.compare("a < b", d + 3, torch.zeros(4), ">", paired=True)
    assert stats.replicates_to_resolve(resolved) == 4
    assert stats.replicates_to_resolve(stats.compare("a", torch.ones(3), torch.ones(3), "<", paired=True)) is None
    with pytest.raises(ValueError, match="paired replicates"):
        stats.replicates_to_resolve(stats.compare("a", d, torch.zeros(4), ">", paired=False))


def test_marginal_z_scores_are_standard_normal_for_draws_of_the_marginal_and_large_for_a_wrong_mean_or_variance():
    g = torch.Generator().manual_seed(0)
    alpha_t = torch.tensor([0.9, 0.5, 0.01], dtype=torch.float64)
    x0 = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)  # (P, D)
    noise = torch.randn(3, 2, 4000, 2, generator=g, dtype=torch.float64)
    x_t = alpha_t.sqrt()[:, None, None, None] * x0[None, :, None] + (1 - alpha_t).sqrt()[:, None, None, None] * noise
    z_mean, z_var = stats.marginal_z_scores(x_t, alpha_t, x0)
    assert z_mean.shape == z_var.shape == (3, 2, 2)
    assert z_mean.abs().max() < 4 and z_var.abs().max() < 4 and 0.3 < float(torch.cat([z_mean, z_var]).std()) < 2
    shifted, _ = stats.marginal_z_scores(x_t + 0.1, alpha_t, x0)  # a mean off by 0.1
    _, widened = stats.marginal_z_scores(x_t * 1.1, alpha_t, x0 * 1.1)  # variance off by a fifth, mean kept
    assert shifted.abs().min() > 4 and widened.abs().min() > 4
    with pytest.raises(ValueError, match="x_t must be"):
        stats.marginal_z_scores(x_t[0], alpha_t, x0)


def test_verdicts_print_as_a_table_with_the_outcome_and_the_replicates_an_unresolved_one_needs():
    left = torch.tensor([1.0, 2.0, 3.0, 4.0])
    verdicts = {
        "lower": compare("a < b", left, left + 1 + torch.tensor([0.1, -0.1, 0.1, -0.1]), "<", paired=True),
        "wrong way": compare("a > b", left, left + 1 + torch.tensor([0.1, -0.1, 0.1, -0.1]), ">", paired=True),
        "open": compare("a < b", left, left + torch.tensor([2.0, -1.0, 1.5, -1.5]), "<", paired=True),
        "missing": None,
    }
    header, *lines = stats.format_verdicts(verdicts).splitlines()
    assert header.split() == ["claim", "difference", "+-", "95", "%", "outcome"]
    assert lines[0].startswith("lower") and lines[0].endswith("resolved") and "-1" in lines[0].split()
    assert lines[1].endswith("CONTRADICTED")
    need = stats.replicates_to_resolve(verdicts["open"])
    assert need > 4 and lines[2].endswith(f"not resolved (about {need} replicates would resolve it)")
    assert lines[3].split() == ["missing", "not", "computed", "yet"]
