"""The sampler explorer: its update function, driven by setting slider values, without a browser.

A change from the browser reaches a widget through `Widget.set_state` (what ipywidgets calls on the
browser's message), so the tests call that to stand for a slider moved in the browser. The explorer in
a real browser is tested in test_browser.py."""

import threading

import matplotlib

matplotlib.use("Agg")
import pytest
import torch
from helpers import smooth_model

from ddimlib.explorer import RUN_NOTE, SamplerExplorer, draw, explore
from ddimlib.plotting import image_grid
from ddimlib.sampling import sample
from ddimlib.schedules import linear_schedule, timesteps

SCHEDULE = linear_schedule(100)
SHAPE = (1, 4, 4)


def test_explore_is_the_sampler_on_the_seeds_x_T():
    frame = explore(smooth_model, SCHEDULE, SHAPE, eta=0.5, steps=10, tau_kind="quadratic", seed=3, n=5)
    generator = torch.Generator().manual_seed(3)
    x_T = torch.randn((5, *SHAPE), generator=generator)
    expected = sample(smooth_model, SCHEDULE, x_T, 10, eta=0.5, tau="quadratic", generator=generator, progress=False)
    assert torch.equal(frame.samples, expected)
    assert frame.tau.tolist() == [0] + timesteps(10, 100, "quadratic").tolist()
    # the trajectory runs from x_T (left) to the sample (right), with the predicted x0 beside it
    assert frame.shown[0] == 10 and frame.shown[-1] == 0 and len(frame.shown) == 8
    assert torch.equal(frame.x_shown[0], x_T[0]) and torch.equal(frame.x_shown[-1], expected[0])
    assert torch.equal(frame.x0_shown[-1], expected[0])


def test_explore_shows_every_step_when_there_are_few():
    frame = explore(smooth_model, SCHEDULE, SHAPE, eta=0.0, steps=3, tau_kind="linear", seed=0, n=2)
    assert frame.shown == [3, 2, 1, 0] and frame.x_shown.shape == (4, *SHAPE)


def test_draw_puts_the_samples_and_the_title_on_the_figure():
    import matplotlib.pyplot as plt

    frame = explore(smooth_model, SCHEDULE, SHAPE, eta=0.2, steps=5, tau_kind="linear", seed=1, n=4)
    fig = plt.figure()
    draw(fig, frame)
    assert fig._suptitle.get_text() == "eta = 0.20, S = 5 (linear tau), seed 1"
    assert torch.allclose(
        torch.as_tensor(fig.axes[0].images[0].get_array()), image_grid(frame.samples).to(torch.float32)
    )
    plt.close(fig)


def test_the_sliders_drive_the_update_function():
    explorer = SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=4)
    first = explorer.update()
    assert (first.eta, first.steps, first.tau_kind, first.seed) == (0.0, 20, "linear", 0)
    explorer.eta.value = 0.5
    assert explorer.frame.eta == 0.5 and "eta = 0.50" in explorer.figure._suptitle.get_text()
    explorer.steps.value = 50
    explorer.tau_kind.value = "quadratic"
    assert explorer.frame.tau[1:].tolist() == timesteps(50, 100, "quadratic").tolist()
    before = explorer.frame.samples
    explorer.seed.value = 7
    assert explorer.frame.seed == 7 and not torch.equal(before, explorer.frame.samples)
    assert explorer.steps.options == (5, 10, 20, 50, 100)  # no stop above T


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eta": 1.5}, "eta"),
        ({"steps": 0}, "steps"),
        ({"steps": 101}, "steps"),
        ({"tau_kind": "cubic"}, "tau_kind"),
        ({"seed": -1}, "seed"),
    ],
)
def test_explore_names_a_bad_argument(kwargs, match):
    arguments = dict(eta=0.0, steps=5, tau_kind="linear", seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        explore(smooth_model, SCHEDULE, SHAPE, **arguments)


def test_the_picture_is_png_bytes_that_follow_the_sliders_with_a_marked_still_for_the_web():
    import base64

    explorer = SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=4)
    bundle = explorer._repr_mimebundle_()  # displaying it draws the first frame
    first = bytes(explorer.image.value)
    assert first.startswith(b"\x89PNG")
    explorer.eta.value = 1.0
    assert bytes(explorer.image.value).startswith(b"\x89PNG") and bytes(explorer.image.value) != first
    still = base64.b64decode(bundle["image/png"])
    assert still.startswith(b"\x89PNG") and still != first  # the still carries its note
    assert "application/vnd.jupyter.widget-view+json" in bundle and "run this cell in Jupyter" in bundle["text/plain"]
    # JupyterLab shows an unexecuted (untrusted) notebook's output in its safe HTML: the still and one line of text
    assert f'<img src="data:image/png;base64,{bundle["image/png"]}"' in bundle["text/html"]
    assert "run this cell in Jupyter" in bundle["text/html"].split("<img", 1)[0]


