"""The sampler explorer: its update function, driven by setting slider values, without a browser.

A change from the browser reaches a widget through `Widget.set_state` (what ipywidgets calls on the
browser's message), so the tests call that to stand for a slider moved in the browser. The explorer in
a real browser is tested in test_browser.py."""

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
    explorer = SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=4, max_steps=1000)
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


def test_the_s_slider_stops_where_a_redraw_would_take_more_than_the_time_allowed(monkeypatch):
    monkeypatch.setattr(SamplerExplorer, "seconds_per_call", lambda self: 0.02)  # 50 calls in a second
    assert SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=2).steps.options == (5, 10, 20, 50)
    slow = SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=2, max_seconds=0.2)  # 10 calls
    assert slow.steps.options == (5, 10) and slow.steps.value == 10
    assert SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=2, max_seconds=0.001).steps.options == (5,)
    fixed = SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=2, max_steps=1000)  # no timing: the same everywhere
    assert fixed.steps.options == (5, 10, 20, 50, 100)  # and no stop above T
    fixed.update()
    assert "S stops at 100 here" in fixed.status.value


def test_the_call_is_timed_on_the_explorers_batch():
    calls = []

    def counted(x_t, t):
        calls.append((tuple(x_t.shape), t.tolist()))
        return smooth_model(x_t, t)

    explorer = SamplerExplorer(counted, SCHEDULE, SHAPE, n=3)
    assert calls[:4] == [((3, *SHAPE), [100] * 3)] * 4 and explorer.seconds_per_call() > 0


def test_the_call_time_is_the_fastest_of_three_after_a_warm_up(monkeypatch):
    """A call slowed by another program (0.9 s here) must not cap S: the warm-up and the slow call are passed over."""
    import ddimlib.explorer as explorer_module

    explorer = SamplerExplorer(smooth_model, SCHEDULE, SHAPE, n=2, max_steps=1000)
    clock = iter([0.0, 5.0, 10.0, 10.9, 20.0, 20.1, 30.0, 30.3])  # start and end of each of the four calls
    monkeypatch.setattr(explorer_module.time, "perf_counter", lambda: next(clock))
    assert abs(explorer.seconds_per_call() - 0.1) < 1e-12


def test_a_failing_setting_keeps_the_last_frame_and_says_why_on_the_status_line():
    def fails_at_seed_13(x_t, t):
        if explorer.seed.value == 13:
            raise RuntimeError("no digits for seed 13")
        return smooth_model(x_t, t)

    explorer = SamplerExplorer(fails_at_seed_13, SCHEDULE, SHAPE, n=2, max_steps=100)
    before = explorer.update()
    explorer.seed.value = 13
    assert explorer.frame is before
    assert explorer.status.value == "This setting failed: RuntimeError: no digits for seed 13"
    explorer.seed.value = 14  # and the next change works again
    assert explorer.frame.seed == 14 and explorer.status.value.startswith("20 network calls")
    assert explorer.status.value.endswith(RUN_NOTE)


class Float64Model(torch.nn.Module):
    """smooth_model with a float64 parameter: `explore` must then draw x_T in float64."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_t, t):
        return smooth_model(x_t, t)


def test_the_call_counter_keeps_the_models_dtype_and_device():
    """`explore` puts x_T on the model's dtype and device."""
    explorer = SamplerExplorer(Float64Model(), SCHEDULE, SHAPE, n=2)
    assert explorer.update().samples.dtype == torch.float64
