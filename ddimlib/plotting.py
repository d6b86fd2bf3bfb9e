"""Small plotting helpers shared by the notebooks (matplotlib only)."""

from __future__ import annotations

import io
import math

import torch


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> torch.Tensor:
    """Tile (N, 1, H, W) images in [-1, 1] into one (rows*(H+pad)-pad, nrow*(W+pad)-pad) array in [0, 1]."""
    images = images.detach().float().cpu().clamp(-1, 1)
    N, C, H, W = images.shape
    nrow = nrow or math.ceil(math.sqrt(N))
    rows = math.ceil(N / nrow)
    grid = torch.zeros(rows * (H + pad) - pad, nrow * (W + pad) - pad)  # 0: background (white in gray_r)
    for k in range(N):
        r, c = divmod(k, nrow)
        grid[r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = (images[k, 0] + 1) / 2
    return grid


def show_images(ax, images: torch.Tensor, nrow: int | None = None, title: str | None = None) -> None:
    """Draw an image grid on a matplotlib axis, without ticks."""
    ax.imshow(image_grid(images, nrow).numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)


def figure_png(fig, dpi: float | None = None) -> bytes:
    """A matplotlib figure as PNG bytes: a picture that shows the same in any notebook, whatever its backend."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def ode_paths_figure(eps_model, schedule, x_T: torch.Tensor, steps: int = 10):
    """DDIM at eta = 0 as Euler's method on Eq. 14, drawn for one-dimensional data: the slope field
    d x_bar / d sigma = eps(x, t) (x = sqrt(alpha_t) x_bar) with the paths from the (N, 1) `x_T`.

    (a) the whole path, x against log sigma, with all T steps; (b) the last stretch in x_bar, `steps` Euler steps
    (dots) over the T-step paths (thin). Returns the figure and the two trajectories, (all T steps, `steps` steps)."""
    import matplotlib.pyplot as plt

    from ddimlib.ode import ode_sigma
    from ddimlib.sampling import sample

    alpha = schedule.alpha
    sigma_of = ode_sigma(alpha)  # sigma(t) for t = 0..T

    def slope(x, t):  # d x_bar / d sigma = eps(x, t)
        return eps_model(x[:, None], torch.full((len(x),), t))[:, 0]

    def steps_at(sigmas):  # for each of `sigmas`, the first timestep whose sigma reaches it (T at most), once each
        return torch.searchsorted(sigma_of, sigmas).clamp(max=schedule.T).unique().tolist()

    def arrows(ax, u, y, du, dy, span):  # the tangent (du, dy) at (u, y), one length on screen
        length = ((du / span[0]) ** 2 + (dy / span[1]) ** 2).sqrt() / 0.035
        style = dict(angles="xy", scale_units="xy", scale=1, color="0.55", width=0.004, zorder=1)
        ax.quiver(u, y, du / length, dy / length, **style)

    _, fine = sample(eps_model, schedule, x_T, schedule.T, progress=False, return_trajectory=True)
    _, coarse = sample(eps_model, schedule, x_T, steps, progress=False, return_trajectory=True)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    span = (4.4, 6.4)  # (a): u = log10 sigma in [-2.1, 2.3], x in [-3.2, 3.2]
    for t in steps_at(torch.logspace(-1.9, 2.1, 14, dtype=alpha.dtype)):
        s, x = sigma_of[t].item(), torch.linspace(-2.7, 2.7, 13, dtype=alpha.dtype)
        dx_du = math.log(10) * s * (slope(x, t) / math.sqrt(s**2 + 1) - s * x / (s**2 + 1))  # chain rule, x in u
        arrows(ax[0], torch.full_like(x, math.log10(s)), x, -torch.ones_like(x), -dx_du, span)  # towards smaller sigma
    on_log_axis = fine.tau >= 1
    ax[0].plot(sigma_of[fine.tau[on_log_axis]].log10(), fine.x[on_log_axis, :, 0], lw=1.2, zorder=2)
    ax[0].set(
        xlim=(2.3, -2.1),
        ylim=(-3.2, 3.2),
        xticks=[2, 1, 0, -1, -2],
        xticklabels=["100", "10", "1", "0.1", "0.01"],
        xlabel=r"$\sigma$ (log scale; sampling runs left to right)",
        ylabel=r"$x = \sqrt{\alpha}\,\bar x$",
        title=f"(a) the whole path, {schedule.T:,} steps",
    )
    span = (2.3, 8.0)  # (b): sigma in [-0.05, 2.25], x_bar in [-4, 4]
    for t in steps_at(torch.linspace(0.1, 2.1, 12, dtype=alpha.dtype)):
        s, x_bar = sigma_of[t].item(), torch.linspace(-3.7, 3.7, 15, dtype=alpha.dtype)
        dx_bar = slope(x_bar / math.sqrt(s**2 + 1), t)
        arrows(ax[1], torch.full_like(x_bar, s), x_bar, -torch.ones_like(x_bar), -dx_bar, span)
    for path, style in [(fine, dict(lw=1, alpha=0.5)), (coarse, dict(marker="o", ms=3, lw=1.2))]:
        shown = sigma_of[path.tau] <= 2.3
        x_bar_path = path.x[shown, :, 0] / alpha[path.tau[shown]].sqrt()[:, None]
        for k in range(len(x_T)):
            ax[1].plot(sigma_of[path.tau[shown]], x_bar_path[:, k], color=f"C{k}", zorder=2, **style)
    ax[1].set(
        xlim=(2.25, -0.05),
        ylim=(-4, 4),
        xlabel=r"$\sigma$ (sampling runs left to right)",
        ylabel=r"$\bar x = x / \sqrt{\alpha}$",
        title=f"(b) the last stretch: {steps} Euler steps (dots), {schedule.T:,} (thin)",
    )
    fig.tight_layout()
    return fig, fine, coarse
