"""Training with L_simple, atomic and safe checkpoints, exact resume, and the command line."""

import json
import os

import pytest
import torch

from ddimlib import train as train_cli
from ddimlib.checkpoints import load_checkpoint, save_atomic
from ddimlib.data import toy_2d
from ddimlib.training import TrainConfig, Trainer, load_model

SMALL = dict(
    dataset="two_moons",
    model="mlp",
    model_config={"data_dim": 2, "hidden": 32, "depth": 2},
    batch_size=64,
    warmup_steps=10,
)


@pytest.fixture(scope="module")
def moons():
    return toy_2d("two_moons", 2000, seed=0)


def new_trainer(moons, **overrides):
    return Trainer(TrainConfig(**(SMALL | overrides)), moons, device="cpu")


def test_loss_falls_on_a_2d_set(moons):
    trainer = new_trainer(moons)
    losses = torch.tensor(trainer.train(steps=400, progress=False))
    assert losses[-100:].mean() < 0.6 * losses[:20].mean()


def test_resume_is_bit_exact_on_cpu(moons, tmp_path):
    straight = new_trainer(moons)
    straight.train(steps=40, progress=False)
    first = new_trainer(moons)
    first.train(steps=20, progress=False)
    first.save(tmp_path / "half.state")
    resumed = Trainer.resume(tmp_path / "half.state", moons, device="cpu")
    resumed.train(steps=20, progress=False)
    assert resumed.step == straight.step == 40
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.losses == resumed.losses


def test_resume_is_bit_exact_with_dropout(tmp_path):
    """Dropout draws from the global RNG, which the checkpoint must carry too."""
    images = torch.rand(64, 1, 8, 8) * 2 - 1
    config = dict(
        dataset="digits",
        model="unet",
        model_config={"base": 8, "mults": [1, 2], "dropout": 0.3, "time_dim": 16},
        batch_size=8,
    )
    straight = Trainer(TrainConfig(**config), images, device="cpu")
    straight.train(steps=6, progress=False)
    first = Trainer(TrainConfig(**config), images, device="cpu")
    first.train(steps=3, progress=False)
    first.save(tmp_path / "half.state")
    torch.manual_seed(12345)  # whatever happens to the global RNG in between
    resumed = Trainer.resume(tmp_path / "half.state", images, device="cpu")
    resumed.train(steps=3, progress=False)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_crash_while_saving_leaves_the_last_checkpoint_intact(moons, tmp_path, monkeypatch):
    trainer = new_trainer(moons)
    trainer.train(steps=5, progress=False)
    path = trainer.save(tmp_path / "run.state")
    before = path.read_bytes()
    trainer.train(steps=5, progress=False)

    def dies_halfway(state, f):
        f.write(b"\x80\x02partial")
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(path)
    assert path.read_bytes() == before and load_checkpoint(path)["step"] == 5
    assert os.listdir(tmp_path) == ["run.state"]  # no temporary file left behind


