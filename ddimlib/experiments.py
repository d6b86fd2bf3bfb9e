"""Heavy experiments, run once at a scale that resolves them and cached with their provenance in data/results/.

    python -m ddimlib.experiments table1                          # the digits (times: data/results/, benchmarks/)
    python -m ddimlib.experiments table1 --dataset fashion_mnist  # 28x28: hours on a CPU, minutes on a GPU; resumable
    python -m ddimlib.experiments regime                          # the map of when eta = 0 wins (Fashion-MNIST)
    python -m ddimlib.experiments figure3                         # the paper's Figure 3 on Fashion-MNIST (minutes)
    python -m ddimlib.experiments table1 --samples 400 --replicates 3 --out /tmp/table1.json   # a small try

`table1` is the DDIM paper's Table 1 (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
arXiv:2010.02502, Section 5.1) on our data: FD for eta in {0, 0.2, 0.5, 1} and sigma-hat at S in
{10, 20, 50, 100, 1000} on a linear tau, and eta = 0 on a quadratic tau, each cell `replicates` independent
sets of `samples` images. Replicate k starts from the same x_T in every cell (so cells can be compared
pairwise), drawn from seeds that notebook 04's live table does not use (so the live table is an independent
check of the cache). Each replicate is also scored in equal parts of the sizes in `SUB_SIZES`, so that a live
table at a smaller n can be compared with the cache at its own n (FD depends on n).

`figure3` is the paper's Figure 3 on Fashion-MNIST: the same x_T sampled by DDIM (eta = 0) and DDPM's two variances
(eta = 1, sigma-hat) at S = 10, 100 and 1000, kept as uint8 images (data/results/figure3_fashion_mnist.pt, loaded with
`load_figure3`) for notebook 04 to show without the minutes its 27,000 sample-steps take on a CPU.

`regime` is the map of when eta = 0 wins: eta 0 and 1 at S = 10, 20, 50, 100 for three models of
Fashion-MNIST: an exact oracle of a smooth density (no model error: discretisation error only), the shipped
model and its early checkpoint (much model error).

Both write their JSON after every cell (atomically), so a run that is stopped resumes where it was with the
same command; the JSON holds every replicate's FD per cell and size, the floors, the command, commit,
hardware, wall time and sample counts, and a figure beside it (.png). Notebook 04 reads both.
"""

from __future__ import annotations

import argparse
import functools
import json
import pickle
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ddimlib import stats
from ddimlib.checkpoints import hardware, load_checkpoint, save_atomic, write_json
from ddimlib.data import DATA_DIR, IMAGE_SHAPES, load_fashion_mnist, sha256_of
from ddimlib.loop import placement
from ddimlib.metrics import (
    FLOOR_DRAWS,
    classifier_features,
    floor_draws,
    frechet_distance,
    reference_features,
    shipped_classifier,
)
from ddimlib.oracle import empirical
from ddimlib.sampling import sample
from ddimlib.schedules import Schedule
from ddimlib.training import TrainConfig, load_model, pick_device

RESULTS_DIR = DATA_DIR / "results"
CHECKPOINTS = DATA_DIR / "checkpoints"
STEPS = [10, 20, 50, 100, 1000]  # the paper's Table 1 columns
ROWS = {
    "eta=0": {"eta": 0.0},
    "eta=0.2": {"eta": 0.2},
    "eta=0.5": {"eta": 0.5},
    "eta=1": {"eta": 1.0},
    "sigma-hat": {"variance": "hat"},
}
SUB_SIZES = (100, 400)  # smaller sets each replicate is also scored in: quick mode's and notebook 04's live N_SAMPLES
SEED = 10_000  # replicate k starts from x_T seeded SEED + k (notebook 04's live table uses 0 + 1000 k)
# a set is sampled in batches of this many: the 28x28 UNet's activations for more than about a hundred images overflow
# a CPU's caches (the figures: benchmarks/README.md, "Figures behind constants"); each batch continues the set's noise
# generator, so a cell is the same on every run
SAMPLE_BATCH = {"digits": 2000, "fashion_mnist": 125}
# per data set: the model, the samples per set, the replicates (and for the 1000-step cells that no claim compares),
# the output
TABLE1_DEFAULTS = {
    "digits": (CHECKPOINTS / "digits_unet_small.pt", 2000, 6, 2, RESULTS_DIR / "table1.json"),
    "fashion_mnist": (CHECKPOINTS / "fashion_unet.pt", 1000, 4, 2, RESULTS_DIR / "table1_fashion_mnist.json"),
}
REGIME_STEPS = [10, 20, 50, 100]
REGIME_MODELS = ("oracle", "early", "shipped")  # what `regime --models` can sample
# what a complete map needs: the shipped model's row is Table 1's cells (the same etas and S; notebook 04 reads them),
# which saves the two hours the regime's own shipped row costs on a CPU
REGIME_NEEDED = ("oracle", "early")
REGIME_ETAS = (0.0, 1.0)
ORACLE_IMAGES, ORACLE_STD = 4000, 0.05  # the smooth density: 4,000 training images, each a Gaussian of this std
ORACLE_REFERENCE = (
    10_000  # exact draws of the oracle's density that its samples are scored against (as many as the test images)
)


