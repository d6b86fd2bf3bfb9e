"""Reading a cached Table 1: the finished file or its unfinished cells, paired verdicts, the claims, the text."""

import pytest
import torch

from ddimlib import results, stats
from ddimlib.checkpoints import write_json
from ddimlib.experiments import cell_name, partial_path


def table(cells: dict, floor=(2.0, 2.2)) -> dict:
    """A Table 1 result of 2 replicates at n = 10 holding `cells` ({cell name: [FD of each replicate]})."""
    return {
        "samples": 10,
        "replicates": 2,
        "dataset": "digits",
        "fd": {name: {"10": values} for name, values in cells.items()},
        "floor": {"10": list(floor)},
    }


def test_the_finished_result_is_read_first_then_the_unfinished_cells_then_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m ddimlib.experiments"):
        results.load_result("t.json", folder=tmp_path)
    write_json({"complete": False, "fd": {}}, partial_path(tmp_path / "t.json"))
    assert results.load_result("t.json", folder=tmp_path)["complete"] is False
    write_json({"complete": True, "fd": {}}, tmp_path / "t.json")
    assert results.load_result("t.json", folder=tmp_path)["complete"] is True


def test_a_verdict_pairs_the_replicates_of_two_cells_and_is_none_for_a_cell_not_computed():
    """Replicate k of every cell starts from the same x_T: differences 3 - 2 and 5 - 4.1 pair to 0.95 +- 12.71 x 0.05
    (t with 1 dof), resolved, where unpaired the two spreads would hide it."""
    result = table({cell_name("eta=0", 10): [2.0, 4.1], cell_name("eta=1", 10): [3.0, 5.0]})
    v = results.verdict(result, cell_name("eta=1", 10), cell_name("eta=0", 10), ">")
    assert v.resolved and v.difference == pytest.approx(0.95) and v.dof == 1
    assert v.bound == pytest.approx(stats.t_975(1) * 0.05)  # sd of the differences 0.0707, over sqrt(2)
    assert results.verdict(result, cell_name("eta=1", 10), cell_name("eta=0", 20), ">") is None


def test_the_claims_and_the_equal_quality_steps_are_read_against_1000_step_ddpm():
    """eta = 0 reaches 1000-step DDPM (not resolved worse) from S = 50 here; S = 20 is resolved worse."""
    cells = {
        cell_name("eta=1", 1000): [5.0, 6.0],
        cell_name("eta=0", 10): [9.0, 10.2],
        cell_name("eta=0", 20): [7.0, 8.1],
        cell_name("eta=0", 50): [5.0, 6.5],
        cell_name("eta=0", 100): [5.1, 5.9],
        cell_name("eta=1", 10): [12.0, 13.0],
    }
    result = table(cells)
    claims = results.table1_claims(result)
    assert claims["C1, S=10"].resolved and claims["C1, S=20"] is None and claims["C3, S=10"] is None
    assert claims["C8, S=20"].contradicted and not claims["C8, S=50"].contradicted
    assert results.equal_quality_steps(result) == 50
    assert results.equal_quality_steps(result, "eta=1") is None  # eta = 1 has no S < 1000 cell that reaches it
    assert results.equal_quality_steps(table({cell_name("eta=0", 10): [1.0, 2.0]})) is None  # no DDPM cell


def test_the_text_table_shows_means_the_paper_and_multiples_of_the_floor_with_a_dash_where_a_cell_is_missing():
    text = results.format_table1(table({cell_name("eta=0", 10): [4.0, 6.0]}))
    lines = text.splitlines()
    eta0 = next(line for line in lines if line.startswith("eta=0 "))
    assert "5.00 +- 1.00" in eta0 and eta0.split()[-1] == "-"
    assert "13.36" in lines[lines.index(eta0) + 1]  # the paper's CIFAR-10 row under ours
    ratios = lines[next(k for k, line in enumerate(lines) if line.startswith("as multiples")) :]
    assert ratios[0].endswith("(FD 2.10 at 10)") and ratios[1].split()[1] == f"{5 / 2.1:.2f}"