class Payload:
    """An object whose unpickling would run code (it touches a file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_a_checkpoint_that_would_execute_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "ddimlib-checkpoint-v1", "config": Payload(marker)}, path)
    with pytest.raises(ValueError, match="refusing to load .*evil.pt"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_foreign_and_mismatched_checkpoints_give_clear_errors(moons, tmp_path):
    trainer = new_trainer(moons)
    path = trainer.export(tmp_path / "model.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated or not a ddimlib checkpoint"):
        load_checkpoint(truncated)
    foreign = save_atomic({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="is not a ddimlib checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(ValueError, match="holds a 'mlp' model, expected 'unet'"):
        load_model(path, expect_model="unet")
    state = load_checkpoint(path)
    state["config"]["model_config"]["hidden"] = 64  # the config no longer matches the weights
    save_atomic(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="weights of another architecture"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="inference export .* cannot be resumed"):
        Trainer.resume(path, moons)


def test_exported_model_predicts_like_the_trainers_ema(moons, tmp_path):
    trainer = new_trainer(moons)
    trainer.train(steps=30, progress=False)
    model, config = load_model(trainer.export(tmp_path / "m.pt"))
    x, t = torch.randn(7, 2), torch.randint(1, 1001, (7,))
    with torch.no_grad():
        assert torch.equal(model(x, t), trainer.eps_model()(x, t))
    assert config.dataset == "two_moons"
    model_from_state, _ = load_model(trainer.save(tmp_path / "m.state"))
    with torch.no_grad():
        assert torch.equal(model_from_state(x, t), model(x, t))


def test_a_budget_is_required(moons):
    with pytest.raises(ValueError, match="give a budget"):
        new_trainer(moons).train()
    with pytest.raises(ValueError, match="steps must be an integer in >= 1, got 0"):
        new_trainer(moons).train(steps=0)


def test_command_line_trains_writes_the_sidecar_and_resumes(tmp_path, capsys):
    out = tmp_path / "moons.pt"
    assert train_cli.main(["--dataset", "two_moons", "--steps", "30", "--out", str(out), "--eval-samples", "200"]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps"] == 30 and sidecar["metric"]["samples"] == 200
    assert (
        sidecar["metric"]["sliced_w2"] > 0
        and sidecar["metric"]["floor_sliced_w2"] > 0
        and sidecar["metric"]["sliced_w2_se"] > 0
    )
    assert {"command", "seed", "wall_seconds", "hardware", "runs", "final_loss_mean_of_last_200_steps"} <= set(sidecar)
    assert str(out) in capsys.readouterr().out
    model, config = load_model(out, expect_model="mlp")  # the export, metadata included, loads with weights_only=True
    assert config.dataset == "two_moons" and model(torch.zeros(3, 2), torch.tensor([1, 2, 3])).shape == (3, 2)
    train_cli.main(
        [
            "--dataset",
            "two_moons",
            "--steps",
            "10",
            "--out",
            str(out),
            "--resume",
            str(out) + ".state",
            "--eval-samples",
            "200",
            "--batch-size",
            "32",
        ]
    )
    resumed = json.loads(out.with_suffix(".json").read_text())
    assert resumed["steps"] == 40 and [run["steps"] for run in resumed["runs"]] == [30, 10]
    # a resumed run takes a new batch size, like a new lr
    assert [run["batch_size"] for run in resumed["runs"]] == [
        128,
        32,
    ]


def test_command_line_small_digits_unet(tmp_path):
    out = tmp_path / "small.pt"
    assert (
        train_cli.main(
            [
                "--dataset",
                "digits",
                "--small",
                "--steps",
                "2",
                "--out",
                str(out),
                "--eval-samples",
                "20",
                "--eval-replicates",
                "2",
            ]
        )
        == 0
    )
    metric = json.loads(out.with_suffix(".json").read_text())["metric"]
    assert metric["n"] == 20 and metric["replicates"] == 2 and metric["floor_drawn"].startswith("with replacement")
    assert metric["fd_se"] > 0 and metric["floor_fd_se"] > 0 and metric["meets_bar"] is False  # 2 steps of training
    model, config = load_model(out, expect_model="unet")
    assert config.model_config["base"] == 8 and model.config.base == 8
    assert model(torch.zeros(2, 1, 8, 8), torch.tensor([1, 1000])).shape == (2, 1, 8, 8)
    with pytest.raises(SystemExit):  # --small is for the digits UNet only
        train_cli.main(["--dataset", "two_moons", "--small", "--steps", "2", "--out", str(tmp_path / "m.pt")])


def test_an_evaluation_without_a_standard_error_is_refused_before_any_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_cli.main(["--steps", "2", "--eval-replicates", "1", "--out", str(tmp_path / "m.pt")])
    assert "--eval-replicates must be at least 2" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()
    with pytest.raises(SystemExit):
        train_cli.main(["--steps", "2", "--batch-size", "0", "--out", str(tmp_path / "m.pt")])
    assert "--batch-size must be at least 1, got 0" in capsys.readouterr().err and not (tmp_path / "m.pt").exists()


def test_the_ema_is_a_copy_then_an_exponential_average_of_the_weights():
    config = TrainConfig(
        dataset="two_moons",
        model="mlp",
        model_config={"data_dim": 2, "hidden": 16, "depth": 1},
        batch_size=16,
        ema_decay=0.9,
    )
    trainer = Trainer(config, toy_2d("two_moons", 64, seed=0), device="cpu")
    expected = None
    for _ in range(4):
        trainer.train(steps=1, progress=False)
        weights = [p.detach().clone() for p in trainer.model.parameters()]
        expected = weights if expected is None else [0.9 * e + 0.1 * w for e, w in zip(expected, weights)]
    for ema, e in zip(trainer.ema.parameters(), expected):
        assert torch.allclose(ema, e, atol=1e-7)
    assert int(trainer.state()["ema"]["n_averaged"]) == 4


def test_a_failing_evaluation_keeps_the_finished_run_and_exits_non_zero(tmp_path, monkeypatch, capsys):
    def broken_evaluate(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(train_cli, "evaluate", broken_evaluate)
    out = tmp_path / "moons.pt"
    assert train_cli.main(["--dataset", "two_moons", "--steps", "20", "--out", str(out), "--device", "cpu"]) == 1
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["metric"] == {
        "status": "failed",
        "error": "RuntimeError: Expected all tensors to be on the same device",
    }
    assert sidecar["steps"] == 20 and sidecar["samples_per_second"] > 0 and sidecar["steps_per_second"] > 0
    model, config = load_model(out, expect_model="mlp")  # the export is there and loads
    assert config.batch_size == 128 and load_checkpoint(out)["metadata"]["metric"]["status"] == "failed"
    assert "the evaluation failed" in capsys.readouterr().err
    assert (tmp_path / "moons.pt.state").exists()


def test_a_compiled_step_that_fails_falls_back_to_eager(moons, monkeypatch):
    def compile_that_fails(model):
        def compiled(*args):
            raise RuntimeError("no C++ compiler for this backend")

        return compiled

    monkeypatch.setattr(torch, "compile", compile_that_fails)
    config = TrainConfig(
        dataset="two_moons",
        model="mlp",
        model_config={"data_dim": 2, "hidden": 16, "depth": 1},
        batch_size=16,
        compile=True,
    )
    trainer = Trainer(config, moons, device="cpu")
    with pytest.warns(UserWarning, match="torch.compile failed on cpu .*no C\\+\\+ compiler.*training eagerly"):
        losses = trainer.train(steps=3, progress=False)
    assert len(losses) == 3 and trainer.forward is trainer.model
    config.compile = False  # the eager retry drew what the failed attempt drew: the same run as never compiling
    assert Trainer(config, moons, device="cpu").train(steps=3, progress=False) == losses


def test_evaluate_recomputes_the_metric_of_an_export_and_keeps_its_weights(tmp_path):
    out = tmp_path / "moons.pt"
    assert (
        train_cli.main(
            [
                "--dataset",
                "two_moons",
                "--steps",
                "20",
                "--out",
                str(out),
                "--eval-samples",
                "50",
                "--eval-replicates",
                "2",
            ]
        )
        == 0
    )
    before = load_checkpoint(out)
    assert train_cli.main(["--evaluate", "--out", str(out), "--eval-samples", "80", "--eval-replicates", "3"]) == 0
    after, sidecar = load_checkpoint(out), json.loads(out.with_suffix(".json").read_text())
    assert all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    assert sidecar["metric"]["samples"] == 80 and sidecar["metric"]["replicates"] == 3 and sidecar["steps"] == 20
    assert (
        after["metadata"]["metric"] == sidecar["metric"] and "--evaluate" in sidecar["metric"]["evaluated"]["command"]
    )
    with pytest.raises(SystemExit, match="needs an inference export"):
        train_cli.main(["--evaluate", "--out", str(out) + ".state"])


def test_evaluate_judges_the_digits_bar_by_the_one_rule_in_metrics(monkeypatch):
    """evaluate's "meets_bar" is metrics.meets_quality_bar of its figures (not a copy of the rule that could drift)."""
    from ddimlib import metrics

    kind, model_config = train_cli.DIGITS_SMALL
    trainer = Trainer(
        TrainConfig(dataset="digits", model=kind, model_config=model_config), torch.zeros(4, 1, 8, 8), device="cpu"
    )
    seen = []
    monkeypatch.setattr(
        metrics, "meets_quality_bar", lambda read, memorized=None: seen.append(read["fd_over_floor"]) or True
    )
    metric = train_cli.evaluate(trainer.eps_model(), trainer.config, n=20, replicates=2, steps=5)
    # untrained
    assert metric["meets_bar"] is True and seen == [metric["fd_over_floor"]] and metric["fd_over_floor"] > 1.2
    assert metric["bar"] == metrics.QUALITY_BAR_RULE == "FD <= 1.2 x floor, or FD - floor within two standard errors"


