"""Every loop runs on any device and never waits for it, proven on a CPU-only machine.

- PyTorch's `meta` device stands in for a GPU: a meta tensor combined with a CPU tensor in arithmetic
  raises as a CUDA tensor does, and reading a meta value (`item`, `bool`, `tolist`) raises. So a
  sampler that runs to the end with its model and inputs on `meta` combines no tensors of different
  devices. (Meta is more lenient in two places a GPU is not: a CPU generator may draw meta tensors,
  and a CPU tensor may be indexed by a meta one; the CUDA tests below cover those.)
- Value checks are skipped on meta (it holds no values), so the meta run alone cannot show that a
  loop reads nothing back on a real device: the read-back tests count the reads on the CPU instead.
- Tests marked `cuda` compare a GPU with the CPU; they are skipped where there is no GPU.
"""

from dataclasses import dataclass, field

import pytest
import torch

from ddimlib.distributed import World
from ddimlib.explorer import explore
from ddimlib.loop import ModelOutputs
from ddimlib.models import build_model
from ddimlib.ode import decode, dpm_solver_2m, encode
from ddimlib.sampling import ddpm_sample, sample
from ddimlib.schedules import linear_schedule
from ddimlib.train import DEFAULT_MODELS
from ddimlib.training import LOSS_READ_EVERY, TrainConfig, Trainer

SCHEDULE = linear_schedule(40)  # short chains: DDPM runs all T steps
SHAPE = (1, 8, 8)
READ_BACKS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (run `python3 tasks.py device-check` on one)"
)

# Every loop of the library that calls a model, as run(model, x) -> result.
LOOPS = {
    "sample eta=0": lambda model, x: sample(model, SCHEDULE, x, 10, progress=False),
    "sample eta=0.5": lambda model, x: sample(
        model, SCHEDULE, x, 10, eta=0.5, generator=torch.Generator().manual_seed(0), progress=False
    ),
    "sample sigma-hat": lambda model, x: sample(
        model, SCHEDULE, x, 10, variance="hat", generator=torch.Generator().manual_seed(0), progress=False
    ),
    "sample trajectory": lambda model, x: sample(model, SCHEDULE, x, 10, progress=False, return_trajectory=True)[0],
    "ddpm_sample": lambda model, x: ddpm_sample(
        model, SCHEDULE, x, generator=torch.Generator().manual_seed(0), progress=False
    ),
    "encode": lambda model, x: encode(model, SCHEDULE, x, 10),
    "decode": lambda model, x: decode(model, SCHEDULE, x, 10, tau="quadratic"),
    "dpm_solver_2m": lambda model, x: dpm_solver_2m(model, SCHEDULE, x, 10),
    "explore": lambda model, x: (
        explore(model, SCHEDULE, SHAPE, eta=0.5, steps=10, tau_kind="linear", seed=0, n=x.shape[0]).samples
    ),
}


def unet(device) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(*DEFAULT_MODELS["digits"]).to(device).eval()


@pytest.mark.parametrize("loop", LOOPS)
def test_every_loop_runs_to_the_end_on_the_meta_device(loop):
    model = unet("meta")
    x = torch.randn(4, *SHAPE, device="meta")
    out = LOOPS[loop](model, x)
    assert out.device.type == "meta" and out.shape == x.shape


def test_one_training_step_runs_on_the_meta_device():
    config = TrainConfig(dataset="digits", model="unet", model_config=DEFAULT_MODELS["digits"][1], batch_size=8)
    trainer = Trainer(config, torch.zeros(16, *SHAPE), device="meta")
    loss = trainer._train_step()
    assert loss.device.type == "meta" and loss.shape == () and trainer.step == 1
    assert all(p.device.type == "meta" for p in trainer.ema.parameters())


@pytest.fixture
def read_backs(monkeypatch) -> list[str]:
    """The names of the tensor-to-host reads made while the test runs, in order."""
    log: list[str] = []
    for name in READ_BACKS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            log.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return log


