"""Training on several processes (ddimlib.distributed): two CPU processes with gloo, on the loopback address only,
train what one process trains; a dead process stops the run without spoiling the state on disk; torchrun drives the
train command.

The processes are started as torchrun starts them (its environment variables), by the test itself, so that it can
kill one; every wait is bounded.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddimlib import distributed
from ddimlib.data import load_image_set
from ddimlib.training import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import CONFIG  # noqa: E402

WORKER = Path(__file__).with_name("ddp_worker.py")
TIMEOUT = 180  # seconds any group of processes may take; each of these runs takes a few on 2 cores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(
    state: Path, steps: int, save_every: int, resume: Path | None = None, size: int = 2
) -> list[subprocess.Popen]:
    port = free_port()
    processes = []
    for rank in range(size):
        env = os.environ | {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), str(state), str(steps), str(save_every)]
                + ([str(resume)] if resume else []),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return processes


def wait_all(processes: list[subprocess.Popen]) -> list[tuple[int, str]]:
    deadline = time.monotonic() + TIMEOUT
    try:
        outputs = [p.communicate(timeout=max(1, deadline - time.monotonic()))[0] for p in processes]
        return [(p.returncode, output) for p, output in zip(processes, outputs)]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def digits():
    return load_image_set("digits", "train").images


def one_process(digits, steps: int) -> Trainer:
    trainer = Trainer(CONFIG, digits, "cpu")
    trainer.train(steps=steps, progress=False)
    return trainer


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def test_two_processes_train_what_one_process_trains(digits, tmp_path):
    """20 steps at global batch 32 on 2 processes (16 each) against 20 steps at batch 32 on one.

    The data, t and noise are the same draws; the differences are float32 rounding only: DDP's all-reduce averages
    two half-batch gradients where one process sums the whole batch (another order of the same sums; the convolutions'
    backward also sums over 16 rows instead of 32). A gradient's relative rounding is ~1e-7; Adam divides the step by
    sqrt(v), so a weight moves at most ~lr per step and its rounding error stays far below lr = 2e-3 after 20 steps.
    Measured (2026-12-02, torch 2.13 CPU): 6.0e-8 at most in the weights, 7.5e-9 in the EMA, 1.2e-7 in the losses,
    where the 20 steps move the weights by up to 2.2e-3; so the bound is 1e-5. Both processes training on the same
    rows moves the weights by 1.8e-3 from the one-process run (measured), which this test catches."""
    state = tmp_path / "ddp.state"
    results = wait_all(start_workers(state, steps=20, save_every=10))
    assert [code for code, _ in results] == [0, 0], results
    alone = one_process(digits, 20)
    saved = torch.load(state, weights_only=True)
    assert (
        saved["step"] == 20 and saved["runs"][-1]["world_size"] == 2 and saved["runs"][-1]["batch_per_process"] == 16
    )
    assert saved["runs"][-1]["backend"] == "gloo"
    assert largest_difference(saved["model"], alone.model.state_dict()) < 1e-5
    assert largest_difference(saved["ema"], alone.state()["ema"]) < 1e-5
    # the losses recorded are the global batch's: the mean of the two processes' halves
    assert torch.allclose(saved["losses"], torch.tensor(alone.losses, dtype=torch.float64), rtol=1e-5)
    # the same run resumed on one process goes on as the one-process run does
    resumed = Trainer.resume(state, digits, "cpu")
    resumed.train(steps=5, progress=False)
    alone.train(steps=5, progress=False)
    assert largest_difference(resumed.model.state_dict(), alone.model.state_dict()) < 1e-5


def test_a_run_on_one_process_resumes_on_two(digits, tmp_path):
    alone = one_process(digits, 10)
    alone.save(tmp_path / "one.state")
    results = wait_all(start_workers(tmp_path / "two.state", steps=5, save_every=100, resume=tmp_path / "one.state"))
    assert [code for code, _ in results] == [0, 0], results
    alone.train(steps=5, progress=False)
    saved = torch.load(tmp_path / "two.state", weights_only=True)
    assert saved["step"] == 15 and [run["world_size"] for run in saved["runs"]] == [1, 2]
    assert largest_difference(saved["model"], alone.model.state_dict()) < 1e-5


def test_a_dead_process_stops_the_run_and_the_last_state_still_loads(digits, tmp_path):
    state = tmp_path / "ddp.state"
    processes = start_workers(state, steps=100_000, save_every=5)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state.exists() and time.monotonic() < deadline and processes[0].poll() is None:
            time.sleep(0.2)
        assert state.exists(), "rank 0 wrote no state"
        time.sleep(1.0)  # a few more steps, so that the kill lands mid-run
        processes[1].send_signal(signal.SIGKILL)
        code, output = processes[0].wait(timeout=60), processes[0].stdout.read()
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert code != 0, output
    assert processes[1].returncode == -signal.SIGKILL
    trainer = Trainer.resume(state, digits, "cpu")
    assert trainer.step > 0 and trainer.step % 5 == 0


def test_the_global_batch_must_divide_among_the_processes():
    world = distributed.World(rank=1, size=3)
    assert world.shard(12) == slice(4, 8)
    with pytest.raises(ValueError, match=r"batch_size 32 must divide evenly among the 3 processes"):
        world.shard(32)
    with pytest.raises(ValueError, match="batch_size 32"):
        Trainer(CONFIG, torch.zeros(4, 1, 8, 8), "cpu", world)


def torchrun_train(*arguments: str) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node=2 -m ddimlib.train --dataset digits --small ARGUMENTS`, time-bounded."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "ddimlib.train", "--dataset", "digits", "--small", *arguments]
    environment = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=environment)


def test_torchrun_runs_the_train_command_and_rank_0_alone_writes(tmp_path):
    out = tmp_path / "ddp.pt"
    done = torchrun_train("--steps", "6", "--batch-size", "32", "--save-every", "3", "--no-eval", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["processes"] == {"world_size": 2, "backend": "gloo", "batch_per_process": 16}
    assert sidecar["steps"] == 6 and sidecar["runs"][-1]["world_size"] == 2
    assert done.stdout.count("training unet on digits") == 1  # only rank 0 speaks
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.json", "ddp.pt", "ddp.pt.state"]


def test_torchrun_refuses_a_batch_the_processes_cannot_share(tmp_path):
    done = torchrun_train("--steps", "2", "--batch-size", "33", "--no-eval", "--out", str(tmp_path / "x.pt"))
    assert done.returncode != 0
    assert "--batch-size: batch_size 33 must divide evenly among the 2 processes" in done.stdout + done.stderr
    assert not (tmp_path / "x.pt").exists()
