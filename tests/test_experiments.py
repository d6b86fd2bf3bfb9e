"""The cached Table 1: its structure, that a cached FD is what sampling and scoring give again, and its arguments."""

import json
import math

import pytest
import torch
from helpers import needs_fashion_mnist

from ddimlib import experiments
from ddimlib.checkpoints import write_json
from ddimlib.data import load_digits
from ddimlib.metrics import classifier_features, frechet_distance, load_classifier
from ddimlib.models import UNetConfig, UNetEps
from ddimlib.oracle import empirical
from ddimlib.sampling import sample
from ddimlib.schedules import linear_schedule


def test_table1_scores_every_cell_from_shared_x_T_and_recomputes_exactly():
    torch.manual_seed(0)
    model = UNetEps(UNetConfig(base=8, mults=(1, 2), groups=4)).eval()
    schedule = linear_schedule(10)
    result = experiments.table1(
        model, schedule, samples=8, replicates=3, replicates_1000=2, steps=[2, 10], progress=False
    )
    names = {experiments.cell_name(row, s) for row in experiments.ROWS for s in (2, 10)} | {
        experiments.cell_name("eta=0", 2, "quadratic")
    }
    assert set(result["fd"]) == names and result["sizes"] == [8]
    # S = T: three rows get replicates_1000 sets, the two rows a claim at S = T compares get all of them
    assert len(result["fd"]["eta=0, S=10"]["8"]) == 2 and len(result["fd"]["sigma-hat, S=10"]["8"]) == 3
    assert len(result["fd"]["eta=0.5, S=2"]["8"]) == 3 and len(result["floor"]["8"]) == 20
    # replicate 1 of eta = 1 at S = 2, again by hand
    x_T = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(experiments.SEED + 1))
    x0 = sample(
        model,
        schedule,
        x_T,
        2,
        eta=1.0,
        generator=torch.Generator().manual_seed(experiments.SEED + 501),
        progress=False,
    )
    classifier = load_classifier()
    again = frechet_distance(
        classifier_features(x0, classifier), classifier_features(load_digits("test").images, classifier)
    )
    assert math.isclose(result["fd"]["eta=1, S=2"]["8"][1], again, rel_tol=1e-9)


def test_table1_sub_sizes_split_each_replicate():
    torch.manual_seed(0)
    model = UNetEps(UNetConfig(base=8, mults=(1, 2), groups=4)).eval()
    result = experiments.table1(
        model, linear_schedule(10), samples=200, replicates=2, replicates_1000=2, steps=[1], progress=False
    )
    assert result["sizes"] == [200, 100] and len(result["fd"]["eta=0, S=1"]["100"]) == 4


def test_the_command_needs_a_spread():
    with pytest.raises(SystemExit):
        experiments.main(["table1", "--replicates", "1"])
    with pytest.raises(SystemExit):
        experiments.main(["table1", "--replicates-1000", "1"])


def test_the_1000_step_cells_no_claim_compares_can_be_left_out():
    torch.manual_seed(0)
    model = UNetEps(UNetConfig(base=8, mults=(1, 2), groups=4)).eval()
    result = experiments.table1(
        model, linear_schedule(10), samples=8, replicates=2, replicates_1000=0, steps=[2, 10], progress=False
    )
    assert {name for name in result["fd"] if "S=10" in name} == {"eta=1, S=10", "sigma-hat, S=10"}


def test_a_stopped_table_resumes_its_cells_and_ends_where_a_straight_run_does(tmp_path):
    """The command saves after every cell; a run stopped after some cells continues from them (they are not
    recomputed) and its result equals one computed straight through."""
    torch.manual_seed(0)
    model = UNetEps(UNetConfig(base=8, mults=(1, 2), groups=4)).eval()
    schedule = linear_schedule(10)
    saved = []
    straight = experiments.table1(
        model,
        schedule,
        samples=8,
        replicates=2,
        replicates_1000=2,
        steps=[2, 10],
        progress=False,
        save=lambda result: saved.append(json.loads(json.dumps(result))),
    )
    assert len(saved) == 11 and len(saved[3]["fd"]) == 4  # one save per cell: 5 rows x 2 S + one quadratic
    assert all("S=2" in name for name in saved[5]["fd"])  # the six cheap cells (S = 2) come first
    assert saved[0]["floor"] == straight["floor"]  # the floor is in the first save: an unfinished table can be read
    calls = []
    counting = lambda x_t, t: calls.append(1) or model(x_t, t)
    resumed = experiments.table1(
        counting, schedule, samples=8, replicates=2, replicates_1000=2, steps=[2, 10], progress=False, done=saved[3]
    )
    assert resumed["fd"] == straight["fd"]
    # 2 replicates of every cell, less the four cells done (S = 2 each: the cheap cells come first)
    assert len(calls) == 2 * (5 * (2 + 10) + 2) - 2 * (4 * 2)


