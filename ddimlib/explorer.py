"""An interactive sampler explorer: sliders for eta, S, the kind of tau and the seed, redrawing a grid
of samples and the denoising trajectory of one of them.

The computation (`explore`) and the drawing (`draw`) are plain functions, tested without a browser;
`SamplerExplorer` only wires them to ipywidgets. Every redraw uses the same x_T for a given seed,
so moving the eta or S slider shows how the *sampler* changes the same samples (DDIM Section 5.2).
The frame is shown as a PNG image widget, so it draws in a fresh kernel whatever matplotlib's
backend; x_T and the noise come from a CPU generator, so a seed gives the same digits on any device.

A slider acts when released and redraws at once; the S slider stops where a redraw would take more than a
second on the machine (judged from a timed network call), so the kernel stays responsive without threads.

Taught in notebooks/04_step_sweep.ipynb.
"""

from __future__ import annotations

import base64
import html
import time
from dataclasses import dataclass

import torch

from ddimlib._validate import require_choice, require_in_range, require_int
from ddimlib.loop import EpsModel, placement
from ddimlib.plotting import figure_png, show_images
from ddimlib.sampling import sample
from ddimlib.schedules import TAU_KINDS, Schedule

STEP_CHOICES = (5, 10, 20, 50, 100, 200, 500, 1000)  # the S slider's stops
TRAJECTORY_COLUMNS = 8  # steps of the trajectory shown, evenly spaced along tau
STILL_NOTE = "A still picture: run this cell in Jupyter to move the sliders."
# ends the status line: it is saved with the widget, which web viewers show
RUN_NOTE = "Sliders need a running kernel (run this cell)."


@dataclass
class ExplorerFrame:
    """What one setting of the sliders produces.

    samples: (n, C, H, W) x_0 for the n x_T of `seed`; tau: (S+1,) with tau[0] = 0;
    x_shown, x0_shown: (k, C, H, W) x_{tau_i} and the predicted x0 at tau_i of sample 0, for the k
    shown steps i = shown[j] (from x_T on the left to x_0 on the right)."""

    eta: float
    steps: int
    tau_kind: str
    seed: int
    samples: torch.Tensor
    tau: torch.Tensor
    shown: list[int]
    x_shown: torch.Tensor
    x0_shown: torch.Tensor

    @property
    def title(self) -> str:
        return f"eta = {self.eta:.2f}, S = {self.steps} ({self.tau_kind} tau), seed {self.seed}"


def explore(
    eps_model: EpsModel,
    schedule: Schedule,
    image_shape: tuple[int, ...],
    eta: float,
    steps: int,
    tau_kind: str,
    seed: int,
    n: int = 16,
) -> ExplorerFrame:
    """Sample n images from the x_T that `seed` draws, with DDIM at `eta` on a `tau_kind` tau of
    `steps` steps, and keep the trajectory of the first one.

    Runs on the device and in the dtype of the model's parameters (the CPU and float32 for a plain
    function); x_T and the noise are drawn from a CPU generator, so a seed means the same x_T everywhere. The frame's
    tensors stay on
    that device; `draw` brings what it shows to the CPU."""
    eta = require_in_range("eta", eta, 0.0, 1.0)
    steps = require_int("steps", steps, 1, schedule.T)
    tau_kind = require_choice("tau_kind", tau_kind, TAU_KINDS)
    seed = require_int("seed", seed, 0)
    n = require_int("n", n, 1)
    generator = torch.Generator().manual_seed(seed)
    device, dtype = placement(eps_model)
    x_T = torch.randn((n, *image_shape), generator=generator).to(device=device, dtype=dtype)
    samples, path = sample(
        eps_model,
        schedule,
        x_T,
        steps,
        eta=eta,
        tau=tau_kind,
        generator=generator,
        progress=False,
        return_trajectory=True,
    )
    k = min(TRAJECTORY_COLUMNS, steps + 1)
    # from tau_S = T down to tau_0 = 0
    shown = torch.linspace(steps, 0, k).round().long().unique_consecutive().tolist()
    return ExplorerFrame(
        eta=eta,
        steps=steps,
        tau_kind=tau_kind,
        seed=seed,
        samples=samples,
        tau=path.tau,
        shown=shown,
        x_shown=path.x[shown, 0],
        x0_shown=path.x0_pred[shown, 0],
    )


def draw(fig, frame: ExplorerFrame) -> None:
    """Draw a frame on a matplotlib figure (cleared first): the samples on the left, sample 0's
    x_t (top) and predicted x0 (bottom) at the shown steps on the right."""
    fig.clear()
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 2])
    show_images(fig.add_subplot(grid[:, 0]), frame.samples, title="samples")
    labels = ", ".join(str(int(frame.tau[i])) for i in frame.shown)
    show_images(
        fig.add_subplot(grid[0, 1]), frame.x_shown, nrow=len(frame.shown), title=f"x_t of sample 0 at t = {labels}"
    )
    show_images(fig.add_subplot(grid[1, 1]), frame.x0_shown, nrow=len(frame.shown), title="predicted x0 at the same t")
    fig.suptitle(frame.title)