def cell_name(row: str, steps: int, tau: str = "linear") -> str:
    return f"{row}, S={steps}" + ("" if tau == "linear" else f", {tau} tau")


def sample_set(
    eps_model, schedule: Schedule, x_T: torch.Tensor, steps: int, generator: torch.Generator, batch: int, **sampler
) -> torch.Tensor:
    """`ddimlib.sampling.sample` of x_T in batches of `batch` (in order, all drawing noise from `generator`), on the
    CPU."""
    return torch.cat(
        [
            sample(eps_model, schedule, part, steps, generator=generator, progress=False, **sampler).cpu()
            for part in x_T.split(batch)
        ]
    )


def _scored_sets(x0: torch.Tensor, sizes: list[int], classifier, reference: torch.Tensor, scores: dict) -> None:
    """Append the FD of x0 (and of its equal parts of each smaller size) against reference features to scores[size]."""
    features = classifier_features(x0, classifier)
    for n in sizes:
        scores[str(n)] += [frechet_distance(part, reference) for part in features.split(n)]


def table1_cells(
    steps: list[int], replicates: int, replicates_1000: int, T: int = 1000
) -> list[tuple[str, int, str, int]]:
    """The cells a Table 1 run computes, cheapest first (a run stopped midway has the most cells): (row, S, tau,
    replicates) for every row at every S on a linear tau and eta = 0 on a quadratic one below S = T. The S = T cells
    (the costliest: 85 % of the calls) get `replicates_1000` replicates and are left out at 0, except eta = 1 and
    sigma-hat, the two rows a claim at S = T compares."""
    cells = [(row, s, "linear") for row in ROWS for s in steps] + [("eta=0", s, "quadratic") for s in steps if s < T]
    cells.sort(key=lambda cell: cell[1])
    counts = [replicates_1000 if s == T and row not in ("eta=1", "sigma-hat") else replicates for row, s, _ in cells]
    return [cell + (count,) for cell, count in zip(cells, counts) if count > 0]


@torch.no_grad()
def table1(
    eps_model,
    schedule: Schedule,
    samples: int,
    replicates: int,
    replicates_1000: int,
    steps: list[int] = STEPS,
    progress: bool = True,
    dataset: str = "digits",
    done: dict | None = None,
    save: Callable[[dict], None] | None = None,
) -> dict:
    """FDs of every cell: {"fd": {cell name: {str(n): [FD of each set of n]}}} for n = samples and each of
    SUB_SIZES that divides it, with the floor at each n; 1000-step cells (the costliest: 85 % of the calls) get
    `replicates_1000` replicates (0: those cells are left out), except eta = 1 and sigma-hat, the two rows a claim
    at S = 1000 compares.

    done: an earlier, unfinished result of the same call; its cells are kept, not recomputed. save(result) is
    called after every cell (the command writes the JSON there)."""
    from tqdm.auto import tqdm

    classifier, reference = shipped_classifier(dataset), reference_features(dataset)
    device = placement(eps_model)[0]
    sizes = [samples] + [n for n in SUB_SIZES if n < samples and samples % n == 0]
    # the floor first, so that an unfinished table (its .partial.json) can be read against it
    floor = (done or {}).get("floor") or {str(n): floor_draws(n, dataset=dataset)["fd"].tolist() for n in sizes}
    result = {"sizes": sizes, "floor": floor, "fd": dict((done or {}).get("fd", {}))}
    cells = table1_cells(steps, replicates, replicates_1000, schedule.T)
    for row, s, tau, count in tqdm(cells, desc="Table 1", disable=not progress):
        name = cell_name(row, s, tau)
        if name in result["fd"]:
            continue
        scores = {str(n): [] for n in sizes}
        for k in range(count):
            x_T = torch.randn(samples, *IMAGE_SHAPES[dataset], generator=torch.Generator().manual_seed(SEED + k)).to(
                device
            )
            noise = torch.Generator().manual_seed(SEED + 500 + k)
            x0 = sample_set(eps_model, schedule, x_T, s, noise, SAMPLE_BATCH[dataset], tau=tau, **ROWS[row])
            _scored_sets(x0, sizes, classifier, reference, scores)
        result["fd"][name] = scores
        if save is not None:
            save(result)
    return result


