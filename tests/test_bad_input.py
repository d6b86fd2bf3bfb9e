"""Bad input gets a ValueError or TypeError that names the argument, the value and what is allowed."""

import pytest
import torch

from ddimlib.forward import q_posterior_mean_std, q_sample, sample_forward_chain
from ddimlib.ode import decode, encode, slerp
from ddimlib.oracle import GaussianMixture
from ddimlib.sampling import ddim_step, ddpm_sample, sample, sigma_eta
from ddimlib.schedules import Schedule, linear_schedule, resolve_tau, schedule_from_betas, timesteps

SCHEDULE = linear_schedule()
X = torch.zeros(4, 2, dtype=torch.float64)


def zero_model(x_t, t):
    return torch.zeros_like(x_t)


def nan_after_three_calls():
    calls = []

    def model(x_t, t):
        calls.append(1)
        return torch.full_like(x_t, float("nan")) if len(calls) >= 3 else torch.zeros_like(x_t)

    return model


def with_nan(x):
    x = x.clone()
    x[1, 1] = float("nan")
    return x


# (id, callable, expected exception, regex that the message must match: argument, value, what is allowed)
CASES = [
    (
        "eta negative",
        lambda: sample(zero_model, SCHEDULE, X, 10, eta=-0.1),
        ValueError,
        r"eta must be in \[0.0, 1.0\], got -0.1",
    ),
    ("eta above 1", lambda: sigma_eta(0.5, 0.6, 1.5), ValueError, r"eta must be in \[0.0, 1.0\], got 1.5"),
    (
        "eta not a number",
        lambda: sample(zero_model, SCHEDULE, X, 10, eta="0"),
        TypeError,
        r"eta must be a real number, got '0'",
    ),
    (
        "sigma too large",
        lambda: ddim_step(X, X, 0.5, 0.6, 0.7),
        ValueError,
        r"sigma_t must satisfy 0 <= sigma_t\^2 <= 1 - alpha_prev.*0.7",
    ),
    (
        "sigma negative",
        lambda: q_posterior_mean_std(X, X, 0.5, 0.6, -0.1),
        ValueError,
        r"sigma_t must be finite and >= 0, got -0.1",
    ),
    (
        "steps zero",
        lambda: sample(zero_model, SCHEDULE, X, 0),
        ValueError,
        r"steps must be an integer in \[1, 1000\], got 0",
    ),
    ("steps above T", lambda: timesteps(1001, 1000), ValueError, r"steps must be an integer in \[1, 1000\], got 1001"),
    (
        "steps not integer",
        lambda: sample(zero_model, SCHEDULE, X, 12.5),
        TypeError,
        r"steps must be an integer, got 12.5",
    ),
    ("steps a bool", lambda: timesteps(True, 1000), TypeError, r"steps must be an integer, got True"),
    (
        "tau not increasing",
        lambda: sample(zero_model, SCHEDULE, X, None, tau=[10, 5, 1000]),
        ValueError,
        r"tau must be strictly increasing; got \[10, 5, 1000\]",
    ),
    (
        "tau out of range",
        lambda: resolve_tau([0, 500, 1000], None, 1000),
        ValueError,
        r"tau must lie in \[1, T=1000\] and end at T; got first 0",
    ),
    (
        "tau not ending at T",
        lambda: decode(zero_model, SCHEDULE, X, None, tau=[100, 900]),
        ValueError,
        r"end at T; got first 100 and last 900",
    ),
    (
        "unknown decode scheme",
        lambda: decode(zero_model, SCHEDULE, X, 10, scheme="sigma^2"),
        ValueError,
        r"scheme must be one of .*'sigma_squared'.*got 'sigma\^2'",
    ),
    (
        "tau of floats",
        lambda: resolve_tau([1.5, 1000.0], None, 1000),
        TypeError,
        r"tau must be 'linear', 'quadratic' or a non-empty 1-D list of integers",
    ),
    (
        "tau length differs from steps",
        lambda: resolve_tau([10, 1000], 3, 1000),
        ValueError,
        r"steps must equal len\(tau\) = 2.*got steps=3",
    ),
    (
        "unknown tau kind",
        lambda: sample(zero_model, SCHEDULE, X, 10, tau="cubic"),
        ValueError,
        r"kind must be one of 'linear', 'quadratic'; got 'cubic'",
    ),
    (
        "unknown variance",
        lambda: sample(zero_model, SCHEDULE, X, 10, variance="large"),
        ValueError,
        r"variance must be one of 'eta', 'hat'; got 'large'",
    ),
    (
        "x_T with NaN",
        lambda: sample(zero_model, SCHEDULE, with_nan(X), 10),
        ValueError,
        r"x_T contains 1 NaN or infinite values",
    ),
    (
        "x_T not a tensor",
        lambda: ddpm_sample(zero_model, SCHEDULE, [[0.0, 0.0]]),
        TypeError,
        r"x_T must be a torch.Tensor, got list",
    ),
    (
        "x_T integer",
        lambda: encode(zero_model, SCHEDULE, torch.zeros(4, 2, dtype=torch.int64), 10),
        TypeError,
        r"x_T must be a floating-point tensor, got dtype torch.int64",
    ),
    (
        "x_T without batch",
        lambda: sample(zero_model, SCHEDULE, torch.zeros(3), 10),
        ValueError,
        r"x_T must have shape \(B, ...\).*got shape \(3,\)",
    ),
    (
        "model wrong shape",
        lambda: sample(lambda x, t: x[:, :1], SCHEDULE, X, 10),
        ValueError,
        r"eps_model returned \(4, 1\) at step 1 of 10 \(t=1000\); it must return a tensor of x_t's shape \(4, 2\)",
    ),
    (
        "model NaN names step",
        lambda: sample(nan_after_three_calls(), SCHEDULE, X, 10),
        ValueError,
        r"eps_model output at step 3 of 10 \(t=800\) contains NaN or infinite values .*\(8 of the loop's 10 model "
        r"outputs were not; this is the first\)",
    ),
    (
        "model not callable",
        lambda: sample("unet", SCHEDULE, X, 10),
        TypeError,
        r"eps_model must be callable as eps_model\(x_t, t\), got str",
    ),
    (
        "betas above 1",
        lambda: schedule_from_betas(torch.tensor([0.1, 1.2])),
        ValueError,
        r"betas must all lie in the open interval \(0, 1\); got values such as \[1.2",
    ),
    (
        "betas zero",
        lambda: schedule_from_betas(torch.tensor([0.0, 0.1])),
        ValueError,
        r"betas must all lie in the open interval \(0, 1\); got values such as \[0.0\]",
    ),
    ("T zero", lambda: linear_schedule(T=0), ValueError, r"T must be an integer in >= 1, got 0"),
    (
        "alpha not starting at 1",
        lambda: Schedule(torch.tensor([0.9, 0.5], dtype=torch.float64)),
        ValueError,
        r"alpha\[0\] must be exactly 1.*got 0.9",
    ),
    (
        "alpha float32",
        lambda: Schedule(torch.tensor([1.0, 0.5])),
        ValueError,
        r"alpha must be a 1-D float64 tensor.*got dtype torch.float32",
    ),
    ("alpha_t outside (0, 1]", lambda: q_sample(X, 1.5, X), ValueError, r"alpha_t must lie in \(0, 1\].*got 1.5"),
    (
        "noise dtype mismatch",
        lambda: q_sample(X, 0.5, X.float()),
        TypeError,
        r"noise has dtype torch.float32 but x0 has dtype torch.float64; they must match",
    ),
    (
        "noise device mismatch",
        lambda: q_sample(X, 0.5, torch.zeros(4, 2, dtype=torch.float64, device="meta")),
        ValueError,
        r"noise is on device meta but x0 is on cpu; they must match",
    ),
    (
        "noise shape mismatch",
        lambda: q_sample(X, 0.5, torch.zeros(4, 3, dtype=torch.float64)),
        ValueError,
        r"noise has shape \(4, 3\) but x0 has shape \(4, 2\)",
    ),
    (
        "chain sigma wrong shape",
        lambda: sample_forward_chain(X, SCHEDULE, torch.zeros(10)),
        ValueError,
        r"sigma must have shape \(T\+1,\) = \(1001,\), got \(10,\)",
    ),
    (
        "mixture weights",
        lambda: GaussianMixture(torch.zeros(2, 1), torch.ones(2), torch.tensor([0.5, 0.6])),
        ValueError,
        r"weights must be positive and sum to 1, got sum 1.1",
    ),
    (
        "slerp shapes",
        lambda: slerp(X, torch.zeros(4, 3, dtype=torch.float64), 0.5),
        ValueError,
        r"z1 has shape \(4, 3\) but z0 has shape \(4, 2\)",
    ),
    ("slerp lam", lambda: slerp(X, X, 1.5), ValueError, r"lam must be in \[0.0, 1.0\], got 1.5"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_message(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_finite_check_passes_finite_values_whose_sum_overflows_and_finds_any_bad_value():
    from ddimlib._validate import require_finite

    big = torch.full((4, 2), 6e4, dtype=torch.float16)  # finite, but their float16 sum overflows to inf
    assert not torch.isfinite(big.sum())
    assert require_finite("x", big) is big
    for bad in (float("nan"), float("inf"), -float("inf")):
        for x in (big.clone(), torch.zeros(4, 2)):
            x[3, 1] = bad
            with pytest.raises(ValueError, match=r"x contains 1 NaN or infinite values; all must be finite"):
                require_finite("x", x)
