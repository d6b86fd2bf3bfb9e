"""An interactive sampler explorer: sliders for eta, S, the kind of tau and the seed, redrawing a grid
of samples and the denoising trajectory of one of them.

The computation (`explore`) and the drawing (`draw`) are plain functions, tested without a browser;
`SamplerExplorer` only wires them to ipywidgets. Every redraw uses the same x_T for a given seed,
so moving the eta or S slider shows how the *sampler* changes the same samples (DDIM Section 5.2).
The frame is shown as a PNG image widget, so it draws in a fresh kernel whatever matplotlib's
backend; x_T and the noise come from a CPU generator, so a seed gives the same digits on any device.

A slider moved in the browser redraws in a worker thread, with a progress bar counting network calls,
and a newer change stops a redraw still running (at S = 1000 one takes seconds on a CPU), so the kernel
never waits for a frame nobody wants any more. A value set by code redraws before the assignment returns.

Taught in notebooks/04_step_sweep.ipynb.
"""

from __future__ import annotations

import base64
import html
import threading
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
PROGRESS_INTERVAL = 0.1  # seconds between progress-bar messages to the browser during a redraw


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
    shown = (
        torch.linspace(steps, 0, k).round().long().unique_consecutive().tolist()
    )  # from tau_S = T down to tau_0 = 0
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


class _Superseded(Exception):
    """Raised inside a background redraw's network call once a newer slider change has been made."""


class _Watched:
    """The explorer's model as `explore` calls it: `before_call()` runs before every network call (it
    counts calls for the progress bar, and raises _Superseded to stop a redraw nobody wants any more).
    It reports the wrapped model's parameters, so `explore` puts x_T on the model's device and dtype."""

    def __init__(self, eps_model: EpsModel, before_call):
        self.eps_model, self.before_call = eps_model, before_call

    def parameters(self):
        parameters = getattr(self.eps_model, "parameters", None)
        return parameters() if callable(parameters) else iter(())

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.before_call()
        return self.eps_model(x_t, t)


def _from_browser(change) -> bool:
    """Whether a control's change came from the browser: ipywidgets applies a browser's change in
    `Widget.set_state`, which holds the properties it sets in `_property_lock` while observers run (the
    browser sets a selection slider's `index`, and `value` follows); a value set by code holds no lock."""
    return bool(getattr(change["owner"], "_property_lock", None))