def test_the_ema_warm_up_follows_its_formula_step_by_step(moons):
    """ema_warmup = w: the EMA copies the weights at the first step, then e_n = d_n e_(n-1) + (1 - d_n) w_n with
    d_n = min(ema_decay, (1 + n) / (w + n)); checked against that recursion written out over the weights seen."""
    trainer = new_trainer(moons, ema_warmup=10, ema_decay=0.9)
    expected = None
    for n in range(25):
        trainer.train(steps=1, progress=False)
        weights = [p.detach().clone() for p in trainer.model.parameters()]
        decay = min(0.9, (1 + n) / (10 + n))
        expected = weights if n == 0 else [decay * e + (1 - decay) * w for e, w in zip(expected, weights)]
    for e, got in zip(expected, trainer.ema.parameters()):
        torch.testing.assert_close(got, e, rtol=1e-6, atol=1e-7)
    assert trainer.ema_decay_at(5) == 6 / 15 and trainer.ema_decay_at(10_000) == 0.9


def test_without_warm_up_a_short_run_keeps_its_random_start(moons):
    """The reason for the warm-up: after 30 steps at decay 0.999 the EMA is still 97 % the initial weights."""
    start = [p.detach().clone() for p in new_trainer(moons).model.parameters()]
    plain, warm = new_trainer(moons), new_trainer(moons, ema_warmup=10)
    plain.train(steps=30, progress=False)
    warm.train(steps=30, progress=False)
    distance = lambda model, ref: (
        sum(float((p.detach() - q.detach()).pow(2).sum()) for p, q in zip(model.parameters(), ref)) ** 0.5
    )
    model_weights = list(plain.model.parameters())
    assert distance(plain.ema, start) < 0.1 * distance(plain.ema, model_weights)
    assert distance(warm.ema, model_weights) < 0.5 * distance(warm.ema, start)


