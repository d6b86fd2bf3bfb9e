"""Train a noise predictor from the shell, for lecturers who want longer runs or a GPU.

    python -m ddimlib.train --dataset digits --minutes 30 --out runs/digits.pt
    python -m ddimlib.train --dataset two_moons --steps 4000 --out runs/moons.pt
    python -m ddimlib.train --dataset digits --minutes 10 --out runs/digits.pt --resume runs/digits.pt.state

Writes the full training state to --out + ".state" (resume with --resume), the inference export
(EMA weights and config) to --out and its sidecar JSON (command, seed, steps, wall time, steps/s and
samples/s, hardware, final loss) next to it, all before the quality metric at DDIM eta = 0, S = 50
is computed; then both again with the metric. If the evaluation fails, the export and the sidecar
stay (the sidecar says the evaluation failed and why) and the command exits with status 1.
The metric is the mean over --eval-replicates independent sets of --eval-samples samples, with its
standard error, against the data floor at the same size (ddimlib.metrics).

    python -m ddimlib.train --evaluate --out data/checkpoints/digits_unet.pt

recomputes the metric of an existing export (its weights unchanged) and rewrites its sidecar.
The batch size defaults to what suits the device (128 on a CPU, 2048 on CUDA); --compile uses
torch.compile for training, falling back to eager where compiling fails.

    python -m ddimlib.train --classifier --out data/digits_classifier.pt
    python -m ddimlib.train --classifier --dataset fashion_mnist --out data/fashion_classifier.pt

train the classifiers whose features the FD and KID metrics use (ddimlib.metrics).

    torchrun --standalone --nproc_per_node=2 -m ddimlib.train --dataset digits --steps 50 --out runs/ddp.pt

trains one model on several processes (DistributedDataParallel: a GPU each, or gloo on the CPU; see
ddimlib.distributed). --batch-size is the global batch, split evenly among them; rank 0 alone writes and evaluates,
and every process exits with its status. --resume works at any number of processes.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from ddimlib import distributed, metrics, stats
from ddimlib.checkpoints import hardware as hardware_record
from ddimlib.checkpoints import load_checkpoint, save_atomic, write_json
from ddimlib.data import IMAGE_SHAPES, TOY_SETS, load_image_set, toy_2d
from ddimlib.experiments import SAMPLE_BATCH, sample_set
from ddimlib.loop import placement
from ddimlib.training import TrainConfig, Trainer, default_batch_size, load_model, pick_device

IMAGE_SETS = tuple(IMAGE_SHAPES)
DATASETS = IMAGE_SETS + TOY_SETS
DEFAULT_MODELS = {
    "digits": ("unet", {"base": 16, "mults": [1, 2], "dropout": 0.1}),
    # 28x28: about a million parameters, three levels (28, 14, 7); no dropout, since 60,000 images are not
    # memorised in the steps a CPU can afford
    "fashion_mnist": ("unet", {"base": 32, "mults": [1, 2, 2]}),
    "toy": ("mlp", {"data_dim": 2, "hidden": 128, "depth": 3}),
}
# --small on digits: a UNet of half the width, ~3x cheaper per call, for notebook 04's step sweep
DIGITS_SMALL = ("unet", {"base": 8, "mults": [1, 2], "groups": 4, "dropout": 0.1})
TOY_TRAIN_SIZE = 20000
# samples per set of the sidecar's metric where not 6,000 (28x28 costs 12x more per sample)
EVAL_SAMPLES = {"fashion_mnist": 2000}


def eval_samples(args: argparse.Namespace, dataset: str) -> int:
    """The samples per set of the sidecar's metric: --eval-samples, else the data set's default."""
    return args.eval_samples or EVAL_SAMPLES.get(dataset, 6000)


def training_data(dataset: str) -> torch.Tensor:
    return (
        load_image_set(dataset, "train").images if dataset in IMAGE_SETS else toy_2d(dataset, TOY_TRAIN_SIZE, seed=0)
    )


def sample_shape(dataset: str, n: int) -> tuple[int, ...]:
    """The shape of n samples of `dataset`."""
    return (n, *IMAGE_SHAPES[dataset]) if dataset in IMAGE_SETS else (n, 2)


# digits: FD at most this multiple of the data floor (the rule: metrics.meets_quality_bar)
QUALITY_BAR = metrics.QUALITY_BAR


@torch.no_grad()
def evaluate(eps_model, config: TrainConfig, n: int, replicates: int = 4, steps: int = 50, seed: int = 0) -> dict:
    """The quality metric at DDIM eta = 0 with `steps` steps: `replicates` independent sets of `n` samples
    (set k from x_T seeded seed + k), their mean figure with its standard error, read against the data
    floor at the same n (ddimlib.metrics: real digits drawn with replacement; for 2-D data, fresh points)."""
    device = placement(eps_model)[0]
    shape = sample_shape(config.dataset, n)
    x_T = [torch.randn(shape, generator=torch.Generator().manual_seed(seed + k)).to(device) for k in range(replicates)]
    batch = SAMPLE_BATCH.get(config.dataset, n)
    generated = torch.stack([sample_set(eps_model, config.schedule(), x, steps, None, batch, eta=0.0) for x in x_T])
    result = {"sampler": f"DDIM eta=0, S={steps}, linear tau", "samples": n, "replicates": replicates, "seed": seed}
    if config.dataset in IMAGE_SETS:
        score, floor = metrics.score_replicates(generated), metrics.data_floor(n, config.dataset, seed=seed)
        result |= score | {f"floor_{key}": value for key, value in floor.items() if key not in ("n",)}
        result |= metrics.against_floor(score, floor)
        if config.dataset == "digits":
            result["reference"] = "500 held-out digits"
            result["bar"] = metrics.QUALITY_BAR_RULE
            result["meets_bar"] = metrics.meets_quality_bar(result)  # FD only; the memorization is recorded beside it
        else:
            result["reference"] = "the 10,000 Fashion-MNIST test images"
    else:
        distance = lambda points, k: metrics.sliced_wasserstein(
            points, toy_2d(config.dataset, n, seed=10_000 + seed + k)
        )
        model = torch.tensor([distance(points, k) for k, points in enumerate(generated)], dtype=torch.float64)
        floor = torch.tensor(
            [distance(toy_2d(config.dataset, n, seed=20_000 + seed + k), k) for k in range(replicates)],
            dtype=torch.float64,
        )
        for name, values in (("sliced_w2", model), ("floor_sliced_w2", floor)):
            result[name], result[f"{name}_se"] = stats.mean_se(values)
        result["sw2_over_floor"] = result["sliced_w2"] / result["floor_sliced_w2"]
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ddimlib.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--out", type=Path, required=True, help="where the inference export goes (a .pt file)")
    parser.add_argument("--steps", type=int, help="training steps (with --minutes: whichever ends first)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget in minutes")
    parser.add_argument(
        "--small",
        action="store_true",
        help="digits only: the half-width UNet (~3x cheaper per call) of notebook 04's step sweep",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-size",
        type=int,
        help="default: 128 on a CPU or Apple GPU, 2048 on CUDA; with --resume, overrides the run's",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the model for training (eager if compiling fails); with --resume, from now on",
    )
    parser.add_argument(
        "--lr", type=float, help="AdamW learning rate (default 2e-3; with --resume, overrides the run's)"
    )
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--resume", type=Path, help="a .state file written by an earlier run")
    parser.add_argument(
        "--save-every",
        type=int,
        default=500,
        help="write the training state (--out + .state) every so many steps, so a killed run loses at most that many "
        "(default 500)",
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        help="samples per set for the metric in the sidecar (default 6,000; 2,000 for fashion_mnist)",
    )
    parser.add_argument(
        "--eval-replicates", type=int, default=4, help="independent sets of samples behind the metric's standard error"
    )
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="write the export and sidecar without the metric; compute it later with --evaluate",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="only (re)compute the metric of the export --out, rewriting its sidecar",
    )
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="train the feature network of the metrics for --dataset (digits or fashion_mnist) instead",
    )
    args = parser.parse_args(argv)
    if args.classifier and args.dataset not in IMAGE_SETS:
        parser.error(
            f"--classifier trains the feature network of an image set ({', '.join(IMAGE_SETS)}), not of "
            f"{args.dataset!r}"
        )
    if not (args.classifier or args.evaluate) and args.steps is None and args.minutes is None:
        parser.error("give a budget: --steps, --minutes, or both")
    if args.eval_replicates < 2:
        parser.error(
            f"--eval-replicates must be at least 2 (the metric's standard error needs two sets), got "
            f"{args.eval_replicates}"
        )
    if args.save_every < 1:
        parser.error(f"--save-every must be at least 1, got {args.save_every}")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.eval_samples is not None and args.eval_samples < 2:
        parser.error(f"--eval-samples must be at least 2, got {args.eval_samples}")
    if args.small and args.dataset != "digits":
        parser.error(f"--small is for the digits UNet; the 2-D set {args.dataset!r} is learned by the MLP")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m ddimlib.train " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    hardware = hardware_record()
    if distributed.launched() and (args.evaluate or args.classifier):
        raise SystemExit(
            f"--{'evaluate' if args.evaluate else 'classifier'} runs in one process; start it without torchrun"
        )
    if args.evaluate:
        return evaluate_command(args, command, hardware)
    return (train_classifier_command if args.classifier else train_model_command)(args, command, hardware)


def evaluate_command(args: argparse.Namespace, command: str, hardware: dict) -> int:
    """Recompute the metric of an existing export; the weights are rewritten unchanged, with the new metric in their
    metadata."""
    state = load_checkpoint(args.out)
    if state["kind"] != "inference":
        raise SystemExit(
            f"--evaluate needs an inference export (written to --out by a training run), got a {state['kind']} "
            f"checkpoint: {args.out}"
        )
    eps_model, config = load_model(args.out, device=pick_device(args.device))
    started = time.monotonic()
    metric = evaluate(eps_model, config, eval_samples(args, config.dataset), args.eval_replicates)
    hardware["device"] = str(placement(eps_model)[0])
    metric["evaluated"] = {
        "command": command,
        "wall_seconds": round(time.monotonic() - started, 1),
        "hardware": hardware,
    }
    report = dict(state["metadata"]) | {"metric": metric}
    save_atomic(state | {"metadata": json.loads(json.dumps(report))}, args.out)
    write_sidecar(args.out, report)
    print(json.dumps(metric, indent=2))
    return 0


def train_classifier_command(args: argparse.Namespace, command: str, hardware: dict) -> int:
    """Train the metrics' feature network for --dataset (digits or fashion_mnist); write it with its sidecar."""
    from ddimlib.metrics import train_classifier

    started = time.monotonic()
    train, test = load_image_set(args.dataset, "train"), load_image_set(args.dataset, "test")
    classifier = train_classifier(train.images, train.labels, args.dataset, seed=args.seed, progress=True)
    with torch.no_grad():
        predicted = torch.cat([classifier(part).argmax(1) for part in test.images.split(2000)])
    accuracy = float((predicted == test.labels).float().mean())
    save_atomic(classifier.state_dict(), args.out)
    report = {
        "command": command,
        "seed": args.seed,
        "test_accuracy": accuracy,
        "test_images": len(test.labels),
        "wall_seconds": round(time.monotonic() - started, 1),
        "hardware": hardware | {"device": "cpu"},
    }
    write_sidecar(args.out, report)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    print(json.dumps(report, indent=2))
    return 0


