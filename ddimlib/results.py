"""The cached experiments, read: a Table 1's cells, its paired verdicts on the paper's claims, the paper's own rows.

`ddimlib.experiments` computes and writes data/results/; this module only reads what it wrote, for notebook 04 and for
notebook 00's roadmap, so that a number quoted anywhere comes from the cache at run time.

    result = load_result("table1_fashion_mnist.json")  # unfinished: its .partial.json, with "complete": False
    print(format_table1(result))
    for name, verdict in table1_claims(result).items(): ...
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ddimlib import stats
from ddimlib.experiments import RESULTS_DIR, ROWS, STEPS, cell_name, partial_path, regime_name
from ddimlib.metrics import floor_draws

# the DDIM paper's Table 1, CIFAR-10: FID of 50,000 samples (quadratic tau) at S = 10, 20, 50, 100, 1000
PAPER_TABLE1 = {
    "eta=0": (13.36, 6.84, 4.67, 4.16, 4.04),
    "eta=1": (41.07, 18.36, 8.01, 5.78, 4.73),
    "sigma-hat": (367.43, 133.37, 32.72, 9.99, 3.17),
}
DDPM = cell_name("eta=1", 1000)  # the reference of the speed-up: 1000-step DDPM


def load_result(name: str, folder: Path = RESULTS_DIR) -> dict:
    """data/results/`name`, or while its run is unfinished the cells it has so far (its .partial.json, whose
    "complete" is False). FileNotFoundError, naming the command, where there is neither."""
    path = Path(folder) / name
    for candidate in (path, partial_path(path)):
        if candidate.exists():
            return json.loads(candidate.read_text())
    raise FileNotFoundError(
        f"no {path} (nor {partial_path(path).name}): `python -m ddimlib.experiments` computes it (its --help says how)"
    )


def scores(result: dict, cell: str, n: int | None = None) -> torch.Tensor | None:
    """A Table 1 cell's FD of each replicate at set size n (default: the table's samples), float64; None where the
    cell is not computed (yet, or left out)."""
    sizes = result["fd"].get(cell)
    if sizes is None:
        return None
    return torch.tensor(sizes[str(n or result["samples"])], dtype=torch.float64)


def floor(result: dict, n: int | None = None) -> torch.Tensor:
    """The data floor's FD at set size n (default: the table's samples): one value per independent draw of real data.
    An unfinished table has none yet (the command writes it last), so it is drawn here, as the command will."""
    n = n or result["samples"]
    if str(n) in result.get("floor", {}):
        return torch.tensor(result["floor"][str(n)], dtype=torch.float64)
    return floor_draws(n, dataset=result.get("dataset", "digits"))["fd"]


def verdict(result: dict, a: str, b: str, expected: str) -> stats.Verdict | None:
    """The claim FD(a) `expected` FD(b) on a cached table: paired where both cells have the same replicates (replicate
    k of every cell starts from the same x_T), Welch's otherwise. None where a cell is not computed."""
    left, right = scores(result, a), scores(result, b)
    if left is None or right is None:
        return None
    return compare_cells(f"FD({a}) {expected} FD({b})", left, right, expected)


def compare_cells(
    claim: str, left: torch.Tensor, right: torch.Tensor, expected: str, sd: tuple[float, float] | None = None
) -> stats.Verdict:
    """The claim mean(left) `expected` mean(right) for two cells' replicates: paired where both have the same number
    (> 1) of them (replicate k of every cell starts from the same x_T), Welch's where their numbers differ. A cell of
    one run has no spread of its own: `sd` (used only then) lends one to each side (a normal bound, "borrowed spread"
    in the claim)."""
    if len(left) == len(right) > 1:
        return stats.compare(claim, left, right, expected, paired=True)
    if min(len(left), len(right)) > 1:
        return stats.compare(claim, left, right, expected, paired=False)
    if sd is None or None in sd:
        raise ValueError(f"a cell of one run needs sd, a spread to borrow (got {len(left)} and {len(right)} runs)")
    se = (sd[0] ** 2 / len(left) + sd[1] ** 2 / len(right)) ** 0.5
    difference = float(left.mean() - right.mean())
    return stats.from_estimate(claim + " (one run, borrowed spread)", difference, se, expected)