def test_a_run_saved_every_k_steps_resumes_exactly_from_its_last_save(moons, tmp_path):
    """save_every = 7 over 20 steps leaves the state of step 14 on disk (as a run killed at step 20 would); resumed
    for 6 steps it ends where the straight run does, weights, EMA and losses."""
    straight = new_trainer(moons)
    straight.train(steps=20, progress=False)
    killed = new_trainer(moons)
    killed.train(steps=20, progress=False, save_every=7, save_to=tmp_path / "run.state")
    resumed = Trainer.resume(tmp_path / "run.state", moons, device="cpu")
    assert resumed.step == 14 and len(resumed.losses) == 14 and resumed.runs[-1]["steps"] == 14
    resumed.train(steps=6, progress=False)
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.losses == straight.losses
    with pytest.raises(ValueError, match="save_every needs save_to"):
        killed.train(steps=1, progress=False, save_every=3)


def test_the_ema_keeps_the_checkpoint_layout_of_averaged_model(moons, tmp_path):
    """The EMA is a frozen copy now; checkpoints keep the layout that torch's AveragedModel wrote (the EMA's earlier
    home), so a state written before the change resumes with the same EMA, and the new one loads into AveragedModel."""
    from torch.optim.swa_utils import AveragedModel

    trainer = new_trainer(moons)
    trainer.train(steps=5, progress=False)
    # what the trainer used to hold: its module the EMA weights, n_averaged the count
    old = AveragedModel(trainer.model)
    old.module.load_state_dict(trainer.ema.state_dict())
    old.n_averaged.fill_(5)
    state = trainer.state() | {"ema": old.state_dict()}
    assert state["ema"].keys() == trainer.state()["ema"].keys()
    torch.save(state, tmp_path / "old.state")
    resumed = Trainer.resume(tmp_path / "old.state", moons, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(resumed.ema.parameters(), trainer.ema.parameters()))
    assert not any(p.requires_grad for p in resumed.ema.parameters())
    again = AveragedModel(new_trainer(moons).model)
    again.load_state_dict(trainer.state()["ema"])
    assert all(torch.equal(a, b) for a, b in zip(again.module.parameters(), trainer.ema.parameters()))


def test_compile_turns_on_for_a_resumed_run(moons, tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    first = new_trainer(moons)
    first.train(steps=2, progress=False)
    first.save(tmp_path / "moons.pt.state")
    out = tmp_path / "moons.pt"
    arguments = ["--dataset", "two_moons", "--resume", str(tmp_path / "moons.pt.state"), "--steps", "2"]
    assert train_cli.main([*arguments, "--compile", "--no-eval", "--out", str(out)]) == 0
    assert len(compiled) == 1 and json.loads(out.with_suffix(".json").read_text())["config"]["compile"] is True