def train_model_command(args: argparse.Namespace, command: str, hardware: dict) -> int:
    """Train (on one process, or on each of a torchrun launch's), then on rank 0 write and evaluate; every process
    returns rank 0's status."""
    world, device = distributed.start(args.device) if distributed.launched() else (distributed.World(), args.device)
    try:
        trainer = start_trainer(args, world, device)
    except ValueError as error:  # a batch size that the processes cannot share
        raise SystemExit(f"--batch-size: {error}") from None
    hardware["device"] = hardware_record(trainer.device)["device"]
    if world.is_main:
        print(
            f"training {trainer.config.model} on {args.dataset} on {trainer.device} from step {trainer.step}, "
            f"batch {trainer.config.batch_size}{', compiled' if trainer.config.compile else ''}"
            + (
                f" ({world.size} processes of {trainer.config.batch_size // world.size}, {world.backend})"
                if world.size > 1
                else ""
            ),
            flush=True,
        )
    state_path = args.out.with_name(args.out.name + ".state")
    trainer.train(steps=args.steps, minutes=args.minutes, save_every=args.save_every, save_to=state_path)
    status = write_and_evaluate(args, command, hardware, trainer, state_path) if world.is_main else 0
    return world.finish(status)


def start_trainer(args: argparse.Namespace, world: distributed.World, device) -> Trainer:
    """A new Trainer for the command's arguments, or the one of --resume with --lr and --batch-size applied."""
    data = training_data(args.dataset)
    if args.resume:
        trainer = Trainer.resume(args.resume, data, device, world)
        if trainer.config.dataset != args.dataset:
            raise SystemExit(f"--resume {args.resume} was trained on {trainer.config.dataset!r}, not {args.dataset!r}")
        if args.lr is not None:
            trainer.config.lr = args.lr
        if args.compile:
            trainer.compile()
        if args.batch_size is not None:
            world.shard(args.batch_size)
            trainer.config.batch_size = args.batch_size  # each run records its own in the sidecar's "runs"
        return trainer
    model, model_config = DEFAULT_MODELS.get(args.dataset, DEFAULT_MODELS["toy"])
    if args.small:
        model, model_config = DIGITS_SMALL
    batch_size = args.batch_size or default_batch_size(pick_device(device))
    config = TrainConfig(
        dataset=args.dataset,
        model=model,
        model_config=model_config,
        batch_size=batch_size,
        lr=args.lr or 2e-3,
        seed=args.seed,
        compile=args.compile,
        ema_warmup=10 if args.dataset == "fashion_mnist" else 0,
    )
    return Trainer(config, data, device, world)