class Gate:
    """A model that stops at its `at_call`-th call on a chosen S until released (or `timeout` s have passed),
    and counts all its calls: it holds a background redraw in mid-flight while the test moves another slider."""

    def __init__(self, steps: int, at_call: int = 1, timeout: float = 30.0):
        self.steps, self.at_call, self.timeout = steps, at_call, timeout
        self.calls = self.calls_on_steps = 0
        self.reached, self.release = threading.Event(), threading.Event()
        self.explorer: SamplerExplorer | None = None

    def __call__(self, x_t, t):
        self.calls += 1
        if self.explorer.steps.value == self.steps and not self.reached.is_set():
            self.calls_on_steps += 1
            if self.calls_on_steps == self.at_call:
                self.reached.set()
                self.release.wait(self.timeout)
        return smooth_model(x_t, t)


def gated_explorer(steps: int, at_call: int = 1, timeout: float = 30.0) -> tuple[SamplerExplorer, Gate, list]:
    """An explorer on a Gate, its first frame drawn; and the list of PNGs its image widget shows from then on."""
    gate = Gate(steps, at_call, timeout)
    gate.explorer = SamplerExplorer(gate, SCHEDULE, SHAPE, n=2)
    gate.explorer.update()
    gate.calls = 0
    shown = []
    gate.explorer.image.observe(lambda change: shown.append(change["new"]), names="value")
    return gate.explorer, gate, shown


def test_a_browser_change_redraws_in_the_background_and_a_newer_one_stops_it():
    explorer, gate, shown = gated_explorer(steps=100)
    explorer.steps.set_state({"index": 4})  # S = 100 from the browser: returns while the redraw runs
    assert gate.reached.wait(30), "the background redraw never called the model"
    assert explorer.frame.steps == 20  # the kernel is free: the old frame is still shown, the change returned
    assert explorer.progress.max == 100 and explorer.status.value.startswith("S = 100:")
    with pytest.raises(TimeoutError, match="timeout=0.01"):
        explorer.wait(timeout=0.01)
    explorer.seed.set_state({"value": 7})  # a newer change from the browser, while S = 100 is at its first call
    gate.release.set()
    frame = explorer.wait(timeout=60)
    assert (frame.steps, frame.seed) == (100, 7) and explorer.frame is frame
    assert explorer.superseded == 1 and gate.calls == 1 + 100  # the stale redraw stopped after its first network call
    assert len(shown) == 1  # only the newest setting's frame was shown
    assert explorer.progress.value == explorer.progress.max == 100
    assert explorer.status.value.startswith("100 network calls") and explorer.status.value.endswith(RUN_NOTE)


def test_a_value_set_by_code_waits_for_a_background_redraw_to_stop_and_wins():
    explorer, gate, shown = gated_explorer(steps=50, timeout=0.5)  # nothing releases the gate: it opens after 0.5 s
    explorer.steps.set_state({"index": 3})  # S = 50 from the browser
    assert gate.reached.wait(30)
    explorer.eta.value = 1.0  # code: redraws before the assignment returns, stopping the background redraw
    assert (explorer.frame.steps, explorer.frame.eta) == (50, 1.0)
    assert explorer.wait(timeout=60) is explorer.frame and explorer.superseded == 1 and gate.calls == 1 + 50
    assert len(shown) == 1


def test_a_change_after_the_last_network_call_still_keeps_the_stale_frame_off_the_screen():
    explorer, gate, shown = gated_explorer(steps=10, at_call=10)
    explorer.steps.set_state({"index": 1})  # S = 10 from the browser; it stops at its last network call
    assert gate.reached.wait(30)
    explorer.seed.set_state({"value": 3})
    gate.release.set()
    frame = explorer.wait(timeout=60)
    assert (frame.steps, frame.seed) == (10, 3) and explorer.superseded == 1 and gate.calls == 10 + 10
    assert len(shown) == 1


def test_a_failure_in_the_background_is_shown_on_the_status_line():
    def fails_at_seed_13(x_t, t):
        if explorer.seed.value == 13:
            raise RuntimeError("no digits for seed 13")
        return smooth_model(x_t, t)

    explorer = SamplerExplorer(fails_at_seed_13, SCHEDULE, SHAPE, n=2)
    before = explorer.update()
    explorer.seed.set_state({"value": 13})
    assert explorer.wait(timeout=60) is before  # the last good frame stays
    assert explorer.status.value == "This setting failed: RuntimeError: no digits for seed 13"
    assert explorer.progress.bar_style == "danger"
    explorer.seed.set_state({"value": 14})  # and the next change works again
    assert explorer.wait(timeout=60).seed == 14 and explorer.progress.bar_style == "success"


class Float64Model(torch.nn.Module):
    """smooth_model with a float64 parameter: `explore` must then draw x_T in float64."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_t, t):
        return smooth_model(x_t, t)


def test_the_call_counter_keeps_the_models_dtype_and_device():
    """The explorer calls its model through a counter; `explore` must still see the model's parameters."""
    explorer = SamplerExplorer(Float64Model(), SCHEDULE, SHAPE, n=2)
    assert explorer.update().samples.dtype == torch.float64
