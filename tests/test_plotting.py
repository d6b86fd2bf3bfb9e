"""The image-grid helper lays images out row by row and maps [-1, 1] to [0, 1]."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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