def test_an_unfinished_run_with_other_settings_is_refused_not_overwritten(tmp_path):
    out = tmp_path / "t.json"
    write_json({"samples": 8, "complete": False, "fd": {"eta=0, S=2": {"8": [1.0]}}}, experiments.partial_path(out))
    assert experiments.unfinished(out, {"samples": 8})["fd"] == {"eta=0, S=2": {"8": [1.0]}}
    with pytest.raises(SystemExit, match="unfinished run with other settings"):
        experiments.unfinished(out, {"samples": 16})
    assert json.loads(experiments.partial_path(out).read_text())["samples"] == 8
    experiments.partial_path(out).unlink()
    write_json({"samples": 8, "complete": True}, out)
    assert experiments.unfinished(out, {"samples": 16}) is None  # a finished table is recomputed, not resumed


def test_a_stopped_run_keeps_the_finished_result_and_the_next_run_resumes_its_cells(tmp_path, monkeypatch):
    """The command writes its cells to a .partial.json as it goes and the result only when complete: a run stopped
    midway leaves the finished result it would replace untouched, and the same command then resumes the cells."""
    out = tmp_path / "t.json"
    finished = {"complete": True, "fd": {"old": {"8": [9.0, 9.0]}}}
    write_json(finished, out)
    done_cells = {"eta=0, S=10": {"8": [1.0, 2.0]}}

    def stopped(*args, done=None, save=None, **kwargs):
        save({"sizes": [8], "fd": done_cells})
        raise KeyboardInterrupt

    command = ["table1", "--samples", "8", "--replicates", "2", "--out", str(out)]
    monkeypatch.setattr(experiments, "table1", stopped)
    with pytest.raises(KeyboardInterrupt):
        experiments.main(command)
    assert (
        json.loads(out.read_text()) == finished
        and json.loads(experiments.partial_path(out).read_text())["fd"] == done_cells
    )
    resumed_from = []

    def finishing(*args, done=None, save=None, **kwargs):
        resumed_from.append(done["fd"])
        return {"sizes": [8], "fd": done["fd"] | {"eta=1, S=10": {"8": [3.0, 4.0]}}, "floor": {"8": [1.0, 1.1]}}

    monkeypatch.setattr(experiments, "table1", finishing)
    monkeypatch.setattr(experiments, "plot_table1", lambda result, path: path)
    assert experiments.main(command) == 0
    result = json.loads(out.read_text())
    assert (
        resumed_from == [done_cells]
        and result["complete"]
        and len(result["runs"]) == 2
        and not experiments.partial_path(out).exists()
    )


@needs_fashion_mnist
def test_the_regime_map_scores_each_model_against_its_own_distribution(monkeypatch):
    """An oracle is scored against exact draws of its density (and its floor is fresh exact draws); a trained
    model against the test images with the data floor. One oracle cell again by hand."""
    from ddimlib.data import load_fashion_mnist

    monkeypatch.setattr(experiments, "ORACLE_REFERENCE", 1000)
    torch.manual_seed(0)
    schedule = linear_schedule(10)
    density = empirical(load_fashion_mnist("train").images[:50], 0.05)
    oracle = density.eps_model(schedule)
    model = UNetEps(UNetConfig(base=8, mults=(1, 2), groups=4)).eval()
    models = {"oracle": (oracle, density), "model": (model, None)}
    result = experiments.regime_map(models, schedule, samples=16, replicates=2, steps=[2, 5], progress=False)
    assert set(result["fd"]) == {
        experiments.regime_name(m, eta, s) for m in models for eta in (0.0, 1.0) for s in (2, 5)
    }
    assert all(len(values) == 2 for values in result["fd"].values())
    assert set(result["floor"]) == {"oracle", "model"} and len(result["floor"]["oracle"]) == 20
    classifier = load_classifier(dataset="fashion_mnist")
    exact = (
        density.sample(1000, generator=torch.Generator().manual_seed(experiments.SEED - 1))
        .float()
        .reshape(-1, 1, 28, 28)
    )
    x_T = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(experiments.SEED + 1))
    x0 = sample(
        oracle,
        schedule,
        x_T,
        5,
        eta=1.0,
        generator=torch.Generator().manual_seed(experiments.SEED + 501),
        progress=False,
    )
    again = frechet_distance(classifier_features(x0, classifier), classifier_features(exact, classifier))
    assert math.isclose(result["fd"]["oracle, eta=1, S=5"][1], again, rel_tol=1e-9)
    # the oracle's samples are images of its density, far closer to it than the untrained UNet's noise is to the data
    assert max(result["fd"]["oracle, eta=0, S=5"]) < min(result["fd"]["model, eta=0, S=5"])


def test_a_regime_map_computed_model_by_model_resumes_with_the_models_it_has(tmp_path):
    """Models computed in an earlier run stay; a run that adds one agrees with it; a changed model is refused."""
    out = tmp_path / "r.json"
    oracle = {"images": 4000, "std": 0.05}
    write_json(
        {"samples": 1000, "models": {"oracle": oracle}, "complete": False, "fd": {}}, experiments.partial_path(out)
    )
    assert (
        experiments.unfinished(out, {"samples": 1000, "models": {"oracle": oracle, "early": {"sha256": "ab"}}})
        is not None
    )
    with pytest.raises(SystemExit, match="other settings"):
        experiments.unfinished(out, {"samples": 1000, "models": {"oracle": oracle | {"std": 0.1}}})


