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


def table1_figure(cells: dict, floor_mean: float, title: str, paper: dict, paper_steps=(10, 20, 50, 100, 1000)):
    """Our Table 1 beside the paper's, as two log-log panels against S: (left) each row's FD as a multiple of the data
    floor, with error bars, from `cells` {(row, S): (mean FD, its error)}; (right) the paper's CIFAR-10 FID, from
    `paper` {row: FID at each of `paper_steps`}, for the rows it has. A row keeps its colour in both panels."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for k, row in enumerate(dict.fromkeys(row for row, _ in cells)):
        steps = sorted(s for r, s in cells if r == row)
        means, errors = zip(*(cells[row, s] for s in steps))
        style = dict(marker="o", color=f"C{k}", label=row)
        axes[0].errorbar(steps, [m / floor_mean for m in means], [e / floor_mean for e in errors], capsize=3, **style)
        if row in paper:
            axes[1].plot(paper_steps, paper[row], **style)
    axes[0].axhline(1, color="k", lw=0.8)
    axes[0].set(title=title, ylabel="FD / floor")
    axes[1].set(title="CIFAR-10 (the paper's Table 1): FID", ylabel="FID")
    for ax in axes:
        ax.set(xscale="log", yscale="log", xlabel="S = dim(tau)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def regime_figure(verdicts: dict[str, dict]):
    """The map of when eta = 0 wins (`ddimlib.results.regime_verdicts`): per model, the mean over replicates of
    FD(eta = 1) / FD(eta = 0) against S, with its standard error; above 1 eta = 0 wins."""
    import matplotlib.pyplot as plt

    from ddimlib.stats import mean_se

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, (name, v) in enumerate(verdicts.items()):
        steps = sorted(v["ratios"])
        ratios = [mean_se(v["ratios"][s]) for s in steps]
        ax.errorbar(
            steps, [m for m, _ in ratios], [se for _, se in ratios], marker="o", capsize=3, color=f"C{k}", label=name
        )
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xscale="log", xlabel="S = dim(tau)", ylabel="FD(eta = 1) / FD(eta = 0)")
    ax.set_title("above 1: eta = 0 wins; below 1: eta = 1 wins")
    ax.legend(fontsize=8)
    return fig


def scatter_panels(panels: dict, limit: float = 2.8):
    """2-D point sets side by side, one panel each, on equal square axes [-limit, limit]^2: `panels` {title: (N, 2)
    points}; the first panel (the data) in black, the others in blue."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.4), sharex=True, sharey=True, squeeze=False)
    for k, (ax, (title, points)) in enumerate(zip(axes[0], panels.items())):
        ax.scatter(points[:, 0], points[:, 1], s=1, color="k" if k == 0 else "C0")
        ax.set(xlabel="$x_1$", aspect="equal", xlim=(-limit, limit), ylim=(-limit, limit))
        ax.set_title(title, fontsize=10)
    axes[0, 0].set_ylabel("$x_2$")
    fig.tight_layout()
    return fig


def convergence_figure(steps, errors: dict, title: str, ylabel: str = "mean distance to the reference", ax=None):
    """Errors against the number of steps on log-log axes, one curve per entry of `errors` {label: error at each of
    `steps`}, with a dashed line of slope -1 through the first curve's middle point: a first-order method runs parallel
    to it. Draws on `ax` when given (a panel of a larger figure), else on a new figure; returns the axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    for (label, values), marker in zip(errors.items(), "osd^v"):
        ax.loglog(steps, values, marker + "-", label=label)
    middle, first = len(steps) // 2, next(iter(errors.values()))
    ax.loglog(steps, [first[middle] * steps[middle] / s for s in steps], "k--", lw=0.8, label="slope -1")
    ax.set(xlabel="S (network evaluations)", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return ax


def marginals_figure(chains: dict, t_check: torch.Tensor, alpha: torch.Tensor, x0: torch.Tensor, n: int):
    """Monte Carlo draws of x_t against the marginal q(x_t | x0) = N(sqrt(alpha_t) x0, (1 - alpha_t) I): per process
    ({eta: chains (T+1, B, D)}, the first n chains starting from x0 (D,)), the sample mean and variance of the first
    coordinate at the timesteps `t_check`, with 4 standard errors, over the true curves."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2)
    t_axis = torch.arange(len(alpha))
    for k, (eta, chain) in enumerate(chains.items()):
        x_t = chain[t_check, :n, 0]  # (len(t_check), n)
        mean, var, shift, style = x_t.mean(1), x_t.var(1), t_check + 6 * k, "os^v"[k % 4]
        ax[0].errorbar(shift, mean, yerr=4 * x_t.std(1) / math.sqrt(n), fmt=style, ms=3, label=rf"$\eta$={eta}")
        ax[1].errorbar(shift, var, yerr=4 * var * math.sqrt(2 / n), fmt=style, ms=3)
    ax[0].plot(t_axis, alpha.sqrt() * x0[0], "k", lw=1, label=r"$\sqrt{\alpha_t}\,x_0$")
    ax[1].plot(t_axis, 1 - alpha, "k", lw=1, label=r"$1-\alpha_t$")
    ax[0].set(title="sample mean ± 4 SE", xlabel="t")
    ax[1].set(title="sample variance ± 4 SE", xlabel="t")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def loss_figure(losses: torch.Tensor, window: int, title: str):
    """A training run's loss per step (faint) and its running mean over `window` steps, on a log axis."""
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6, 3))
    ax.semilogy(losses, lw=0.5, alpha=0.4, label="per step")
    ax.semilogy(range(window - 1, len(losses)), losses.unfold(0, window, 1).mean(1), label=f"mean of {window}")
    ax.set(xlabel="step", ylabel=r"$L_\mathrm{simple}$", title=title)
    ax.legend()
    return ax
