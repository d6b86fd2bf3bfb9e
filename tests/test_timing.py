"""The timing helpers: interleaved medians, network-only evaluation order, the in-run overhead split, a least-squares
line."""

import itertools

import pytest
import torch

from ddimlib import timing
from ddimlib.schedules import timesteps


class FakeClock:
    """perf_counter that advances only when told: `now` seconds since the start."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_network_clock_adds_up_the_time_inside_the_model_calls(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)

    def model(x_t, t):
        clock.now += 2.0  # each call costs 2 s
        return x_t

    timed = timing.NetworkClock(model)
    x = torch.zeros(3, 2)
    for _ in range(3):
        clock.now += 0.5  # work outside the model
        assert timed(x, torch.ones(3, dtype=torch.int64)) is x
    assert timed.calls == 3 and timed.seconds == pytest.approx(6.0)


def test_overhead_split_is_the_median_over_runs_after_a_warmup(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    outside = iter([100.0, 1.0, 3.0, 2.0])  # seconds outside the model per run; the first run is the warm-up

    def model(x_t, t):
        clock.now += 10.0
        return x_t

    def run(eps_model):
        clock.now += next(outside)
        for _ in range(2):
            eps_model(torch.zeros(1, 1), torch.ones(1, dtype=torch.int64))

    split = timing.overhead_split(run, model, repeats=3)
    assert split.network == pytest.approx(20.0) and split.total == pytest.approx(22.0)
    assert split.overhead == pytest.approx(0.1)  # runs: 1/20, 3/20, 2/20; the warm-up's 100 s is not counted
    with pytest.raises(ValueError, match="must call the model it is given"):
        timing.overhead_split(lambda eps_model: None, model, repeats=1)


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
    assert (
        slope == pytest.approx(0.25, abs=1e-12)
        and intercept == pytest.approx(3.0, abs=1e-12)
        and r2 == pytest.approx(1.0, abs=1e-12)
    )
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
    ticks = itertools.chain(
        [0.0, 5.0, 10.0, 11.0, 20.0, 27.0, 30.0, 32.0, 40.0, 41.0, 50.0, 53.0], itertools.count(100.0)
    )
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))
    result = timing.interleaved_medians({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3)
    assert order == ["a", "b"] + ["a", "b"] * 3
    assert result == {"a": pytest.approx(5.0), "b": pytest.approx(2.0)}  # a: 5, 7, 1 s; b: 1, 2, 3 s
