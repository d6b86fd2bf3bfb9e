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