def test_cells_of_one_run_borrow_a_spread_and_cells_of_different_sizes_are_compared_unpaired():
    one, three = torch.tensor([5.0]), torch.tensor([3.0, 4.0, 5.0])
    v = results.compare_cells("a > b", one, three, ">", sd=(1.0, 1.0))
    assert "borrowed spread" in v.claim and v.difference == 1.0
    assert v.bound == pytest.approx(1.96 * (1 + 1 / 3) ** 0.5) and v.dof is None
    assert results.compare_cells("a > b", three + 1, torch.tensor([1.0, 2.0]), ">").dof != 1  # Welch, not paired
    with pytest.raises(ValueError, match="needs sd"):
        results.compare_cells("a > b", one, three, ">")


def test_the_regime_map_pairs_eta_0_with_eta_1_for_each_model_and_reads_the_shipped_cells_from_table_1():
    """The oracle's eta = 0 is lower on both replicates (a resolved win at S = 10); the early checkpoint's is higher
    (a contradicted one); the shipped model's cells come from Table 1; a cell not computed drops its S."""
    regime = {
        "steps": [10, 20],
        "samples": 4,
        "floor": {"oracle": [1.0, 3.0], "early": [2.0, 2.0]},
        "fd": {
            "oracle, eta=0, S=10": [4.0, 6.0],
            "oracle, eta=1, S=10": [8.0, 10.2],
            "oracle, eta=0, S=20": [3.0, 3.0],
            "oracle, eta=1, S=20": [3.0, 3.2],
            "early, eta=0, S=10": [9.0, 11.0],
            "early, eta=1, S=10": [5.0, 7.1],
        },
    }
    shipped = table({cell_name("eta=0", 10): [6.0, 7.0], cell_name("eta=1", 10): [6.5, 7.4]})
    verdicts = results.regime_verdicts(regime, shipped)
    assert list(verdicts) == ["oracle", "early", "shipped"]
    oracle, early = verdicts["oracle"], verdicts["early"]
    assert oracle["floor"] == 2.0 and oracle["samples"] == 4 and verdicts["shipped"]["samples"] == 10
    assert verdicts["shipped"]["floor"] == pytest.approx(2.1)  # Table 1's own floor
    assert oracle["wins"][10].resolved and early["wins"][10].contradicted
    assert verdicts["shipped"]["wins"][10].sign == "~"
    assert oracle["means"][10] == (5.0, 9.1)
    assert torch.allclose(oracle["ratios"][10], torch.tensor([2.0, 1.7], dtype=torch.float64))
    assert 20 in oracle["wins"] and 20 not in early["wins"]  # the early checkpoint has no S = 20 cells
    lines = results.format_regime(verdicts).splitlines()
    assert lines[1].split()[:6] == ["oracle", "4", "2.00", "2.50", "/", "4.55"]  # means over the floor: 5 / 2, 9.1 / 2
    assert lines[1].split()[8] == "<" and lines[2].split()[8] == ">" and "not computed yet" in lines[2]


def test_a_live_table_prints_mean_and_spread_per_cell_the_paper_under_its_rows_and_multiples_of_the_floor():
    mean, spread = {("eta=0", 10): 6.0, ("eta=1", 10): 9.0}, {("eta=0", 10): 0.5, ("eta=1", 10): 1.0}
    lines = results.format_sweep("title", mean, spread, 2.0, steps=[10, 20], paper=results.PAPER_TABLE1).splitlines()
    assert lines[0] == "title" and lines[1].split() == ["S=10", "S=20"]
    assert lines[2].split() == ["eta=0", "6.00", "+-", "0.50", "-"]
    assert lines[3].split()[:2] == ["paper", "13.36"]  # the paper's CIFAR-10 FID under our eta = 0 row
    ratios = lines[lines.index(next(line for line in lines if line.startswith("/ floor"))) + 1 :]
    by_row = {line.split()[0]: line.split()[1:] for line in ratios}
    assert by_row["eta=0"] == ["3.0", "-"] and by_row["eta=1"] == ["4.5", "-"] and by_row["sigma-hat"] == ["-", "-"]
