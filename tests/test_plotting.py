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