class SamplerExplorer:
    """Sliders for eta, S, tau kind and seed; every change recomputes `explore` and redraws `draw`.

    Display the explorer itself (the last expression of a cell). Its picture is a PNG image widget,
    so it needs no matplotlib backend. Where no widget can be shown (a notebook opened unexecuted, or
    on the web), the cell shows the first frame as a still picture with a line saying to run the cell.

    A change made in the browser redraws in a worker thread: the kernel stays free to receive the next
    change, which stops the redraw still running at its next network call; a progress bar and a status
    line count the network calls. A value set by code (`explorer.eta.value = 1.0`) redraws at once, before
    the assignment returns. `update()` redraws synchronously and returns the frame it drew, so the
    explorer can be driven and checked without a browser; `wait()` waits for the background redraw."""

    def __init__(
        self,
        eps_model: EpsModel,
        schedule: Schedule,
        image_shape: tuple[int, ...],
        n: int = 16,
        figsize=(9, 3.2),
        dpi: int = 100,
    ):
        import ipywidgets as widgets
        from matplotlib.figure import Figure

        self.eps_model, self.schedule, self.image_shape, self.n = eps_model, schedule, tuple(image_shape), n
        steps = [s for s in STEP_CHOICES if s <= schedule.T]
        self.eta = widgets.FloatSlider(
            value=0.0, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False
        )
        self.steps = widgets.SelectionSlider(
            options=steps, value=20 if 20 in steps else steps[0], description="S", continuous_update=False
        )
        self.tau_kind = widgets.Dropdown(options=list(TAU_KINDS), value="linear", description="tau")
        self.seed = widgets.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False)
        self.progress = widgets.IntProgress(
            value=0, min=0, max=1, description="calls", layout=widgets.Layout(width="240px")
        )
        self.status = widgets.Label(value="")
        self.image = widgets.Image(format="png")
        controls = [self.eta, self.steps, self.tau_kind, self.seed]
        self.widget = widgets.VBox(
            [
                widgets.HBox(controls[:2]),
                widgets.HBox(controls[2:]),
                widgets.HBox([self.progress, self.status]),
                self.image,
            ]
        )
        self.figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")  # drawn off-screen, shown as PNG bytes
        self.frame: ExplorerFrame | None = None
        self.superseded = 0  # background redraws stopped by a newer change (for tests and curious readers)
        self._drawing = threading.Lock()  # one redraw (and one user of self.figure) at a time
        self._requests = threading.Condition()  # guards the three fields below
        self._latest = 0  # number of the newest request; a background redraw of an older one stops
        self._pending: int | None = None  # a browser change the worker has not started yet
        self._busy = False  # the worker is redrawing
        self._worker: threading.Thread | None = None
        for control in controls:
            control.observe(self._on_change, names="value")

    def update(self) -> ExplorerFrame:
        """Recompute for the sliders' current values, redraw the figure, put its PNG in the image widget.

        Synchronous: returns the frame it drew. A background redraw still running stops for it."""
        with self._requests:
            self._latest += 1
            request = self._latest
        return self._redraw(request, background=False)

    def wait(self, timeout: float | None = None) -> ExplorerFrame | None:
        """Wait until the background redraw of the latest browser change has drawn its frame (or failed, see
        `status`); return the current frame. Raises TimeoutError if that takes more than `timeout` seconds."""
        with self._requests:
            if not self._requests.wait_for(lambda: self._pending is None and not self._busy, timeout):
                raise TimeoutError(f"the explorer was still redrawing after timeout={timeout} s")
        return self.frame

    def _on_change(self, change) -> None:
        if not _from_browser(change):
            self.update()
            return
        with self._requests:
            self._latest += 1
            self._pending = self._latest
            self._requests.notify_all()
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="SamplerExplorer", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        """The worker thread: redraw the newest pending request, forever."""
        while True:
            with self._requests:
                self._requests.wait_for(lambda: self._pending is not None)
                request, self._pending, self._busy = self._pending, None, True
            try:
                self._redraw(request, background=True)
            except _Superseded:
                self.superseded += 1
            except Exception as error:  # no traceback reaches the notebook from a thread: say it on the status line
                self.progress.bar_style = "danger"
                self.status.value = f"This setting failed: {type(error).__name__}: {error}"
            finally:
                with self._requests:
                    self._busy = False
                    self._requests.notify_all()

    def _redraw(self, request: int, background: bool) -> ExplorerFrame:
        """explore + draw + PNG for the sliders' values now; a background request stops (raising
        _Superseded) at its next network call, or before it shows its frame, once a newer request exists."""
        calls, shown_at = 0, 0.0

        def stale() -> bool:
            return background and request != self._latest

        def before_call() -> None:
            nonlocal calls, shown_at
            if stale():
                raise _Superseded
            calls += 1
            if time.monotonic() - shown_at >= PROGRESS_INTERVAL:  # a message per call would flood the browser
                shown_at = time.monotonic()
                self.progress.value = calls
                self.status.value = f"S = {steps}: {calls} of {steps} network calls"

        with self._drawing:
            eta, steps, tau_kind, seed = self.eta.value, self.steps.value, self.tau_kind.value, self.seed.value
            started = time.perf_counter()
            self.progress.bar_style, self.progress.value, self.progress.max = "info", 0, steps
            self.status.value = f"S = {steps}: 0 of {steps} network calls"
            frame = explore(
                _Watched(self.eps_model, before_call),
                self.schedule,
                self.image_shape,
                eta,
                steps,
                tau_kind,
                seed,
                self.n,
            )
            draw(self.figure, frame)
            png = figure_png(self.figure)
            with self._requests:
                if stale():
                    raise _Superseded
                self.frame = frame
            self.image.value = png
            self.progress.bar_style, self.progress.value = "success", calls
            self.status.value = f"{calls} network calls, {time.perf_counter() - started:.1f} s. {RUN_NOTE}"
            return frame

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The live widget, plus a still of the current frame (marked as a still), as PNG and as HTML with
        one line of text, for notebook viewers that show no widgets (JupyterLab shows an untrusted
        notebook's output, one opened before running it, in its safe HTML); a frontend that shows the
        widget shows only the widget."""
        if self.frame is None:
            self.update()
        with self._drawing:
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