def write_and_evaluate(
    args: argparse.Namespace, command: str, hardware: dict, trainer: Trainer, state_path: Path
) -> int:
    """Rank 0's part after training: the state, the export and its sidecar, then the metric (unless --no-eval)."""
    trainer.runs[-1].update(command=command, lr=trainer.config.lr, hardware=hardware)
    trainer.save(state_path)
    recent = trainer.losses[-200:]
    report = {
        "command": command,
        "seed": trainer.config.seed,
        "steps": trainer.step,
        "wall_seconds": round(sum(run["wall_seconds"] for run in trainer.runs), 1),
        "steps_per_second": trainer.runs[-1]["steps_per_second"],
        "samples_per_second": trainer.runs[-1]["samples_per_second"],
        "hardware": hardware,
        "processes": trainer.world.record(trainer.config.batch_size),
        "runs": trainer.runs,
        "final_loss_mean_of_last_200_steps": sum(recent) / len(recent),
        "config": trainer.state()["config"],
        "metric": {"status": "not computed yet"},
    }
    if args.no_eval:
        report["metric"] = {"status": "not computed (--no-eval); compute it with --evaluate"}
    save_run(trainer, args.out, report)  # a finished run is never lost to a failing evaluation
    print(f"full training state: {state_path}")
    if args.no_eval:
        print(f"wrote {args.out} and {args.out.with_suffix('.json')} (no metric: --no-eval)")
        return 0
    try:
        report["metric"] = evaluate(
            trainer.eps_model(), trainer.config, eval_samples(args, args.dataset), args.eval_replicates
        )
    except Exception as error:
        report["metric"] = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        save_run(trainer, args.out, report)
        print(
            f"the evaluation failed ({type(error).__name__}: {error}); the trained model is saved in {args.out} "
            f"and {args.out.with_suffix('.json')}",
            file=sys.stderr,
        )
        return 1
    save_run(trainer, args.out, report)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    print(json.dumps(report["metric"], indent=2))
    return 0


def write_sidecar(out: Path, report: dict) -> Path:
    """The run's report as JSON next to the export (out with the suffix .json), written atomically."""
    return write_json(report, out.with_suffix(".json"))


def save_run(trainer: Trainer, out: Path, report: dict) -> None:
    """The inference export with the report as its metadata, and the sidecar JSON beside it."""
    trainer.export(out, metadata=report)
    write_sidecar(out, report)


if __name__ == "__main__":
    sys.exit(main())
