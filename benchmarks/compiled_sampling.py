"""How much faster do the experiments sample with a torch.compile'd network?

    .venv/bin/python benchmarks/compiled_sampling.py [--model data/checkpoints/fashion_unet.pt] [--batch 125]

`ddimlib.experiments` samples Table 1 and the regime map through `experiments.compiled(network)`. This prints the
time of one network call (a batch of --batch images at t = 500) eager and compiled: medians of --repeats interleaved
rounds (`ddimlib.timing.interleaved_medians`, after a warm-up call of each), their ratio, the sample-steps per second
each gives, and the largest difference between the two outputs. Recorded figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddimlib.checkpoints import load_checkpoint  # noqa: E402
from ddimlib.data import IMAGE_SHAPES  # noqa: E402
from ddimlib.experiments import SAMPLE_BATCH, compiled  # noqa: E402
from ddimlib.timing import interleaved_medians  # noqa: E402
from ddimlib.training import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "data" / "checkpoints" / "fashion_unet.pt")
    parser.add_argument("--batch", type=int, default=SAMPLE_BATCH["fashion_mnist"])
    parser.add_argument("--calls", type=int, default=4, help="network calls per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    network, _ = load_model(args.model, expect_model="unet")
    x = torch.randn(args.batch, *IMAGE_SHAPES["fashion_mnist"], generator=torch.Generator().manual_seed(0))
    t = torch.full((args.batch,), 500)
    fast = compiled(network, tuple(x.shape))

    def calls(model):
        with torch.no_grad():
            for _ in range(args.calls):
                model(x, t)

    medians = interleaved_medians({"eager": lambda: calls(network), "compiled": lambda: calls(fast)}, args.repeats)
    with torch.no_grad():
        difference = (fast(x, t) - network(x, t)).abs().max().item()
    print(
        f"{args.model.name} (step {load_checkpoint(args.model)['step']}), batch {args.batch}, "
        f"{torch.get_num_threads()} threads"
    )
    for name, seconds in medians.items():
        per_call = seconds / args.calls
        print(f"  {name:>8}: {1000 * per_call:7.1f} ms per call, {args.batch / per_call:6.0f} sample-steps/s")
    print(f"  compiled is {medians['eager'] / medians['compiled']:.2f}x faster; largest |difference| {difference:.1e}")


if __name__ == "__main__":
    main()
