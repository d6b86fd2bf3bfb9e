"""Heavy experiments, run once at a scale that resolves them and cached with their provenance in data/results/.

    python -m ddimlib.experiments table1                 # about 25 minutes on a 2-core CPU, a minute on a GPU
    python -m ddimlib.experiments table1 --samples 400 --replicates 3 --out /tmp/table1.json   # a small try

`table1` is the DDIM paper's Table 1 (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
arXiv:2010.02502, Section 5.1) on our digits, with notebook 04's sweep model: FD for eta in {0, 0.2, 0.5, 1}
and sigma-hat at S in {10, 20, 50, 100, 1000} on a linear tau, and eta = 0 on a quadratic tau, each cell
`replicates` independent sets of `samples` digits. Replicate k starts from the same x_T in every cell (so
cells can be compared pairwise), drawn from seeds that notebook 04's live table does not use (so the live
table is an independent check of the cache). Each replicate is also scored in equal parts of the sizes in
`SUB_SIZES`, so that a live table at a smaller n can be compared with the cache at its own n (FD depends on n).

Writes the JSON (every replicate's FD per cell and size, the data floor at each size, the command, commit,
hardware, wall time and sample counts) and a figure beside it (.png). Notebook 04 reads both.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from ddimlib.data import DATA_DIR, load_digits, sha256_of
from ddimlib.metrics import classifier_features, floor_draws, frechet_distance, load_classifier
from ddimlib.models import placement
from ddimlib.sampling import sample
from ddimlib.schedules import Schedule
from ddimlib.training import load_checkpoint, load_model, pick_device

RESULTS_DIR = DATA_DIR / "results"
STEPS = [10, 20, 50, 100, 1000]  # the paper's Table 1 columns
ROWS = {"eta=0": {"eta": 0.0}, "eta=0.2": {"eta": 0.2}, "eta=0.5": {"eta": 0.5}, "eta=1": {"eta": 1.0}, "sigma-hat": {"variance": "hat"}}
SUB_SIZES = (100, 400)  # smaller sets each replicate is also scored in: quick mode's and notebook 04's live N_SAMPLES
SEED = 10_000  # replicate k starts from x_T seeded SEED + k (notebook 04's live table uses 0 + 1000 k)


def cell_name(row: str, steps: int, tau: str = "linear") -> str:
    return f"{row}, S={steps}" + ("" if tau == "linear" else f", {tau} tau")


@torch.no_grad()
def table1(eps_model, schedule: Schedule, samples: int, replicates: int, replicates_1000: int, steps: list[int] = STEPS,
           progress: bool = True) -> dict:
    """FDs of every cell: {cell name: {str(n): [FD of each set of n]}} for n = samples and each of SUB_SIZES
    that divides it, with the floor at each n; 1000-step cells (the costliest: 85 % of the calls) get
    `replicates_1000` replicates, except eta = 1 and sigma-hat, the two rows a claim at S = 1000 compares."""
    from tqdm.auto import tqdm

    classifier = load_classifier()
    reference = classifier_features(load_digits("test").images, classifier)
    device = placement(eps_model)[0]
    sizes = [samples] + [n for n in SUB_SIZES if n < samples and samples % n == 0]
    cells = [(row, s, "linear") for row in ROWS for s in steps] + [("eta=0", s, "quadratic") for s in steps if s < schedule.T]
    fd = {}
    for row, s, tau in tqdm(cells, desc="Table 1", disable=not progress):
        count = replicates_1000 if s == schedule.T and row not in ("eta=1", "sigma-hat") else replicates
        scores = {str(n): [] for n in sizes}
        for k in range(count):
            x_T = torch.randn(samples, 1, 8, 8, generator=torch.Generator().manual_seed(SEED + k)).to(device)
            noise = torch.Generator().manual_seed(SEED + 500 + k)
            x0 = sample(eps_model, schedule, x_T, s, tau=tau, generator=noise, progress=False, **ROWS[row]).cpu()
            features = classifier_features(x0, classifier)
            for n in sizes:
                scores[str(n)] += [frechet_distance(part, reference) for part in features.split(n)]
        fd[cell_name(row, s, tau)] = scores
    floor = {str(n): floor_draws(n, classifier=classifier)["fd"].tolist() for n in sizes}
    return {"fd": fd, "floor": floor, "sizes": sizes}


def provenance(command: str, started: float, device: torch.device) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {
        "command": command,
        "commit": commit or "unknown",
        "date": time.strftime("%Y-%m-%d"),
        "wall_seconds": round(time.monotonic() - started, 1),
        "hardware": {"device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
                     "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(), "torch": str(torch.__version__)},
    }


def plot_table1(result: dict, path: Path) -> Path:
    """FD / floor against S for every row at the largest n, with standard errors; written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = str(result["samples"])
    floor = torch.tensor(result["floor"][n]).mean()
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=130)
    for k, row in enumerate(ROWS):
        values = [torch.tensor(result["fd"][cell_name(row, s)][n], dtype=torch.float64) for s in result["steps"]]
        mean = torch.stack([v.mean() for v in values]) / floor
        se = torch.stack([v.std() / len(v) ** 0.5 if len(v) > 1 else torch.tensor(0.0, dtype=torch.float64) for v in values]) / floor
        ax.errorbar(result["steps"], mean, se, marker="o", capsize=3, color=f"C{k}", label=row)
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="S = dim(tau)", ylabel="FD / data floor",
           title=f"Table 1 on digits: {result['replicates']} x {int(n):,} samples per cell")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ddimlib.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=["table1"])
    parser.add_argument("--model", type=Path, default=DATA_DIR / "checkpoints" / "digits_unet_small.pt", help="a digits UNet export")
    parser.add_argument("--samples", type=int, default=2000, help="digits per set")
    parser.add_argument("--replicates", type=int, default=6, help="independent sets per cell")
    parser.add_argument("--replicates-1000", type=int, default=2, help="sets per 1000-step cell other than eta = 1 and sigma-hat")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "table1.json")
    args = parser.parse_args(argv)
    if args.replicates < 2 or args.replicates_1000 < 2 or args.samples < 2:
        parser.error(f"--samples, --replicates and --replicates-1000 must be >= 2 (a spread needs two sets), got "
                     f"{args.samples}, {args.replicates}, {args.replicates_1000}")
    command = "python -m ddimlib.experiments " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    started = time.monotonic()
    eps_model, config = load_model(args.model, device=pick_device(args.device), expect_model="unet")
    result = {"experiment": "table1", "model": args.model.name, "model_sha256": sha256_of(args.model),
              "model_steps": int(load_checkpoint(args.model)["step"]), "samples": args.samples,
              "replicates": args.replicates, "replicates_1000": args.replicates_1000, "steps": STEPS, "rows": list(ROWS),
              "sampler": "ddimlib.sampling.sample, linear tau unless the cell says quadratic", "reference": "500 held-out digits"}
    result |= table1(eps_model, config.schedule(), args.samples, args.replicates, args.replicates_1000)
    result["provenance"] = provenance(command, started, placement(eps_model)[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(f".{args.out.name}.tmp")
    temporary.write_text(json.dumps(result, indent=1) + "\n")
    temporary.replace(args.out)
    figure = plot_table1(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {figure} in {result['provenance']['wall_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
