"""The image-grid helper lays images out row by row and maps [-1, 1] to [0, 1]."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from ddimlib.plotting import image_grid, show_images


def test_image_grid_layout_and_range():
    images = torch.stack([torch.full((1, 2, 3), v) for v in [-1.0, 0.0, 1.0, 3.0, -5.0]])
    grid = image_grid(images, nrow=2, pad=1)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert grid[0, 0] == 0.0 and grid[0, 4] == 0.5  # row 0: images 0 and 1
    assert grid[3, 0] == 1.0 and grid[3, 4] == 1.0  # row 1: image 2, and image 3 clipped to 1
    # image 4 clipped to -1; the empty cell and the padding stay background (0)
    assert grid[6, 0] == 0.0 and grid[6, 4] == 0.0 and grid[2, 0] == 0.0
    fig, ax = plt.subplots()
    show_images(ax, images, title="five")
    assert ax.get_title() == "five"
    plt.close(fig)


def test_the_ode_figure_draws_the_slope_field_and_both_paths_of_one_dimensional_data():
    from ddimlib.oracle import GaussianMixture
    from ddimlib.plotting import ode_paths_figure
    from ddimlib.schedules import linear_schedule

    schedule = linear_schedule(1000)  # the linear schedule the field's axes are drawn for
    F64 = torch.float64
    data = GaussianMixture(
        torch.tensor([[-1.0], [1.0]], dtype=F64), torch.full((2,), 0.3, dtype=F64), torch.ones(2, dtype=F64) / 2
    )
    x_T = torch.randn(3, 1, generator=torch.Generator().manual_seed(0), dtype=F64)
    fig, fine, coarse = ode_paths_figure(data.eps_model(schedule), schedule, x_T, steps=5)
    assert fine.x.shape == (1001, 3, 1) and coarse.x.shape == (6, 3, 1)  # x_T, then one state per step
    left, right = fig.axes
    assert len(left.lines) == 3 and len(right.lines) == 2 * 3  # paths: one per x_T; (b) the fine and the coarse one
    assert len(left.collections) == 14 and len(right.collections) == 12  # the slope field's arrows
    assert "5 Euler steps" in right.get_title()
    plt.close(fig)


def test_table1_figure_draws_each_row_over_the_floor_beside_the_papers_rows_in_the_same_colour():
    from ddimlib.plotting import table1_figure

    cells = {("eta=0", 10): (4.0, 0.4), ("eta=0", 100): (2.0, 0.2), ("mine", 10): (6.0, 1.0)}
    fig = table1_figure(cells, 2.0, "ours", {"eta=0": (1, 2, 3, 4, 5)})
    ours, paper = fig.axes
    curves = [c for c in ours.containers]  # one errorbar per row
    assert len(curves) == 2 and list(curves[0].lines[0].get_ydata()) == [2.0, 1.0]  # FD over the floor
    assert len(paper.lines) == 1 and paper.lines[0].get_color() == curves[0].lines[0].get_color()
    assert ours.get_title() == "ours" and ours.get_yscale() == "log"
    plt.close(fig)


def test_regime_figure_draws_one_ratio_curve_per_model_with_its_standard_error():
    from ddimlib.plotting import regime_figure

    verdicts = {
        "oracle": {"ratios": {10: torch.tensor([1.2, 1.4]), 20: torch.tensor([1.0, 1.0])}},
        "early": {"ratios": {10: torch.tensor([0.8, 0.8])}},
    }
    fig = regime_figure(verdicts)
    (ax,) = fig.axes
    assert len(ax.containers) == 2 and list(ax.containers[0].lines[0].get_ydata()) == pytest.approx([1.3, 1.0])
    plt.close(fig)


def test_scatter_panels_and_convergence_and_marginals_figures_draw_what_they_are_given():
    from ddimlib.plotting import convergence_figure, marginals_figure, scatter_panels

    fig = scatter_panels({"data": torch.zeros(5, 2), "a": torch.ones(3, 2), "b": torch.ones(4, 2)}, limit=3)
    assert [ax.get_title() for ax in fig.axes] == ["data", "a", "b"] and fig.axes[1].get_xlim() == (-3, 3)
    assert [len(ax.collections[0].get_offsets()) for ax in fig.axes] == [5, 3, 4]
    plt.close(fig)
    ax = convergence_figure([10, 20, 40], {"Euler": [0.4, 0.2, 0.1], "other": [0.8, 0.4, 0.2]}, "t")
    reference = ax.lines[-1]
    assert len(ax.lines) == 3 and list(reference.get_ydata()) == pytest.approx([0.4, 0.2, 0.1])  # slope -1, Euler's
    plt.close(ax.figure)
    chains = {0.0: torch.zeros(11, 6, 2, dtype=torch.float64), 1.0: torch.ones(11, 6, 2, dtype=torch.float64)}
    alpha = torch.linspace(1, 0.01, 11, dtype=torch.float64)
    fig = marginals_figure(chains, torch.tensor([2, 5, 10]), alpha, torch.ones(2), 3)
    means, variances = fig.axes
    assert len(means.containers) == 2 and list(means.containers[1].lines[0].get_ydata()) == [1.0, 1.0, 1.0]
    assert len(variances.lines) == 1 + 2  # the true curve, and each error bar's data line
    plt.close(fig)


def test_loss_figure_draws_the_losses_and_their_running_mean():
    from ddimlib.plotting import loss_figure

    ax = loss_figure(torch.tensor([4.0, 2.0, 3.0, 1.0]), 2, "run")
    raw, smooth = ax.lines
    assert list(raw.get_ydata()) == [4.0, 2.0, 3.0, 1.0] and list(smooth.get_xdata()) == [1, 2, 3]
    assert list(smooth.get_ydata()) == [3.0, 2.5, 2.0] and ax.get_yscale() == "log" and ax.get_title() == "run"
    plt.close(ax.figure)