def test_the_compiled_network_samples_like_the_eager_one_and_a_failing_compile_falls_back(monkeypatch, capsys):
    torch.manual_seed(0)
    network = UNetEps(UNetConfig(base=8, mults=(1, 2), groups=4)).eval()
    fast = experiments.compiled(network, (4, 1, 8, 8))
    assert fast is not network
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([1, 10, 100, 1000])
    with torch.no_grad():
        torch.testing.assert_close(fast(x, t), network(x, t), rtol=1e-4, atol=1e-5)

    def broken(model):
        def call(*args):
            raise RuntimeError("no C++ compiler here")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    assert experiments.compiled(network, (4, 1, 8, 8)) is network
    message = "torch.compile failed on cpu (RuntimeError: no C++ compiler here); sampling eagerly"
    assert message in capsys.readouterr().out


def test_figure3_samples_one_x_T_in_every_cell_as_sample_set_does():
    schedule = linear_schedule(1000)
    density = empirical(torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, 0.05)
    eps = density.eps_model(schedule)
    images = experiments.figure3(eps, schedule, images=2, seed=3)
    assert images.shape == (3, 3, 2, 28, 28) and images.dtype == torch.uint8
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    hat = experiments.sample_set(eps, schedule, x_T, 100, torch.Generator().manual_seed(503), 2, variance="hat")
    assert torch.equal(images[2, 1], ((hat.squeeze(1).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    assert not torch.equal(images[0, 0], images[1, 0])  # eta = 1 is not eta = 0 at S = 10


def test_the_figure3_command_writes_images_loadable_without_unpickling_code(tmp_path, monkeypatch):
    """The command keeps the images with their rows, steps and model; load_figure3 reads them back and refuses a
    file of another shape or one that would run code when unpickled."""
    images = torch.randint(0, 256, (3, 3, 2, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    monkeypatch.setattr(experiments, "figure3", lambda eps_model, schedule: images)
    out = tmp_path / "f.pt"
    assert experiments.main(["figure3", "--out", str(out)]) == 0
    result = experiments.load_figure3(out)
    assert torch.equal(result["images"], images)
    assert result["rows"] == list(experiments.FIGURE3_ROWS) and result["steps"] == list(experiments.FIGURE3_STEPS)
    assert result["model"]["file"] == "fashion_unet.pt" and result["provenance"]["command"].endswith(str(out))
    torch.save({"images": images[:2]}, tmp_path / "short.pt")
    with pytest.raises(ValueError, match="expected uint8 images of shape"):
        experiments.load_figure3(tmp_path / "short.pt")
    torch.save({"images": images, "code": math.dist}, tmp_path / "code.pt")
    with pytest.raises(ValueError, match="not a figure3 result"):
        experiments.load_figure3(tmp_path / "code.pt")
    with pytest.raises(SystemExit):
        experiments.main(["figure3", "--dataset", "digits"])


def test_a_regime_map_is_complete_when_its_models_cells_are_in_not_when_its_floors_are():
    """The floors are written first (an unfinished map can be read against them), so completeness counts cells; the
    shipped model's row is Table 1's, so the map is complete without it."""
    cells = {
        experiments.regime_name(name, eta, s): [1.0]
        for name in ("oracle", "early")
        for eta in experiments.REGIME_ETAS
        for s in experiments.REGIME_STEPS
    }
    floors = {name: [1.0] for name in experiments.REGIME_MODELS}
    assert experiments.regime_missing({"fd": cells, "floor": floors}) == []
    cells.pop(experiments.regime_name("early", 1.0, 100))
    assert experiments.regime_missing({"fd": cells, "floor": floors}) == ["early"]
    assert experiments.regime_missing({"fd": cells, "floor": floors, "steps": [10, 20], "etas": [0.0, 1.0]}) == []


def test_table1_plans_the_1000_step_cells_for_the_rows_a_claim_compares_and_the_cheap_cells_first():
    cells = experiments.table1_cells([10, 1000], replicates=4, replicates_1000=0)
    assert [(row, s, tau, count) for row, s, tau, count in cells if s == 1000] == [
        ("eta=1", 1000, "linear", 4),
        ("sigma-hat", 1000, "linear", 4),
    ]
    assert [s for _, s, _, _ in cells] == sorted(s for _, s, _, _ in cells)
    assert ("eta=0", 10, "quadratic", 4) in cells and len(cells) == len(experiments.ROWS) + 1 + 2
    everything = experiments.table1_cells([10, 1000], replicates=4, replicates_1000=2)
    assert ("eta=0", 1000, "linear", 2) in everything and ("eta=1", 1000, "linear", 4) in everything
    assert not any(tau == "quadratic" and s == 1000 for _, s, tau, _ in everything)
