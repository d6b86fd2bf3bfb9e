"""Training a noise predictor with L_simple, and checkpoints that are safe to write and to load.

- Objective: DDPM's L_simple (L_gamma with gamma = 1, t uniform on 1..T), which by Theorem 1 of
  Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, arXiv:2010.02502 trains a
  model for every sampler of notebooks 04-05 at once (see notebooks/02_unified_objective.ipynb).
- AdamW (fused), gradient clipping, EMA weights (a frozen copy of the model, updated by one fused lerp per step),
  a budget in steps and/or minutes, a tqdm bar with loss and steps/s.
- Device: CUDA, then Apple MPS, then CPU, unless given; bf16 autocast on CUDA; optionally a
  torch.compile'd forward pass (TrainConfig.compile), falling back to eager where compiling fails.
- Several processes (torchrun): given a ddimlib.distributed.World, the model is wrapped in DistributedDataParallel;
  batch_size stays the global batch, of which each process trains on its share of the same draws, and only rank 0
  writes the state.
  A training step reads nothing back from the device: the losses stay there and are read every
  LOSS_READ_EVERY steps (for the bar and the history), so a GPU never waits on the Python loop.
- Checkpoints hold model, EMA, optimizer, step, RNG state, loss history and the config. They are
  written atomically (temporary file, fsync, os.replace): a kill at any moment leaves the previous
  checkpoint readable. They are loaded with torch.load(weights_only=True), which refuses any pickle
  that would run code. Resuming on the CPU is bit-exact.

Taught in notebooks/03_training.ipynb; driven from the shell by `python -m ddimlib.train`.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ddimlib._validate import require_choice, require_int
from ddimlib.checkpoints import CHECKPOINT_FORMAT, load_checkpoint, load_weights, save_atomic
from ddimlib.distributed import World
from ddimlib.models import MODEL_KINDS, build_model
from ddimlib.objective import l_simple_given
from ddimlib.schedules import Schedule, linear_schedule

LOSS_READ_EVERY = 50  # training steps between reads of the losses from the device (the bar's refresh)


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint."""

    dataset: str = "digits"  # data set name (see ddimlib.train.DATASETS)
    model: str = "unet"  # "unet" or "mlp"
    model_config: dict = field(default_factory=dict)  # fields of UNetConfig / MLPConfig
    T: int = 1000  # diffusion steps of the linear beta schedule (1e-4 .. 0.02)
    batch_size: int = 128  # the CLI's default depends on the device (see default_batch_size)
    lr: float = 2e-3  # AdamW learning rate (constant after warm-up)
    warmup_steps: int = 200  # linear learning-rate warm-up
    weight_decay: float = 0.0
    ema_decay: float = 0.999  # EMA of the weights, used for sampling
    # > 0: the decay at step n is min(ema_decay, (1 + n) / (ema_warmup + n)), so a short run's EMA forgets its random
    # start
    ema_warmup: int = 0
    grad_clip: float = 1.0  # max gradient norm
    seed: int = 0  # seeds the model's initialisation and dropout (global RNG), batches, t and noise (own generator)
    compile: bool = False  # torch.compile the model for training (eager if compiling fails); faster on a GPU

    def schedule(self) -> Schedule:
        return linear_schedule(self.T)


