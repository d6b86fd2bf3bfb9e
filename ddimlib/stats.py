"""Statistical verdicts that say "resolved" or "not resolved at this sample size", and fail only on a claim
that the data contradict.

A notebook claim such as "FD(eta = 0) < FD(eta = 1) at S = 10" is read from replicates: the difference
of the means, with a 95 % half-width from Student's t (paired where both cells share their x_T, Welch's
otherwise). Three outcomes:

- resolved: the difference lies beyond its half-width in the claimed direction;
- not resolved at this sample size: the half-width covers zero (a smaller sample, e.g. quick mode,
  cannot tell; the notebook says so instead of failing);
- contradicted: beyond its half-width in the other direction. Only this fails `Verdict.check`.

Many claims read from one run are checked together with `check_together`, which widens each bound for
their number (Bonferroni), so that a run of k true claims fails no more often than one check does.

Used by notebooks/03_training.ipynb to 05_ode_and_encoding.ipynb; ddimlib.metrics supplies the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ddimlib._validate import require_choice

# Student's t, 0.975 quantile, by degrees of freedom (two-sided 95 %); beyond 30 dof we keep 30's value (conservative)
T_975 = {
    1: 12.71,
    2: 4.30,
    3: 3.18,
    4: 2.78,
    5: 2.57,
    6: 2.45,
    7: 2.36,
    8: 2.31,
    9: 2.26,
    10: 2.23,
    11: 2.20,
    12: 2.18,
    13: 2.16,
    14: 2.14,
    15: 2.13,
    16: 2.12,
    17: 2.11,
    18: 2.10,
    19: 2.09,
    20: 2.09,
    22: 2.07,
    24: 2.06,
    26: 2.06,
    28: 2.05,
    30: 2.04,
}
DIRECTIONS = ("<", ">")


def t_975(dof: float) -> float:
    """The 0.975 quantile of Student's t with `dof` degrees of freedom (rounded down to a tabulated value:
    conservative)."""
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    return T_975[max(k for k in T_975 if k <= dof)]


@dataclass(frozen=True)
class Verdict:
    """A claim "left `expected` right" read from data: difference = left - right, bound = its 95 % half-width."""

    claim: str
    difference: float
    bound: float
    expected: str  # "<" or ">"
    dof: float | None = None  # the t distribution's degrees of freedom behind `bound`; None: the normal

    @property
    def sign(self) -> str:
        """ "<" or ">" where the difference is resolved, "~" where it is not."""
        return "<" if self.difference < -self.bound else ">" if self.difference > self.bound else "~"

    @property
    def resolved(self) -> bool:
        return self.sign == self.expected

    @property
    def contradicted(self) -> bool:
        return self.sign not in (self.expected, "~")

    @property
    def status(self) -> str:
        return (
            "resolved"
            if self.resolved
            else "CONTRADICTED"
            if self.contradicted
            else "not resolved at this sample size"
        )

    def __str__(self) -> str:
        return f"{self.claim}: {self.difference:+.3g} +- {self.bound:.3g} (95 %), {self.status}"

    def check(self) -> Verdict:
        """Raise AssertionError if the data contradict the claim; an unresolved claim passes."""
        if self.contradicted:
            raise AssertionError(str(self))
        return self


def mean_se(values) -> tuple[float, float]:
    """The mean of independent values (a 1-D tensor or a list) and its standard error sd / sqrt(n), with n - 1 in
    the sd; a single value has no spread to estimate and gets standard error 0."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if len(values) == 0:
        raise ValueError("values must hold at least one value, got none")
    se = float(values.std()) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return float(values.mean()), se


def compare(claim: str, left: torch.Tensor, right: torch.Tensor, expected: str, paired: bool) -> Verdict:
    """The claim mean(left) `expected` mean(right) from replicates (1-D tensors).

    paired: replicate k of both came from the same x_T (or noise), so the differences d_k are tested
    (t with n - 1 dof); otherwise Welch's unequal-variance t (Welch-Satterthwaite dof)."""
    expected = require_choice("expected", expected, DIRECTIONS)
    left, right = (
        torch.as_tensor(left, dtype=torch.float64).flatten(),
        torch.as_tensor(right, dtype=torch.float64).flatten(),
    )
    if paired:
        if len(left) != len(right) or len(left) < 2:
            raise ValueError(f"paired replicates must have the same length >= 2, got {len(left)} and {len(right)}")
        d = left - right
        return Verdict(
            claim, float(d.mean()), t_975(len(d) - 1) * float(d.std()) / len(d) ** 0.5, expected, len(d) - 1
        )
    if len(left) < 2 or len(right) < 2:
        raise ValueError(f"unpaired comparisons need >= 2 replicates on each side, got {len(left)} and {len(right)}")
    var_left, var_right = float(left.var()) / len(left), float(right.var()) / len(right)
    se = (var_left + var_right) ** 0.5
    dof = (
        se**4 / (var_left**2 / (len(left) - 1) + var_right**2 / (len(right) - 1))
        if se > 0
        else len(left) + len(right) - 2
    )
    return Verdict(claim, float(left.mean() - right.mean()), t_975(dof) * se, expected, dof)


def _quantile_975(dof: float | None) -> float:
    """The 0.975 quantile a verdict's bound is built with: Student's t (tabulated) for `dof`, the normal's for None."""
    return 1.96 if dof is None else t_975(dof)


def from_estimate(claim: str, difference: float, se: float, expected: str, dof: float | None = None) -> Verdict:
    """The claim difference `expected` 0 from an estimate and its standard error (t with `dof`, or the normal 1.96 if
    None)."""
    expected = require_choice("expected", expected, DIRECTIONS)
    return Verdict(claim, float(difference), _quantile_975(dof) * float(se), expected, dof)


