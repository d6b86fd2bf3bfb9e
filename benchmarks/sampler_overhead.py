"""How much time does ddimlib's DDIM sampler spend outside the network?

For the shipped digits UNet at S = 50 on a batch of 256, prints the median over several runs of
- the network alone: the S forward passes the sampler makes (ddimlib.timing.network_only),
- ddimlib.sampling.sample at eta = 0,
- the same network driven by diffusers' DDIMScheduler (trailing spacing), when diffusers is installed,
and the overhead ratio (sampler time - network time) / network time of each loop. The three are
timed in interleaved rounds so that a slow spell of a shared machine hits them alike. Before timing,
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
from ddimlib.timing import interleaved_medians, network_only
from ddimlib.training import load_model

CHECKPOINT = Path(__file__).resolve().parent.parent / "data" / "checkpoints" / "digits_unet.pt"


def diffusers_loop(eps_model, schedule, steps: int):
    """A DDIM sampler made of diffusers' DDIMScheduler, or None if diffusers is not installed.

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
    def run(x_T: torch.Tensor) -> torch.Tensor:
        x = x_T
        for t in scheduler.timesteps:
            eps = eps_model(x, torch.full((x.shape[0],), int(t) + 1, dtype=torch.int64))
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
    loops = {
        "network only": lambda: network_only(eps_model, x_T, tau),
        "ddimlib sample": lambda: sample(eps_model, schedule, x_T, args.steps, eta=0.0, progress=False),
    }
    other = diffusers_loop(eps_model, schedule, args.steps)
    if other is None:
        print("diffusers is not installed: `.venv/bin/pip install -e .[bench]` adds the comparison")
    else:
        run, their_tau = other
        assert their_tau == list(reversed(tau.tolist())), f"diffusers' trailing timesteps {their_tau} are not our tau"
        ours, theirs = loops["ddimlib sample"](), run(x_T)
        difference = float((ours - theirs).abs().max())
        print(f"diffusers DDIMScheduler vs ddimlib.sample, same x_T: max |difference| = {difference:.2e} (samples in [-1, 1])")
        assert difference < 1e-3, "the two loops do not compute the same sampler"
        loops["diffusers DDIMScheduler"] = lambda: run(x_T)

    median = interleaved_medians(loops, repeats=args.repeats)
    network = median["network only"]

    print(f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"digits UNet, batch {args.batch}, S = {args.steps}, median of {args.repeats} interleaved runs\n")
    print(f"{'loop':26s} {'seconds':>9s} {'overhead vs network':>20s}")
    for name, seconds in median.items():
        overhead = "" if name == "network only" else f"{100 * (seconds - network) / network:+.2f} %"
        print(f"{name:26s} {seconds:9.4f} {overhead:>20s}")
    if "diffusers DDIMScheduler" in median:
        print(f"\ndiffusers loop time / ddimlib loop time = {median['diffusers DDIMScheduler'] / median['ddimlib sample']:.3f}")


if __name__ == "__main__":
    main()
