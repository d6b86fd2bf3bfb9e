"""Training throughput on 1 and several processes: samples/s of `python -m ddimlib.train` under torchrun.

Each configuration runs the train command (`--no-eval`) under torchrun and reads the samples/s that the trainer
measured inside its loop (the sidecar's last run: start-up, data loading and writing excluded). The configurations
run in interleaved rounds, so that a slow spell of a shared machine hits them alike, and the median of the rounds is
printed with its ratio to one process.

On a CPU, "1x2" is one process with 2 threads, "2x1" two processes of one thread each: the same cores, used by
intra-op threads or by DDP. On CUDA each process takes a GPU (threads do not matter).

    .venv/bin/python benchmarks/ddp_scaling.py                       # digits UNet, batch 128: 1x1, 1x2, 2x1
    .venv/bin/python benchmarks/ddp_scaling.py --dataset fashion_mnist --steps 20
    python benchmarks/ddp_scaling.py --configs 1x1,2x1,4x1,8x1 --batch-size 2048   # on a node with 8 GPUs

Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def throughput(processes: int, threads: int, args: argparse.Namespace, folder: Path) -> float:
    """samples/s of one training run of args.steps steps on `processes` processes of `threads` threads each."""
    out = folder / f"run_{processes}x{threads}.pt"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "ddimlib.train",
        "--dataset",
        args.dataset,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--save-every",
        str(10 * args.steps),
        "--no-eval",
        "--out",
        str(out),
    ]
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{processes}x{threads} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["processes"]["world_size"] == processes
    return record["runs"][-1]["samples_per_second"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="digits", choices=("digits", "fashion_mnist"))
    parser.add_argument("--steps", type=int, default=100, help="training steps per run")
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch (split among the processes)")
    parser.add_argument(
        "--configs", default="1x1,1x2,2x1", help="PROCESSESxTHREADS, comma-separated; the first is the reference"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    args = parser.parse_args(argv)
    configs = [tuple(int(n) for n in config.split("x")) for config in args.configs.split(",")]
    print(
        f"{args.dataset}, global batch {args.batch_size}, {args.steps} steps per run, {args.rounds} rounds; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"CUDA GPUs: {torch.cuda.device_count()}",
        flush=True,
    )
    figures: dict[tuple[int, int], list[float]] = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            for config in configs:
                figures[config].append(throughput(*config, args, Path(folder)))
                print(
                    f"round {round_ + 1}: {config[0]} process(es) x {config[1]} thread(s): "
                    f"{figures[config][-1]:.0f} samples/s",
                    flush=True,
                )
    reference = statistics.median(figures[configs[0]])
    print(f"\n| processes x threads | samples/s (median of {args.rounds}) | against {configs[0][0]}x{configs[0][1]} |")
    print("|---|---|---|")
    for config, values in figures.items():
        median = statistics.median(values)
        print(f"| {config[0]} x {config[1]} | {median:.0f} | {median / reference:.2f}x |")


if __name__ == "__main__":
    main()