class Spy(torch.nn.Module):
    """A model that notes how many read-backs had happened when each of its calls began."""

    def __init__(self, model, log):
        super().__init__()
        self.model, self.log, self.marks = model, log, []

    def forward(self, x_t, t):
        self.marks.append(len(self.log))
        return self.model(x_t, t)


@pytest.mark.parametrize("loop", LOOPS)
def test_no_loop_reads_a_value_back_between_its_first_and_last_model_call(loop, read_backs):
    spy = Spy(unet("cpu"), read_backs)
    LOOPS[loop](spy, torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(1)))
    assert len(spy.marks) >= 10
    assert spy.marks[-1] == spy.marks[0], f"read back inside the loop: {read_backs[spy.marks[0] : spy.marks[-1]]}"


def test_the_read_back_counter_sees_a_read_inside_a_loop(read_backs):
    """The test above can fail: a model that reads one value per call is caught."""

    def reading_model(x_t, t):
        float(x_t.sum())
        return torch.zeros_like(x_t)

    spy = Spy(reading_model, read_backs)
    sample(spy, SCHEDULE, torch.zeros(2, 3), 10, progress=False)
    assert spy.marks[-1] - spy.marks[0] == 9 and set(read_backs[spy.marks[0] : spy.marks[-1]]) == {"__float__"}


def test_training_reads_the_losses_back_once_every_so_many_steps(read_backs):
    config = TrainConfig(dataset="digits", model="unet", model_config=DEFAULT_MODELS["digits"][1], batch_size=8)
    trainer = Trainer(config, torch.rand(32, *SHAPE) * 2 - 1, device="cpu")
    trainer.forward = spy = Spy(trainer.model, read_backs)
    steps = 2 * LOSS_READ_EVERY + 5
    losses = trainer.train(steps=steps, progress=False)
    assert len(losses) == len(spy.marks) == steps == trainer.step
    reads = [b - a for a, b in zip(spy.marks, spy.marks[1:])]
    # one read (a tolist of the stacked losses) after each LOSS_READ_EVERY steps, none in between
    assert [k + 1 for k, r in enumerate(reads) if r] == [LOSS_READ_EVERY, 2 * LOSS_READ_EVERY]
    assert all(r == 1 for r in reads if r)


@dataclass(frozen=True)
class TwoOfTheSame(World):
    """Rank 0 of two processes whose partner holds the same values: its all-reduce doubles (no process group), and
    it counts the elements of each all-reduce in `reductions`."""

    reductions: list = field(default_factory=list)

    def sum(self, tensor):
        self.reductions.append(tensor.numel())
        return tensor * self.size


def test_training_on_several_processes_adds_no_read_back_and_stops_together(read_backs):
    """Under DDP the losses and the out-of-time flag travel in one all-reduce per LOSS_READ_EVERY steps and are
    read back once, as on one process; a time budget ends the run only at such a read, where the processes agree."""
    config = TrainConfig(dataset="digits", model="unet", model_config=DEFAULT_MODELS["digits"][1], batch_size=8)
    trainer = Trainer(config, torch.rand(32, *SHAPE) * 2 - 1, device="cpu")
    trainer.world = world = TwoOfTheSame(rank=0, size=2, backend="gloo")
    trainer.forward = spy = Spy(trainer.model, read_backs)
    losses = trainer.train(steps=2 * LOSS_READ_EVERY + 5, progress=False)
    reads = [b - a for a, b in zip(spy.marks, spy.marks[1:])]
    assert [k + 1 for k, r in enumerate(reads) if r] == [LOSS_READ_EVERY, 2 * LOSS_READ_EVERY]
    # one all-reduce per read (the losses and the flag), and one at the end for the last 5
    assert (
        world.reductions == [LOSS_READ_EVERY + 1, LOSS_READ_EVERY + 1, 5 + 1]
        and len(losses) == 2 * LOSS_READ_EVERY + 5
    )
    assert trainer.runs[-1]["world_size"] == 2 and trainer.runs[-1]["batch_per_process"] == 4
    # out of time from the first step: the processes stop together at the first read, not at once
    assert len(trainer.train(minutes=1e-9, progress=False)) == LOSS_READ_EVERY


