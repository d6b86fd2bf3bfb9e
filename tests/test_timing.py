"""The timing helpers: the median of timed calls, network-only evaluation order, a least-squares line."""

import itertools

import pytest
import torch

from ddimlib import timing
from ddimlib.schedules import timesteps


def test_median_seconds_times_each_call_after_the_warmup(monkeypatch):
    calls = []
    ticks = itertools.chain([0.0, 9.0, 10.0, 13.0, 20.0, 21.0], itertools.count(100.0))  # start/stop pairs: 9, 3, 1 s
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    result = timing.median_seconds(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    assert result == pytest.approx(3.0)


def test_network_only_calls_the_model_once_per_step_from_T_down():
    seen = []

    def model(x_t, t):
        seen.append(int(t[0]))
        assert t.shape == (x_t.shape[0],) and t.dtype == torch.int64
        return torch.zeros_like(x_t)

    tau = timesteps(5, 1000, "quadratic")
    timing.network_only(model, torch.zeros(3, 2), tau)
    assert seen == list(reversed(tau.tolist()))


def test_fit_line_is_exact_on_a_line_and_r2_is_the_squared_correlation():
    x = torch.arange(10, dtype=torch.float64)
    slope, intercept, r2 = timing.fit_line(x, 0.25 * x + 3.0)
    assert slope == pytest.approx(0.25, abs=1e-12) and intercept == pytest.approx(3.0, abs=1e-12) and r2 == pytest.approx(1.0, abs=1e-12)
    y = 0.25 * x + torch.tensor([0.3, -0.2, 0.5, -0.7, 0.1, 0.0, 0.4, -0.4, 0.2, -0.1], dtype=torch.float64)
    _, _, r2 = timing.fit_line(x.tolist(), y.tolist())
    corr = torch.corrcoef(torch.stack([x, y]))[0, 1]
    assert r2 == pytest.approx(float(corr**2), abs=1e-12) and r2 < 1


def test_fit_line_refuses_too_few_or_constant_points():
    with pytest.raises(ValueError, match="length >= 3"):
        timing.fit_line([1, 2], [1, 2])
    with pytest.raises(ValueError, match="constant"):
        timing.fit_line([2, 2, 2], [1, 2, 3])


def test_interleaved_medians_alternates_the_callables_after_a_warmup(monkeypatch):
    order = []
    ticks = itertools.chain([0.0, 5.0, 10.0, 11.0, 20.0, 27.0, 30.0, 32.0, 40.0, 41.0, 50.0, 53.0], itertools.count(100.0))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    result = timing.interleaved_medians({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3)
    assert order == ["a", "b"] + ["a", "b"] * 3
    assert result == {"a": pytest.approx(5.0), "b": pytest.approx(2.0)}  # a: 5, 7, 1 s; b: 1, 2, 3 s
