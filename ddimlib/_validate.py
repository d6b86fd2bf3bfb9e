"""Argument checks shared by the public functions of ddimlib.

Every check raises ValueError or TypeError with a message that names the argument, the value that
was received and what is allowed, so that a student who passes the wrong thing learns what to pass.
"""

from __future__ import annotations

import numbers

import torch


def require_tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def require_floating(name: str, value) -> torch.Tensor:
    require_tensor(name, value)
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def require_finite(name: str, value: torch.Tensor, where: str = "") -> torch.Tensor:
    if value.device.type == "meta":  # PyTorch's stand-in device holds shapes, no values: nothing to check
        return value
    # A finite sum proves every element finite (one NaN or infinity makes the sum NaN or infinite), and
    # one reduction is several times cheaper than isfinite over every element; only when the sum is
    # not finite (a bad element, or finite values whose sum overflows) are the elements examined.
    if not torch.isfinite(value.sum()) and not torch.isfinite(value).all():
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name}{where} contains {bad} NaN or infinite values; all must be finite")
    return value


def require_same_kind(name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """Same dtype and device as `ref`, so that no silent cast or transfer hides a mistake."""
    if value.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {value.dtype} but {ref_name} has dtype {ref.dtype}; they must match")
    if value.device != ref.device:
        raise ValueError(f"{name} is on device {value.device} but {ref_name} is on {ref.device}; they must match")


def require_same_shape(name: str, value: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if value.shape != ref.shape:
        raise ValueError(
            f"{name} has shape {tuple(value.shape)} but {ref_name} has shape {tuple(ref.shape)}; they must match"
        )


def require_int(name: str, value, low: int, high: int | None = None) -> int:
    """An integer (not a bool, not a float) in [low, high]."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer in {allowed}, got {value}")
    return int(value)


def require_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def require_in_range(name: str, value, low: float, high: float) -> float:
    """A real number in the closed interval [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not (low <= number <= high):  # also rejects NaN
        raise ValueError(f"{name} must be in [{low}, {high}], got {number}")
    return number


def require_alpha(name: str, alpha) -> None:
    """DDIM's alpha_t (cumulative) must lie in (0, 1]."""
    values = torch.as_tensor(alpha)
    if not (torch.isfinite(values).all() and (values > 0).all() and (values <= 1).all()):
        raise ValueError(f"{name} must lie in (0, 1] (DDIM's cumulative alpha_t), got {values.tolist()}")


def require_sigma(sigma_t, alpha_prev) -> None:
    """Eq. 7 needs 1 - alpha_{t-1} - sigma_t^2 >= 0; a float64 rounding slack of 1e-12 is allowed."""
    sigma_t = torch.as_tensor(sigma_t, dtype=torch.float64)
    alpha_prev = torch.as_tensor(alpha_prev, dtype=torch.float64)
    if not torch.isfinite(sigma_t).all() or (sigma_t < 0).any():
        raise ValueError(f"sigma_t must be finite and >= 0, got {sigma_t.tolist()}")
    if (sigma_t**2 > 1 - alpha_prev + 1e-12).any():
        raise ValueError(
            f"sigma_t must satisfy 0 <= sigma_t^2 <= 1 - alpha_prev (DDIM Eq. 7); got sigma_t = {sigma_t.tolist()} "
            f"with 1 - alpha_prev = {(1 - alpha_prev).tolist()}"
        )