def table1_claims(result: dict) -> dict[str, stats.Verdict | None]:
    """The paper's claims, read off a cached Table 1 (None where a cell is not computed):

    C1, eta = 0 is best at small S: eta = 0 below eta = 1 at S = 10, 20, 50;
    C3, sigma-hat is worst at small S (above eta = 1 at S = 10, 20) and best at S = 1000 (below eta = 1);
    C8, the speed-up at equal quality: eta = 0 at S = 10, 20, 50, 100 against 1000-step DDPM (its "not resolved
    worse" read by `equal_quality_steps`)."""
    claims = {f"C1, S={s}": verdict(result, cell_name("eta=0", s), cell_name("eta=1", s), "<") for s in (10, 20, 50)}
    for s in (10, 20):
        claims[f"C3, S={s}"] = verdict(result, cell_name("sigma-hat", s), cell_name("eta=1", s), ">")
    claims["C3, S=1000"] = verdict(result, cell_name("sigma-hat", 1000), DDPM, "<")
    for s in STEPS[:-1]:
        claims[f"C8, S={s}"] = verdict(result, cell_name("eta=0", s), DDPM, "<")
    return claims


def equal_quality_steps(result: dict, row: str = "eta=0") -> int | None:
    """The fewest steps S < 1000 at which `row` is not resolved worse than 1000-step DDPM; None where every S is (or
    the DDPM cell is not computed)."""
    reached = [
        s
        for s in STEPS[:-1]
        if (v := verdict(result, cell_name(row, s), DDPM, "<")) is not None and not v.contradicted
    ]
    return min(reached) if reached else None


def format_table1(result: dict, paper: dict = PAPER_TABLE1) -> str:
    """A cached Table 1 as text: each row's FD (mean +- standard error over replicates) per S, the paper's CIFAR-10
    FID under the rows it has, then every mean as a multiple of the data floor; "-" for a cell not computed."""
    n = result["samples"]
    floor_mean = float(floor(result).mean())
    rows = [(row, row, "linear") for row in ROWS] + [("eta=0, quad", "eta=0", "quadratic")]
    lines = [
        f"FD of {n:,} samples (mean +- se over {result['replicates']} replicates); linear tau unless 'quad'",
        f"{'':12s}" + "".join(f"{'S=' + str(s):>16s}" for s in STEPS),
    ]
    ratios = [f"as multiples of the data floor (FD {floor_mean:.2f} at {n:,})"]
    for label, row, tau in rows:
        values = [scores(result, cell_name(row, s, tau)) for s in STEPS]
        means = [stats.mean_se(v) if v is not None else (None, None) for v in values]
        lines.append(
            f"{label:12s}" + "".join(f"{m:9.2f} +-{se:5.2f}" if m is not None else f"{'-':>16s}" for m, se in means)
        )
        if label in paper:
            lines.append(f"{'  CIFAR-10':12s}" + "".join(f"{v:16.2f}" for v in paper[label]))
        ratios.append(
            f"{label:12s}" + "".join(f"{m / floor_mean:16.2f}" if m is not None else f"{'-':>16s}" for m, _ in means)
        )
    return "\n".join(lines + ratios)