# the paper's Figure 3 on 28x28: the same x_T sampled by three rows at three S
FIGURE3_ROWS = ("eta=0", "eta=1", "sigma-hat")
FIGURE3_STEPS = (10, 100, 1000)
FIGURE3_IMAGES = 8


@torch.no_grad()
def figure3(eps_model, schedule: Schedule, images: int = FIGURE3_IMAGES, seed: int = SEED) -> torch.Tensor:
    """The same `images` x_T (seeded `seed`) sampled by each of FIGURE3_ROWS at each of FIGURE3_STEPS, every cell
    with its noise generator started afresh (seed + 500, as Table 1's first replicate): uint8 pixels (0-255) of shape
    (rows, steps, images, 28, 28)."""
    device = placement(eps_model)[0]
    x_T = torch.randn(images, *IMAGE_SHAPES["fashion_mnist"], generator=torch.Generator().manual_seed(seed))
    cells = [
        torch.stack(
            [
                sample_set(
                    eps_model,
                    schedule,
                    x_T.to(device),
                    s,
                    torch.Generator().manual_seed(seed + 500),
                    images,
                    **ROWS[row],
                )
                for s in FIGURE3_STEPS
            ]
        )
        for row in FIGURE3_ROWS
    ]
    return ((torch.stack(cells).squeeze(3).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def load_figure3(path: str | Path) -> dict:
    """A `figure3` result: {"images": uint8 (rows, steps, images, 28, 28), "rows", "steps", "model", "provenance"},
    loaded without unpickling code (torch.load, weights_only). Raises ValueError for a file that is not one."""
    try:
        result = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(f"{path} is not a figure3 result ({error})") from error
    expected = (len(FIGURE3_ROWS), len(FIGURE3_STEPS))
    images = result.get("images") if isinstance(result, dict) else None
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or tuple(images.shape[:2]) != expected:
        raise ValueError(f"{path} is not a figure3 result: expected uint8 images of shape {expected} + (images, H, W)")
    return result


def regime_name(model: str, eta: float, steps: int) -> str:
    return f"{model}, eta={eta:g}, S={steps}"


@torch.no_grad()
def regime_map(
    models: dict,
    schedule: Schedule,
    samples: int,
    replicates: int,
    steps: list[int] = REGIME_STEPS,
    etas: tuple[float, ...] = REGIME_ETAS,
    progress: bool = True,
    done: dict | None = None,
    save: Callable[[dict], None] | None = None,
) -> dict:
    """FD of eta x S cells for several models of Fashion-MNIST, each against its own distribution.

    models: {name: (eps_model, reference)}: reference None scores against the 10,000 test images with the data
    floor; an oracle's reference is its own density (a `ddimlib.oracle.GaussianMixture`), scored against
    ORACLE_REFERENCE exact draws of it, its floor n fresh exact draws against the same. Returns
    {"fd": {cell: [FD of each replicate]}, "floor": {model: [FD of each of 20 floor draws]}}; done and save as in
    `table1`."""
    from tqdm.auto import tqdm

    classifier = shipped_classifier("fashion_mnist")
    result = {"fd": dict((done or {}).get("fd", {})), "floor": dict((done or {}).get("floor", {}))}
    for name, (eps_model, density) in models.items():
        if density is None:
            reference = reference_features("fashion_mnist")
        else:
            exact = (
                density.sample(ORACLE_REFERENCE, generator=torch.Generator().manual_seed(SEED - 1))
                .float()
                .reshape(-1, 1, 28, 28)
            )
            reference = classifier_features(exact, classifier)
        if name not in result["floor"]:  # the floor first, so that an unfinished map can be read against it
            if density is None:
                result["floor"][name] = floor_draws(samples, dataset="fashion_mnist")["fd"].tolist()
            else:
                generator = torch.Generator().manual_seed(SEED - 2)
                draws = (
                    density.sample(samples, generator=generator).float().reshape(-1, 1, 28, 28)
                    for _ in range(FLOOR_DRAWS)
                )
                result["floor"][name] = [
                    frechet_distance(classifier_features(x, classifier), reference) for x in draws
                ]
            if save is not None:
                save(result)
        device = placement(eps_model)[0]
        for eta in etas:
            for s in tqdm(steps, desc=f"{name}, eta={eta:g}", disable=not progress):
                cell = regime_name(name, eta, s)
                if cell in result["fd"]:
                    continue
                scores = {str(samples): []}
                for k in range(replicates):
                    x_T = torch.randn(samples, 1, 28, 28, generator=torch.Generator().manual_seed(SEED + k)).to(device)
                    noise = torch.Generator().manual_seed(SEED + 500 + k)
                    x0 = sample_set(eps_model, schedule, x_T, s, noise, SAMPLE_BATCH["fashion_mnist"], eta=eta)
                    _scored_sets(x0, [samples], classifier, reference, scores)
                result["fd"][cell] = scores[str(samples)]
                if save is not None:
                    save(result)
    return result


def regime_missing(result: dict) -> list[str]:
    """The models of REGIME_NEEDED some of whose regime cells (the result's own steps and etas) `result` does not hold
    yet."""
    steps, etas = result.get("steps", REGIME_STEPS), result.get("etas", REGIME_ETAS)
    return [
        name
        for name in REGIME_NEEDED
        if any(regime_name(name, eta, s) not in result["fd"] for eta in etas for s in steps)
    ]


def compiled(network: torch.nn.Module, shape: tuple[int, ...]) -> torch.nn.Module:
    """The network torch.compile'd for sampling, or the network itself where compiling fails on this machine (tried
    on one call of a batch of `shape`, since torch.compile fails only when first called). Compiled, the 28x28 UNet
    samples faster on a CPU (benchmarks/README.md, "Figures behind constants"); its numbers differ from eager ones by
    float32 rounding only."""
    device = placement(network)[0]
    fast = torch.compile(network)
    try:
        with torch.no_grad():
            fast(torch.zeros(shape, device=device), torch.ones(shape[0], dtype=torch.int64, device=device))
    except Exception as error:  # torch.compile raises many kinds (no C++ compiler, unsupported backend, ...)
        print(f"torch.compile failed on {device} ({type(error).__name__}: {str(error)[:200]}); sampling eagerly")
        return network
    return fast


@functools.cache
def running_commit() -> str:
    """The commit this process's code came from: read once (main reads it at start), so that a run that lasts hours
    records the code it ran, not the HEAD of the moment it saved."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except OSError:
        commit = ""
    return commit or "unknown"


def provenance(command: str, started: float, device: torch.device) -> dict:
    return {
        "command": command,
        "commit": running_commit(),
        "date": time.strftime("%Y-%m-%d"),
        "wall_seconds": round(time.monotonic() - started, 1),
        "hardware": hardware(device),
    }


def _ratio_curve(ax, values: list[torch.Tensor], steps: list[int], floor: torch.Tensor, **style) -> None:
    """One curve of FD / floor against S: the mean of each cell's replicates, with its standard error."""
    mean, se = torch.tensor([stats.mean_se(v) for v in values], dtype=torch.float64).T / floor
    ax.errorbar(steps, mean, se, marker="o", capsize=3, **style)


def _save_figure(fig, ax, path: Path, title: str, ylabel: str) -> Path:
    ax.axhline(1, color="k", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="S = dim(tau)", ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_table1(result: dict, path: Path) -> Path:
    """FD / floor against S for every row at the largest n, with standard errors; written as a PNG."""
    from matplotlib.figure import Figure

    n = str(result["samples"])
    floor = torch.tensor(result["floor"][n], dtype=torch.float64).mean()
    fig = Figure(figsize=(6, 3.6), dpi=130)
    ax = fig.subplots()
    for k, row in enumerate(ROWS):
        # a table may leave out 1000-step cells
        steps = [s for s in result["steps"] if cell_name(row, s) in result["fd"]]
        values = [torch.tensor(result["fd"][cell_name(row, s)][n], dtype=torch.float64) for s in steps]
        _ratio_curve(ax, values, steps, floor, color=f"C{k}", label=row)
    data = {"digits": "digits", "fashion_mnist": "Fashion-MNIST"}[result.get("dataset", "digits")]
    return _save_figure(
        fig, ax, path, f"Table 1 on {data}: {result['replicates']} x {int(n):,} samples per cell", "FD / data floor"
    )


def plot_regime(result: dict, path: Path) -> Path:
    """FD / floor against S for each model, eta = 0 solid and eta = 1 dashed, with standard errors; a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.8), dpi=130)
    ax = fig.subplots()
    for k, model in enumerate(name for name in REGIME_MODELS if name in result["floor"]):
        floor = torch.tensor(result["floor"][model], dtype=torch.float64).mean()
        for eta, style in zip(result["etas"], ("-", "--")):
            values = [
                torch.tensor(result["fd"][regime_name(model, eta, s)], dtype=torch.float64) for s in result["steps"]
            ]
            _ratio_curve(ax, values, result["steps"], floor, ls=style, color=f"C{k}", label=f"{model}, eta = {eta:g}")
    return _save_figure(
        fig,
        ax,
        path,
        f"When eta = 0 wins: {result['replicates']} x {result['samples']:,} samples per cell",
        "FD / its floor",
    )


def partial_path(out: Path) -> Path:
    """Where a run of `out` keeps its cells while it is unfinished: beside it, as .partial.json. The result itself is
    written only when complete, so a stopped run never replaces a finished one."""
    return out.with_name(out.stem + ".partial.json")


def unfinished(out: Path, settings: dict) -> dict | None:
    """The cells of an unfinished run of `out` (its partial_path) with the same settings, to resume; None if there
    is none.

    Refuses (SystemExit) an unfinished run with other settings: its cells would not belong to this result."""
    partial = partial_path(out)
    if not partial.exists():
        return None
    previous = json.loads(partial.read_text())
    # a dict of models agrees on the models both hold
    agrees = lambda old, new: (
        all(old[k] == new[k] for k in old.keys() & new.keys())
        if isinstance(old, dict) and isinstance(new, dict)
        else old == new
    )
    differ = {
        key: (previous.get(key), value) for key, value in settings.items() if not agrees(previous.get(key), value)
    }
    if differ:
        raise SystemExit(
            f"{partial} holds an unfinished run with other settings ({differ}: was, now); "
            "resume it with its own settings, give another --out, or delete it to start again"
        )
    return previous


def _model_record(path: Path) -> dict:
    return {"file": path.name, "sha256": sha256_of(path), "steps": int(load_checkpoint(path)["step"])}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command's arguments, with the experiment's defaults filled in (dataset, model, out, samples, replicates,
    replicates_1000) and `chosen`, the regime's models to compute now; refused with a message where they cannot
    work (including a model file that is not there)."""
    parser = argparse.ArgumentParser(prog="python -m ddimlib.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=["table1", "regime", "figure3"])
    parser.add_argument(
        "--dataset",
        choices=list(TABLE1_DEFAULTS),
        help="table1: digits (default) or fashion_mnist; regime and figure3: fashion_mnist only",
    )
    parser.add_argument(
        "--model", type=Path, help="a UNet export (default: the data set's sweep model in data/checkpoints/)"
    )
    parser.add_argument(
        "--early-model", type=Path, default=CHECKPOINTS / "fashion_unet_early.pt", help="regime: the early checkpoint"
    )
    parser.add_argument(
        "--models",
        default=",".join(REGIME_NEEDED),
        help=f"regime: which of {', '.join(REGIME_MODELS)} to compute now (default {', '.join(REGIME_NEEDED)}, the "
        "map's own rows: notebook 04 takes the shipped model's from Table 1; a run of some is resumed with the rest)",
    )
    parser.add_argument("--samples", type=int, help="images per set (default: digits 2,000, Fashion-MNIST 1,000)")
    parser.add_argument(
        "--replicates", type=int, help="independent sets per cell (default: digits 6, Fashion-MNIST 4, regime 6)"
    )
    parser.add_argument(
        "--replicates-1000",
        type=int,
        help="table1: sets per 1000-step cell other than eta = 1 and sigma-hat "
        "(default 2; 0 leaves those cells out, where a CPU's time is short)",
    )
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument(
        "--out",
        type=Path,
        help="the file to write (default: data/results/table1.json, table1_fashion_mnist.json, "
        "regime_fashion_mnist.json or figure3_fashion_mnist.pt)",
    )
    args = parser.parse_args(argv)
    regime = args.experiment == "regime"
    args.dataset = args.dataset or ("digits" if args.experiment == "table1" else "fashion_mnist")
    if args.experiment != "table1" and args.dataset != "fashion_mnist":
        parser.error(f"{args.experiment} is on fashion_mnist, not {args.dataset!r}")
    args.chosen = [name for name in args.models.split(",") if name]
    if regime and (not args.chosen or set(args.chosen) - set(REGIME_MODELS)):
        parser.error(f"--models must name some of {', '.join(REGIME_MODELS)}, got {args.models!r}")
    model, samples, replicates, replicates_1000, out = TABLE1_DEFAULTS[args.dataset]
    if regime:
        out, replicates = RESULTS_DIR / "regime_fashion_mnist.json", 6
    if args.experiment == "figure3":
        out = RESULTS_DIR / "figure3_fashion_mnist.pt"
    args.model, args.out = args.model or model, args.out or out
    args.samples = samples if args.samples is None else args.samples
    args.replicates = replicates if args.replicates is None else args.replicates
    args.replicates_1000 = replicates_1000 if args.replicates_1000 is None else args.replicates_1000
    if min(args.samples, args.replicates) < 2 or args.replicates_1000 == 1 or args.replicates_1000 < 0:
        parser.error(
            "--samples and --replicates must be >= 2 (a spread needs two sets), --replicates-1000 0 or >= 2, got "
            f"{args.samples}, {args.replicates}, {args.replicates_1000}"
        )
    needed = [path for name, path in (("early", args.early_model), ("shipped", args.model)) if name in args.chosen]
    missing = [str(path) for path in ([args.model] if not regime else needed) if not path.exists()]
    if missing:
        parser.error(
            f"no model at {', '.join(missing)}; the Fashion-MNIST UNet may still be training (data/README.md says "
            "how to finish it), or give --model / --early-model"
            + ("; --models oracle,early computes the rest now" if regime else "")
        )
    return args


def regime_models(args: argparse.Namespace, schedule: Schedule, device: torch.device) -> tuple[dict, dict]:
    """The regime map's models named in args.chosen, as {name: (eps_model, its exact noise predictor or None)},
    and their records for the result's settings. Every network must share the oracle's schedule."""
    models, records = {}, {}
    for name in args.chosen:
        if name == "oracle":
            # a smooth density: each image a Gaussian, not a point mass (whose denoiser a sampler reproduces, so
            # that it sits at the floor after 10 steps with any sampler)
            density = empirical(load_fashion_mnist("train").images[:ORACLE_IMAGES], ORACLE_STD)
            models[name] = (density.eps_model(schedule), density)
            records[name] = {
                "images": ORACLE_IMAGES,
                "std": ORACLE_STD,
                "what": f"the first {ORACLE_IMAGES:,} Fashion-MNIST training images, each a Gaussian of std "
                f"{ORACLE_STD}",
            }
            continue
        path = args.early_model if name == "early" else args.model
        network, config = load_model(path, device=device, expect_model="unet")
        network = compiled(network, (SAMPLE_BATCH["fashion_mnist"], *IMAGE_SHAPES["fashion_mnist"]))
        if not torch.equal(config.schedule().alpha, schedule.alpha):
            raise SystemExit(f"{path} was trained on another schedule than the oracle's (T = {config.T})")
        models[name], records[name] = (network, None), _model_record(path)
    return models, records


def figure3_command(args: argparse.Namespace, command: str, started: float, device: torch.device) -> int:
    """`figure3`: sample the panels with args.model and write them, with their record, to args.out (atomically)."""
    # 27,000 sample-steps in batches of FIGURE3_IMAGES: compiling would cost more than it saves
    eps_model, config = load_model(args.model, device=device, expect_model="unet")
    result = {
        "images": figure3(eps_model, config.schedule()),
        "rows": list(FIGURE3_ROWS),
        "steps": list(FIGURE3_STEPS),
        "model": _model_record(args.model),
        "provenance": provenance(command, started, device),
    }
    save_atomic(result, args.out)
    print(f"wrote {args.out} in {result['provenance']['wall_seconds'] / 60:.1f} min")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command: compute the experiment's cells (resuming an unfinished run of the same settings, saving the
    cells after each one), then write the result with its provenance and figure."""
    args = parse_args(argv)
    command = "python -m ddimlib.experiments " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    started = time.monotonic()
    running_commit()  # now, before hours of sampling during which the checkout may move on
    device = pick_device(args.device)
    if args.experiment == "figure3":
        return figure3_command(args, command, started, device)
    settings = {
        "experiment": args.experiment,
        "dataset": args.dataset,
        "samples": args.samples,
        "replicates": args.replicates,
    }
    if args.experiment == "table1":
        eps_model, config = load_model(args.model, device=device, expect_model="unet")
        eps_model = compiled(eps_model, (SAMPLE_BATCH[args.dataset], *IMAGE_SHAPES[args.dataset]))
        record = _model_record(args.model)
        settings |= {
            "model": record["file"],
            "model_sha256": record["sha256"],
            "model_steps": record["steps"],
            "replicates_1000": args.replicates_1000,
            "steps": STEPS,
            "rows": list(ROWS),
            "sampler": "ddimlib.sampling.sample, linear tau unless the cell says quadratic",
            "reference": "500 held-out digits" if args.dataset == "digits" else "the 10,000 Fashion-MNIST test images",
        }
    else:
        # every model here is trained on the default linear schedule (regime_models checks it)
        schedule = TrainConfig().schedule()
        models, records = regime_models(args, schedule, device)
        settings |= {"steps": REGIME_STEPS, "etas": list(REGIME_ETAS), "models": records}
    previous = unfinished(args.out, settings)
    if previous is not None and "models" in settings:
        # the models an earlier run computed stay in the record
        settings["models"] = previous["models"] | settings["models"]
    runs = (previous or {}).get("runs", [])
    save = lambda cells: write_json(
        settings | cells | {"complete": False, "runs": runs + [provenance(command, started, device)]},
        partial_path(args.out),
        indent=1,
    )
    if args.experiment == "table1":
        cells = table1(
            eps_model,
            config.schedule(),
            args.samples,
            args.replicates,
            args.replicates_1000,
            dataset=args.dataset,
            done=previous,
            save=save,
        )
        complete = True
    else:
        cells = regime_map(models, schedule, args.samples, args.replicates, done=previous, save=save)
        complete = not regime_missing(cells)
    runs = runs + [provenance(command, started, device)]
    result = settings | cells | {"complete": complete, "runs": runs}
    result["provenance"] = runs[-1] | {
        "wall_seconds": round(sum(run["wall_seconds"] for run in runs), 1),
        "sessions": len(runs),
    }
    minutes = result["provenance"]["wall_seconds"] / 60
    if not complete:
        write_json(result, partial_path(args.out), indent=1)
        still = ",".join(regime_missing(cells))
        print(
            f"wrote {partial_path(args.out)} in {minutes:.1f} min; still to compute: {still} "
            f"(the same command with --models {still} resumes it)"
        )
        return 0
    write_json(result, args.out, indent=1)
    partial_path(args.out).unlink(missing_ok=True)
    figure = (plot_table1 if args.experiment == "table1" else plot_regime)(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {figure} in {minutes:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