# ------------------------------------------------------------------ on a real GPU (skipped without one)


@needs_cuda
@pytest.mark.parametrize("loop", LOOPS)
def test_a_gpu_and_the_cpu_agree_in_float64(loop):
    """Without TF32 or reduced precision, a GPU computes what the CPU does, to rounding.

    Rounding, in float64, is not 1e-16 here: cuDNN's convolutions sum in another order than the CPU's, so one
    UNet call differs by ~1e-15 relative, and the loops amplify it (x0_pred divides by sqrt(alpha_t), ~157 at t = T,
    at every step). Measured on an H200 (2026-11-26, torch 2.11): at most 1.2e-8 over these loops. A device bug
    (a coefficient on the wrong device, noise drawn elsewhere) differs by order 1."""
    model = unet("cpu").double()
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    on_cpu = LOOPS[loop](model, x)
    on_gpu = LOOPS[loop](model.cuda(), x.cuda()).cpu()
    assert (on_gpu - on_cpu).abs().max() < 1e-7


@needs_cuda
def test_training_runs_on_a_gpu_with_bf16_autocast():
    config = TrainConfig(dataset="digits", model="unet", model_config=DEFAULT_MODELS["digits"][1], batch_size=256)
    trainer = Trainer(config, torch.rand(64, *SHAPE) * 2 - 1, device="cuda")
    losses = trainer.train(steps=LOSS_READ_EVERY + 1, progress=False)
    assert len(losses) == LOSS_READ_EVERY + 1 and all(0 < v < 10 for v in losses)
    assert next(trainer.eps_model().parameters()).is_cuda


def test_the_deferred_finite_check_names_the_first_bad_call_and_spares_large_half_values():
    like = torch.zeros(2, 3, dtype=torch.float16)
    outputs = ModelOutputs(3, like)
    # finite; its float16 sum would overflow
    outputs.record(torch.full((2, 3), 60000.0, dtype=torch.float16), "at step 1")
    outputs.check()
    outputs.record(torch.tensor([[0.0, float("inf"), 0.0]] * 2, dtype=torch.float16), "at step 2")
    outputs.record(torch.full((2, 3), float("nan"), dtype=torch.float16), "at step 3")
    with pytest.raises(
        ValueError, match=r"eps_model output at step 2 contains NaN or infinite values.*\(2 of the loop's 3"
    ):
        outputs.check()


@needs_cuda
@pytest.mark.parametrize("loop", LOOPS)
def test_no_loop_makes_the_gpu_wait_between_its_first_and_last_model_call(loop):
    """CUDA's own count of synchronizations (sync debug mode "warn"), read between model calls: none may happen."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Marks(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model, self.marks = model, []

            def forward(self, x_t, t):
                self.marks.append(len(caught))
                return self.model(x_t, t)

        spy = Marks(unet("cuda"))
        x = torch.randn(4, *SHAPE, device="cuda")
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            LOOPS[loop](spy, x)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert spy.marks[-1] == spy.marks[0], [str(w.message)[:120] for w in caught[spy.marks[0] : spy.marks[-1]]]


def test_per_step_losses_read_no_value_back_between_their_first_and_last_model_call(read_backs):
    from ddimlib.objective import per_step_losses
    from ddimlib.schedules import linear_schedule

    spy = Spy(lambda x_t, t: x_t * 0.5, read_backs)
    chain = torch.randn(11, 4, 2, generator=torch.Generator().manual_seed(1))
    per_step_losses(spy, chain, linear_schedule(10))
    assert len(spy.marks) == 10
    assert spy.marks[-1] == spy.marks[0], f"read back inside the loop: {read_backs[spy.marks[0] : spy.marks[-1]]}"