def pick_device(device: str | None = None) -> torch.device:
    """The given device, else CUDA, then Apple MPS, then CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_batch_size(device: torch.device) -> int:
    """128 on a CPU or Apple GPU; 2048 on CUDA, where a small model's step is bound by kernel launches, so a
    larger batch costs almost no more time per step and multiplies the samples seen per second."""
    return 2048 if torch.device(device).type == "cuda" else 128


class Trainer:
    """Holds the model, its EMA, the optimizer and the RNG of one run; `train` advances it.

    data: the training set, (N, ...) float tensor, moved to the device once.
    world: the processes that train this model together (ddimlib.distributed.start); one process by default.
    """

    def __init__(
        self, config: TrainConfig, data: torch.Tensor, device: str | torch.device | None = None, world: World = World()
    ):
        require_choice("model", config.model, MODEL_KINDS)
        self.config = config
        self.world = world
        world.shard(config.batch_size)  # refuses a global batch that the processes cannot share evenly
        self.device = pick_device(device)
        torch.manual_seed(config.seed)  # the model's initial weights, the same in every process
        self.model = build_model(config.model, config.model_config).to(self.device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)  # the EMA weights: a frozen copy (_update_ema)
        # fused AdamW: one kernel per step, its step counts on the device (the default keeps them on the host and
        # reads them with item()); PyTorch fuses on these device types, not on meta. A checkpoint written before
        # this choice resumes with the unfused optimizer it saved (load_state_dict restores the group's settings).
        fused = self.device.type in ("cpu", "cuda", "mps")
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused
        )
        # the meta device (the test suite's stand-in for a GPU) has no generator of its own: draw on the CPU's
        self.generator = torch.Generator(device=self.device if self.device.type != "meta" else "cpu").manual_seed(
            config.seed
        )
        self.data = data.to(self.device, torch.float32)
        self.schedule = config.schedule()
        self.alpha = self.schedule.alpha.to(torch.float32).to(self.device)  # the training step's table, moved once
        # the module a step calls: DDP averages the gradients over the processes in backward
        self.wrapped = (
            self.model
            if world.size == 1
            else torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                forward_sync_buffers=False,
            )
        )
        self.forward = self.wrapped
        if config.compile:
            self.compile()
        self.step = 0
        self.losses: list[float] = []
        self.runs: list[dict] = []  # one entry per train() call: steps, wall seconds, steps/s and samples/s
        self._separate_dropout()

    def compile(self) -> None:
        """Train with a torch.compile'd forward pass from the next step on (recorded in the config; a run falls back
        to eager at its first step if compiling fails). Turns it on for a resumed run too."""
        self.config.compile = True
        self.forward = torch.compile(self.wrapped)

    def _separate_dropout(self) -> None:
        """Give each process but rank 0 a stream of its own for dropout (the global generator): with the same
        stream, every process would draw the same masks for its rows. Rank 0 keeps the single-process stream."""
        if self.world.rank > 0:
            torch.manual_seed(self.config.seed + (self.world.rank << 32) + self.step)

    @torch.no_grad()
    def _update_ema(self) -> None:
        """EMA of the weights: a copy at the first step, then ema <- ema + (1 - decay) (weights - ema), one fused lerp
        over all the parameters (no read-back: the decay is a Python float)."""
        ema, current = list(self.ema.parameters()), list(self.model.parameters())
        if self.step == 0:
            torch._foreach_copy_(ema, current)
        else:
            torch._foreach_lerp_(ema, current, 1 - self.ema_decay_at(self.step))

    def ema_decay_at(self, step: int) -> float:
        """The EMA's decay at `step`: ema_decay, or with ema_warmup = w > 0, min(ema_decay, (1 + step) / (w + step)).

        With a constant decay d the EMA still holds d^n of the random initial weights after n steps
        (0.999^2000 = 13.5 %); with the warm-up, the product of (1 + k) / (w + k) over k = 1..n falls like n^(1 - w)
        (for w = 10, 2e-12 after 100 steps), until the decay reaches ema_decay."""
        warmup = self.config.ema_warmup
        return self.config.ema_decay if warmup <= 0 else min(self.config.ema_decay, (1 + step) / (warmup + step))

    def _train_step(self) -> torch.Tensor:
        """One optimizer step; returns this process's loss as a tensor on the device (nothing is read back).

        The global batch (indices, then t, then noise) is drawn whole in every process, from the same stream, and
        each trains on its share: N processes see what one process sees at the same batch_size."""
        config, share = self.config, self.world.shard(self.config.batch_size)
        index = torch.randint(0, len(self.data), (config.batch_size,), generator=self.generator, device=self.device)
        t = torch.randint(1, self.alpha.numel(), (config.batch_size,), generator=self.generator, device=self.device)
        noise = torch.randn((config.batch_size, *self.data.shape[1:]), generator=self.generator, device=self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (self.step + 1) / max(1, config.warmup_steps))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            loss = l_simple_given(self.forward, self.data[index[share]], self.alpha, t[share], noise[share])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        return loss.detach()

    def _first_step(self) -> torch.Tensor:
        """A step that, with compile on, falls back to the eager model if compiling fails here; the eager
        step draws the same batch, t and noise that the failed attempt drew."""
        random_state = self.generator.get_state(), torch.get_rng_state()
        try:
            return self._train_step()
        except Exception as error:  # torch.compile raises many kinds (no compiler, unsupported backend, ...)
            if self.forward is self.wrapped:
                raise
            warnings.warn(
                f"torch.compile failed on {self.device} ({type(error).__name__}: {str(error)[:200]}); "
                "training eagerly",
                stacklevel=2,
            )
            self.forward = self.wrapped
            self.generator.set_state(random_state[0])
            torch.set_rng_state(random_state[1])
            return self._train_step()

    def train(
        self,
        steps: int | None = None,
        minutes: float | None = None,
        progress: bool = True,
        save_every: int | None = None,
        save_to: str | Path | None = None,
    ) -> list[float]:
        """Train for `steps` more steps and/or `minutes` of wall time, whichever ends first.

        Give steps for results that are the same on every run (a notebook's budget); minutes only cap
        the time. With save_every = k, the full state is also written to save_to after every k-th step
        (counted from the run's start), so that a run killed midway loses at most k steps. Returns the
        losses of the steps taken (also appended to self.losses).

        On several processes the losses are the means over the processes (the global batch's loss), only rank 0
        shows a bar and writes, and the processes agree on when `minutes` is up at each read of the losses
        (every LOSS_READ_EVERY steps), so that all of them take the same number of steps.
        """
        if steps is None and minutes is None:
            raise ValueError("give a budget: steps (an integer >= 1) or minutes (> 0), or both; got neither")
        if steps is not None:
            steps = require_int("steps", steps, 1)
        if minutes is not None and not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes}")
        if save_every is not None:
            save_every = require_int("save_every", save_every, 1)
            if save_to is None:
                raise ValueError("save_every needs save_to, the path of the state file to write")
        self.model.train()
        started, first = time.monotonic(), len(self.losses)
        deadline = started + 60 * minutes if minutes is not None else float("inf")
        pending: list[torch.Tensor] = []  # losses still on the device
        run = {"batch_size": self.config.batch_size} | self.world.record(self.config.batch_size)
        self.runs.append(run)
        bar = tqdm(
            total=steps,
            desc=f"train {self.config.dataset}",
            disable=not (progress and self.world.is_main),
            unit="step",
            mininterval=1.0,
        )
        taken = lambda: len(self.losses) - first + len(pending)
        out_of_time = lambda: time.monotonic() >= deadline
        together = self.world.size > 1  # then the time is up only when the processes agree, at a read
        finished = False
        try:
            while (steps is None or taken() < steps) and not (out_of_time() and not together):
                pending.append(self._first_step() if taken() == 0 else self._train_step())
                bar.update(1)
                stop = False
                if len(pending) == LOSS_READ_EVERY:
                    stop = self._read_losses(pending, bar, out_of_time())
                if save_every is not None and taken() % save_every == 0:
                    stop = self._read_losses(pending, bar, out_of_time()) or stop
                    self._record(run, taken(), time.monotonic() - started)
                    if self.world.is_main:
                        self.save(save_to)
                if together and stop:
                    break
            finished = True
        finally:  # also when a step raises or the run is interrupted: the steps taken are recorded
            self._read_losses(pending, bar, across=finished)  # after a failure, no collective: a process may be gone
            bar.close()
            self._record(run, taken(), time.monotonic() - started)
        return self.losses[first:]

    def _record(self, run: dict, steps: int, seconds: float) -> None:
        seconds = max(seconds, 1e-9)
        run |= {
            "steps": steps,
            "wall_seconds": round(seconds, 1),
            "steps_per_second": round(steps / seconds, 2),
            "samples_per_second": round(steps * self.config.batch_size / seconds),
        }

    def _read_losses(self, pending: list[torch.Tensor], bar, out_of_time: bool = False, across: bool = True) -> bool:
        """Read the pending losses from the device at once (the only read-back of training), show them and
        append them to self.losses. Returns whether any process is out of time (False when nothing is pending: the
        processes, which read at the same steps, have just agreed on it).

        On several processes (with across), one all-reduce carries the losses and the out-of-time flags, and the
        losses appended are the means over the processes."""
        if not pending:
            return False
        readings = torch.stack(
            [loss.float() for loss in pending] + [torch.tensor(float(out_of_time), device=self.device)]
        )
        processes = self.world.size if across else 1
        if across:
            readings = self.world.sum(readings)
        *values, late = readings.tolist()
        values = [value / processes for value in values]
        pending.clear()
        bar.set_postfix(loss=f"{sum(values) / len(values):.4f}", step=self.step)
        self.losses.extend(values)
        return late > 0

    def eps_model(self, ema: bool = True) -> torch.nn.Module:
        """The trained noise predictor in eval mode (the EMA weights by default)."""
        model = self.ema if ema else self.model
        return model.eval()

    # ------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": "training",
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "ema": ema_state(self.ema, self.step),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "cpu_rng": torch.get_rng_state(),  # dropout draws from the global generators
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "losses": torch.tensor(self.losses, dtype=torch.float64),
            "runs": self.runs,
        }

    def save(self, path: str | Path) -> Path:
        """Write the full training state atomically to `path`."""
        return save_atomic(self.state(), path)

    @classmethod
    def resume(
        cls, path: str | Path, data: torch.Tensor, device: str | torch.device | None = None, world: World = World()
    ) -> Trainer:
        """A Trainer restored from a training checkpoint, ready to continue exactly where it stopped, on any
        number of processes (the state is the same in every process; a checkpoint holds rank 0's)."""
        state = load_checkpoint(path, map_location="cpu")
        if state["kind"] != "training":
            raise ValueError(f"{path} is an inference export (EMA weights only) and cannot be resumed; use load_model")
        trainer = cls(TrainConfig(**state["config"]), data, device, world)
        load_weights(trainer.model, state["model"], path)
        load_weights(trainer.ema, ema_weights(state["ema"]), path)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step = int(state["step"])
        trainer.generator.set_state(state["generator"])
        torch.set_rng_state(state["cpu_rng"])
        if trainer.device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        trainer.losses = state["losses"].tolist()
        trainer.runs = list(state.get("runs", []))
        trainer._separate_dropout()
        return trainer

    def export(self, path: str | Path, metadata: dict | None = None) -> Path:
        """Write only what sampling needs (config and EMA weights, float32) atomically: the shipped format."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "kind": "inference",
            "config": asdict(self.config),
            "model": {k: v.float() for k, v in self.ema.state_dict().items()},
            "step": self.step,
            "metadata": json.loads(json.dumps(metadata or {})),  # plain containers only, loadable with weights_only
        }
        return save_atomic(state, path)


def ema_state(ema: torch.nn.Module, step: int) -> dict:
    """The EMA's entry of a training checkpoint, in the layout that torch.optim.swa_utils.AveragedModel writes (and
    that this package wrote when it kept the EMA in one): the weights under "module.", the count of updates in
    "n_averaged". Checkpoints of either kind load the same (ema_weights)."""
    return {f"module.{k}": v for k, v in ema.state_dict().items()} | {"n_averaged": torch.tensor(step)}


def ema_weights(entry: dict) -> dict:
    """The EMA weights of a training checkpoint's "ema" entry (ema_state's layout)."""
    return {k.removeprefix("module."): v for k, v in entry.items() if k.startswith("module.")}


def load_model(path: str | Path, device: str | torch.device = "cpu", expect_model: str | None = None):
    """The EMA noise predictor of a checkpoint (training or inference), in eval mode, and its TrainConfig.

    expect_model: if given ("unet" or "mlp"), a checkpoint of another kind is refused with a clear error.
    """
    state = load_checkpoint(path, map_location="cpu")
    config = TrainConfig(**state["config"])
    if expect_model is not None and config.model != expect_model:
        raise ValueError(f"{path} holds a {config.model!r} model, expected {expect_model!r}")
    model = build_model(config.model, config.model_config)
    if state["kind"] == "training":
        weights = ema_weights(state["ema"])
    else:
        weights = state["model"]
    load_weights(model, weights, path)
    return model.to(device).eval(), config