def regime_verdicts(regime: dict, table: dict) -> dict[str, dict]:
    """The map of when eta = 0 wins, read: for each model of the cached regime (the oracle, the early checkpoint) and
    for the shipped model (its cells taken from the cached Table 1 `table`), its floor's mean FD, its samples per set,
    and per S where both rows are cached the paired verdict FD(eta=0) < FD(eta=1) and the replicates' ratios
    FD(eta=1) / FD(eta=0) (replicate k of both rows starts from the same x_T), with the two rows' mean FD.

        {"oracle": {"floor": 3.9, "samples": 500, "wins": {10: Verdict}, "means": {10: (fd0, fd1)}, "ratios": ...}}"""
    cells = {
        name: {(eta, s): regime["fd"].get(regime_name(name, eta, s)) for eta in (0.0, 1.0) for s in regime["steps"]}
        for name in regime["floor"]
    }
    cells["shipped"] = {
        (eta, s): (table["fd"].get(cell_name(f"eta={eta:g}", s)) or {}).get(str(table["samples"]))
        for eta in (0.0, 1.0)
        for s in regime["steps"]
    }
    floors = {name: float(torch.tensor(values).mean()) for name, values in regime["floor"].items()}
    floors["shipped"] = float(floor(table).mean())
    verdicts = {}
    for name, fd in cells.items():
        both = [s for s in regime["steps"] if fd[0.0, s] is not None and fd[1.0, s] is not None]
        deterministic, ancestral = (
            {s: torch.tensor(fd[eta, s], dtype=torch.float64) for s in both} for eta in (0.0, 1.0)
        )
        verdicts[name] = {
            "floor": floors[name],
            "samples": table["samples"] if name == "shipped" else regime["samples"],
            "wins": {
                s: stats.compare(
                    f"{name}, S={s}: FD(eta=0) < FD(eta=1)", deterministic[s], ancestral[s], "<", paired=True
                )
                for s in both
            },
            "means": {s: (float(deterministic[s].mean()), float(ancestral[s].mean())) for s in both},
            "ratios": {s: ancestral[s] / deterministic[s] for s in both},
        }
    return verdicts


def format_regime(verdicts: dict[str, dict]) -> str:
    """`regime_verdicts` as a table: per model and S, each row's mean FD as a multiple of the model's floor, and the
    verdict (< : eta = 0 resolved better, > : eta = 1 resolved better, ~ : not resolved)."""
    steps = sorted({s for v in verdicts.values() for s in v["means"]})
    lines = [
        f"{'model':9s} {'n':>5s} {'floor':>6s}" + "".join(f"{'S=' + str(s) + ': eta 0 / eta 1':>28s}" for s in steps)
    ]
    for name, v in verdicts.items():
        line = f"{name:9s} {v['samples']:5d} {v['floor']:6.2f}"
        for s in steps:
            if s not in v["wins"]:
                line += f"{'not computed yet':>28s}"
                continue
            deterministic, ancestral = (m / v["floor"] for m in v["means"][s])
            line += f"{deterministic:10.2f} / {ancestral:5.2f} x floor {v['wins'][s].sign:>2s}"
        lines.append(line)
    return "\n".join(lines)


def format_sweep(
    title: str, mean: dict, spread: dict, floor_mean: float, steps=STEPS, paper: dict | None = None
) -> str:
    """A table measured live, as text: per row of ROWS and S in `steps`, the mean score +- its spread (`mean` and
    `spread` {(row, S): value}), the paper's CIFAR-10 FID under the rows `paper` has, then every mean as a multiple of
    `floor_mean`; "-" for a cell not measured."""
    lines = [title, f"{'':10s}" + "".join(f"{'S=' + str(s):>17s}" for s in steps)]
    for row in ROWS:
        lines.append(
            f"{row:10s}"
            + "".join(
                f"{mean[row, s]:9.2f} +-{spread[row, s]:5.2f} " if (row, s) in mean else f"{'-':>17s}" for s in steps
            )
        )
        if paper and row in paper:
            lines.append(f"{'  paper':10s}" + "".join(f"{v:17.2f}" for v in paper[row]))
    lines.append(f"{'/ floor':10s}" + "".join(f"{'S=' + str(s):>8s}" for s in steps))
    for row in ROWS:
        lines.append(
            f"{row:10s}"
            + "".join(f"{mean[row, s] / floor_mean:8.1f}" if (row, s) in mean else f"{'-':>8s}" for s in steps)
        )
    return "\n".join(lines)