class SamplerExplorer:
    """Sliders for eta, S, tau kind and seed; every change recomputes `explore` and redraws `draw`.

    Display the explorer itself (the last expression of a cell). Its picture is a PNG image widget,
    so it needs no matplotlib backend. Where no widget can be shown (a notebook opened unexecuted, or
    on the web), the cell shows the first frame as a still picture with a line saying to run the cell.

    A slider acts when it is released (continuous_update=False) and its redraw runs at once, in the kernel,
    before the next change is handled. To keep that responsive, the S slider stops at the largest S whose redraw
    takes at most `max_seconds`, judged from a timed network call when the explorer is made (max_steps sets the
    cap instead, the same on every machine). `update()` redraws and returns the frame it drew, so the explorer can
    be driven and checked without a browser; setting a slider's value from code redraws before it returns. A
    setting that fails leaves the last frame and says why on the status line."""

    def __init__(
        self,
        eps_model: EpsModel,
        schedule: Schedule,
        image_shape: tuple[int, ...],
        n: int = 16,
        figsize=(9, 3.2),
        dpi: int = 100,
        max_seconds: float = 1.0,
        max_steps: int | None = None,
    ):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        self.eps_model, self.schedule, self.image_shape, self.n = eps_model, schedule, tuple(image_shape), n
        if max_steps is None:
            max_seconds = require_in_range("max_seconds", max_seconds, 0.0, float("inf"))
            max_steps = int(max_seconds / self.seconds_per_call())
        else:
            max_steps = require_int("max_steps", max_steps, 1)
        stops = [s for s in STEP_CHOICES if s <= min(schedule.T, max_steps)] or [STEP_CHOICES[0]]
        self.eta = widgets.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False
        )
        self.steps = widgets.SelectionSlider(
            options=stops,
            value=max(s for s in stops if s <= 20),  # 20, or the largest stop below it (the smallest is 5)
            description="S",
            continuous_update=False,
        )
        self.tau_kind = widgets.Dropdown(options=list(TAU_KINDS), value="linear", description="tau")
        self.seed = widgets.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False)
        self.status = widgets.Label(value="")
        self.image = widgets.Image(format="png")
        controls = [self.eta, self.steps, self.tau_kind, self.seed]
        self.widget = widgets.VBox([widgets.HBox(controls[:2]), widgets.HBox(controls[2:]), self.status, self.image])
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")  # drawn off-screen, shown as PNG bytes
        self.frame: ExplorerFrame | None = None
        for control in controls:
            control.observe(self._on_change, names="value")

    @torch.no_grad()
    def seconds_per_call(self) -> float:
        """The time of one network call on the explorer's batch: the fastest of three calls after one that warms up
        (on a shared machine other programs only ever slow a call down, so one timed call can misjudge it badly)."""
        device, dtype = placement(self.eps_model)
        x = torch.zeros((self.n, *self.image_shape), device=device, dtype=dtype)
        t = torch.full((self.n,), self.schedule.T, device=device)
        times = []
        for _ in range(4):
            started = time.perf_counter()
            self.eps_model(x, t).sum().item()  # the read waits for the device, so the time is the call's
            times.append(time.perf_counter() - started)
        return max(min(times[1:]), 1e-6)

    def update(self) -> ExplorerFrame:
        """Recompute for the sliders' current values, redraw the figure, put its PNG in the image widget; return the
        frame."""
        started = time.perf_counter()
        frame = explore(
            self.eps_model,
            self.schedule,
            self.image_shape,
            self.eta.value,
            self.steps.value,
            self.tau_kind.value,
            self.seed.value,
            self.n,
        )
        draw(self.figure, frame)
        self.image.value = figure_png(self.figure)
        self.frame = frame
        self.status.value = (
            f"{frame.steps} network calls, {time.perf_counter() - started:.1f} s; S stops at "
            f"{self.steps.options[-1]} here. {RUN_NOTE}"
        )
        return frame

    def _on_change(self, change) -> None:
        try:
            self.update()
        except Exception as error:  # an observer's exception reaches no cell: say it where the reader looks
            self.status.value = f"This setting failed: {type(error).__name__}: {error}"

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The live widget, plus a still of the current frame (marked as a still), as PNG and as HTML with
        one line of text, for notebook viewers that show no widgets (JupyterLab shows an untrusted
        notebook's output, one opened before running it, in its safe HTML); a frontend that shows the
        widget shows only the widget."""
        if self.frame is None:
            self.update()
        note = self.figure.text(
            0.99, 0.01, STILL_NOTE, ha="right", va="bottom", fontsize=8, style="italic", color="C3"
        )
        still = base64.b64encode(figure_png(self.figure)).decode("ascii")
        note.remove()
        title = html.escape(self.frame.title)
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude)
        bundle["image/png"] = still
        bundle["text/html"] = (
            f"<p><b>Sampler explorer</b> (sliders for eta, S, tau and seed). {html.escape(STILL_NOTE)}</p>"
            f'<img src="data:image/png;base64,{still}" alt="Sampler explorer, still: {title}">'
        )
        bundle["text/plain"] = "Sampler explorer (sliders for eta, S, tau and seed). " + STILL_NOTE
        return bundle
