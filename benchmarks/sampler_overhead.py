"""How much time does ddimlib's DDIM sampler spend outside the network?

For the shipped digits UNet at S = 50 on a batch of 256, prints the median over several runs of
- the network alone: the S forward passes the sampler makes (ddimlib.timing.network_only),
- ddimlib.sampling.sample at eta = 0,
- the same network driven by diffusers' DDIMScheduler (trailing spacing), when diffusers is installed,
and the overhead ratio (sampler time - network time) / network time of each loop, two ways:
1. separate runs: the three loops timed in interleaved rounds, so that a slow spell of a shared
   machine hits them alike; the ratio is a difference of two medians of runs seconds apart;
2. within each run: the network wrapped in a clock (ddimlib.timing.NetworkClock), so that each run
   of a sampler is split into time inside and outside the network, which alternate every step.
It also prints the sampler's own time per step with a network that costs nothing. Before timing,
the diffusers loop's sample is checked against ddimlib's.

    .venv/bin/python benchmarks/sampler_overhead.py [--batch 256] [--steps 50] [--repeats 7]

diffusers is optional: `.venv/bin/pip install -e .[bench]`. Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from ddimlib.sampling import sample
from ddimlib.schedules import timesteps
from ddimlib.timing import interleaved_medians, network_only, overhead_split
from ddimlib.training import load_model

CHECKPOINT = Path(__file__).resolve().parent.parent / "data" / "checkpoints" / "digits_unet.pt"


def diffusers_loop(schedule, steps: int):
    """A DDIM sampler made of diffusers' DDIMScheduler, run(model, x_T), or None if diffusers is not installed.

    diffusers counts timesteps from 0, so its t is the paper's t - 1: its alphas_cumprod[t] is our
    alpha[t + 1], its trailing timesteps 999, 979, ..., 19 are our tau = 1000, 980, ..., 20, and the
    network is called at the paper's t + 1. The betas are handed over exactly (trained_betas)."""
    try:
        from diffusers import DDIMScheduler
    except ImportError:
        return None
    scheduler = DDIMScheduler(
        num_train_timesteps=schedule.T,
        trained_betas=schedule.beta[1:].numpy(),
        timestep_spacing="trailing",
        set_alpha_to_one=True,  # the last step goes to alpha = 1, our tau_0 = 0
        clip_sample=False,
        prediction_type="epsilon",
    )
    scheduler.set_timesteps(steps)

    @torch.no_grad()
    def run(model, x_T: torch.Tensor) -> torch.Tensor:
        x = x_T
        for t in scheduler.timesteps:
            eps = model(x, torch.full((x.shape[0],), int(t) + 1, dtype=torch.int64, device=x.device))
            x = scheduler.step(eps, t, x, eta=0.0).prev_sample
        return x

    return run, [int(t) + 1 for t in scheduler.timesteps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    eps_model, config = load_model(CHECKPOINT, expect_model="unet")
    schedule = config.schedule()
    x_T = torch.randn(args.batch, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    tau = timesteps(args.steps, schedule.T, "linear")
    samplers = {"ddimlib sample": lambda model: sample(model, schedule, x_T, args.steps, eta=0.0, progress=False)}
    other = diffusers_loop(schedule, args.steps)
    if other is None:
        print("diffusers is not installed: `.venv/bin/pip install -e .[bench]` adds the comparison")
    else:
        run, their_tau = other
        assert their_tau == list(reversed(tau.tolist())), f"diffusers' trailing timesteps {their_tau} are not our tau"
        ours, theirs = samplers["ddimlib sample"](eps_model), run(eps_model, x_T)
        difference = float((ours - theirs).abs().max())
        print(
            f"diffusers DDIMScheduler vs ddimlib.sample, same x_T: max |difference| = {difference:.2e} (samples in "
            f"[-1, 1])"
        )
        assert difference < 1e-3, "the two loops do not compute the same sampler"
        samplers["diffusers DDIMScheduler"] = lambda model: run(model, x_T)

    print(
        f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"digits UNet, batch {args.batch}, S = {args.steps}, medians of {args.repeats} runs\n")

    loops = {"network only": lambda: network_only(eps_model, x_T, tau)}
    loops.update({name: (lambda run=run: run(eps_model)) for name, run in samplers.items()})
    median = interleaved_medians(loops, repeats=args.repeats)
    network = median["network only"]
    print("1. separate runs, interleaved: overhead = (sampler - network only) / network only")
    print(f"{'loop':26s} {'seconds':>9s} {'overhead':>10s}")
    for name, seconds in median.items():
        overhead = "" if name == "network only" else f"{100 * (seconds - network) / network:+.2f} %"
        print(f"{name:26s} {seconds:9.4f} {overhead:>10s}")

    print("\n2. within each run: overhead = (run - time inside the network) / time inside the network")
    print(f"{'loop':26s} {'run s':>9s} {'network s':>10s} {'overhead':>10s}")
    splits = {name: overhead_split(run, eps_model, repeats=args.repeats) for name, run in samplers.items()}
    for name, split in splits.items():
        print(f"{name:26s} {split.total:9.4f} {split.network:10.4f} {100 * split.overhead:+9.2f} %")

    eps = torch.zeros_like(x_T)
    free = overhead_split(samplers["ddimlib sample"], lambda x_t, t: eps, repeats=args.repeats)
    per_step = (free.total - free.network) / args.steps
    print(
        f"\nddimlib sample's own time with a network that costs nothing: {1e3 * per_step:.3f} ms per step, "
        f"{100 * per_step * args.steps / splits['ddimlib sample'].network:.2f} % of the UNet's time"
    )
    if len(splits) == 2:
        print(
            f"diffusers loop time / ddimlib loop time (within-run medians) = "
            f"{splits['diffusers DDIMScheduler'].total / splits['ddimlib sample'].total:.3f}"
        )
    verdict = "met" if splits["ddimlib sample"].overhead <= 0.02 else "NOT met"
    print(f"goal, ddimlib's overhead at most 2 % (within-run figure): {verdict}")


if __name__ == "__main__":
    main()