def t_quantile(p: float, dof: float | None) -> float:
    """The p quantile of Student's t with `dof` degrees of freedom (the normal's if None), for 0.5 <= p < 1:
    bisection on the integrated density (torch.distributions), to about 1e-6."""
    if not 0.5 <= p < 1:
        raise ValueError(f"p must be in [0.5, 1), got {p}")
    if dof is None:
        return float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(p, dtype=torch.float64)))
    density = torch.distributions.StudentT(torch.tensor(float(dof), dtype=torch.float64))

    def cdf(t: float) -> float:
        grid = torch.linspace(0, t, 20_001, dtype=torch.float64)
        return 0.5 + float(torch.trapezoid(density.log_prob(grid).exp(), grid))

    low, high = 0.0, 1.0
    while cdf(high) < p:
        high *= 2
    while high - low > 1e-7 * high:
        low, high = ((low + high) / 2, high) if cdf((low + high) / 2) < p else (low, (low + high) / 2)
    return (low + high) / 2


def check_together(verdicts: list[Verdict]) -> list[Verdict]:
    """Check k claims read from one run at once: raise AssertionError only for a claim contradicted beyond its bound
    widened for k (Bonferroni: the t quantile at 1 - 0.025 / k instead of 0.975). Checked one by one, 26 true claims
    at their boundary would fail a run about 26 times as often as one; together, no more often than one."""
    k = len(verdicts)
    for v in verdicts:
        if v.contradicted:
            widened = v.bound / _quantile_975(v.dof) * t_quantile(1 - 0.025 / k, v.dof)
            if abs(v.difference) > widened:
                raise AssertionError(f"{v}; beyond {widened:.3g}, the bound for {k} claims checked together")
    return verdicts


def replicates_to_resolve(verdict: Verdict, limit: int = 10_000) -> int | None:
    """The number of paired replicates at which a verdict read from k = verdict.dof + 1 of them would be resolved (or
    contradicted), were its difference and the spread of its differences to stay as measured: the smallest K with
    t_975(K - 1) s / sqrt(K) < |difference|, s the differences' sd behind the bound. None for no difference (or one
    that `limit` replicates would not resolve); a verdict already resolved or contradicted gives its own k."""
    if verdict.dof is None or verdict.dof != int(verdict.dof):
        raise ValueError(f"verdict must come from paired replicates (integer dof), got dof {verdict.dof}")
    k = int(verdict.dof) + 1
    sd = verdict.bound * k**0.5 / t_975(k - 1)
    if verdict.sign != "~":
        return k
    return next((n for n in range(k + 1, limit + 1) if t_975(n - 1) * sd / n**0.5 < abs(verdict.difference)), None)


def marginal_z_scores(x_t: torch.Tensor, alpha_t: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z-scores of Monte Carlo draws of x_t against the marginal q(x_t | x0) = N(sqrt(alpha_t) x0, (1 - alpha_t) I):
    x_t (K, P, N, D), N draws at each of K timesteps from each of P starting points x0 (P, D); alpha_t (K,).

    Returns (z of the sample mean, z of the sample variance), each (K, P, D): the difference from the true value over
    its standard error, sqrt(var / N) for the mean and sqrt((m4 - var^2) / N) for the variance (m4: the sample fourth
    central moment). Each is about N(0, 1) when the draws have that marginal."""
    if x_t.ndim != 4 or x0.shape != (x_t.shape[1], x_t.shape[3]) or alpha_t.shape != (x_t.shape[0],):
        raise ValueError(
            f"x_t must be (K, P, N, D) with x0 (P, D) and alpha_t (K,), got {tuple(x_t.shape)}, {tuple(x0.shape)} "
            f"and {tuple(alpha_t.shape)}"
        )
    n = x_t.shape[2]
    mean, var = x_t.mean(2), x_t.var(2)
    m4 = ((x_t - mean[:, :, None]) ** 4).mean(2)
    true_mean = alpha_t.sqrt()[:, None, None] * x0
    true_var = (1 - alpha_t)[:, None, None]
    return (mean - true_mean) / (var / n).sqrt(), (var - true_var) / ((m4 - var**2) / n).sqrt()


def format_verdicts(verdicts: dict) -> str:
    """Verdicts as a table, one line each: its name (the key), the claim, the difference with its 95 % half-width, and
    the outcome. An unresolved verdict from paired replicates adds how many replicates would resolve it
    (`replicates_to_resolve`); a verdict not computed (None) says so."""
    width = max(len(str(name)) for name in verdicts)
    claim_width = max((len(v.claim) for v in verdicts.values() if v is not None), default=5)
    lines = [f"{'':{width}s}  {'claim':{claim_width}s}  {'difference':>10s} {'+- 95 %':8s}  outcome"]
    for name, v in verdicts.items():
        if v is None:
            lines.append(f"{name!s:{width}s}  {'not computed yet':{claim_width}s}")
            continue
        outcome = "resolved" if v.resolved else "CONTRADICTED" if v.contradicted else "not resolved"
        if v.sign == "~" and v.dof is not None and v.dof == int(v.dof) and (need := replicates_to_resolve(v)):
            outcome += f" (about {need} replicates would resolve it)"
        lines.append(f"{name!s:{width}s}  {v.claim:{claim_width}s}  {v.difference:+10.3g} {v.bound:<8.3g}  {outcome}")
    return "\n".join(lines)
