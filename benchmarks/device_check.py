"""The device check: does the series run right, and fast, on this machine's accelerator?

    python3 tasks.py device-check [--out build/device_check] [--train-minutes 3]
    PYTHONPATH=. python benchmarks/device_check.py        (where the project is not installed, e.g. a bare GPU box)

On a CUDA machine, in about 6 minutes, it runs and prints as one table:
1. the CUDA tests (tests/test_devices.py: GPU vs CPU in float64 for every sampler, training with bf16);
2. GPU-vs-CPU agreement of float32 samples of the shipped digits UNet (512 digits, S = 50), with
   PyTorch's default TF32 setting and with TF32 off, and of float64 samples of an exact oracle;
3. sampler time per step (S = 50, batch 256; medians of interleaved rounds, each run synchronized):
   the network alone, `ddimlib.sampling.sample`, a bare six-line DDIM loop, and diffusers'
   DDIMScheduler loop when diffusers is installed. Goals: `sample` no slower than diffusers' loop
   and within 5 % of the bare loop;
4. training throughput of the digits UNet at the device's default batch, eager and compiled.
   Goal on an H100/H200: at least 100k samples/s;
5. a training run of --train-minutes (default 3 on CUDA, none on a CPU) through the project's own
   command, with its quality figure (FD and its data floor, from the sidecar).
On a CPU it runs 3 and 4 (eager) and says what it skipped. Figures also go to OUT/device_check.json.
Recorded figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddimlib.data import load_digits  # noqa: E402
from ddimlib.oracle import eight_gaussians  # noqa: E402
from ddimlib.sampling import sample  # noqa: E402
from ddimlib.schedules import timesteps  # noqa: E402
from ddimlib.timing import interleaved_medians, network_only  # noqa: E402
from ddimlib.training import TrainConfig, Trainer, default_batch_size, load_model  # noqa: E402

CHECKPOINT = ROOT / "data" / "checkpoints" / "digits_unet.pt"


def synchronized(fn, device: torch.device):
    """fn, then wait for the device, so that a clock reads computation rather than kernel launches."""

    def run():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out

    return run


def bare_loop(schedule, steps: int):
    """The smallest DDIM (eta = 0) loop there is, coefficients as Python floats: the floor for `sample`."""
    tau = [0] + timesteps(steps, schedule.T, "linear").tolist()
    a = [float(schedule.alpha[t]) for t in tau]

    @torch.no_grad()
    def run(model, x):
        for i in range(len(tau) - 1, 0, -1):
            eps = model(x, torch.full((x.shape[0],), tau[i], dtype=torch.int64, device=x.device))
            x0 = (x - (1 - a[i]) ** 0.5 * eps) / a[i] ** 0.5
            x = a[i - 1] ** 0.5 * x0 + (1 - a[i - 1]) ** 0.5 * eps
        return x

    return run


def agreement(device: torch.device) -> dict:
    """Max and mean |GPU - CPU| of the same samples: float32 UNet (TF32 default / off), float64 oracle."""
    model, config = load_model(CHECKPOINT, expect_model="unet")
    schedule = config.schedule()
    x_T = torch.randn(512, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    on_cpu = sample(model, schedule, x_T, 50, progress=False)
    result = {}
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    for label, tf32_off in (("float32, PyTorch's TF32 defaults", False), ("float32, TF32 off", True)):
        if tf32_off:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        difference = (sample(model.to(device), schedule, x_T.to(device), 50, progress=False).cpu() - on_cpu).abs()
        result[label] = {"max": float(difference.max()), "mean": float(difference.mean())}
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
    oracle = eight_gaussians().eps_model(schedule)
    x_T = torch.randn(4096, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    noise = lambda: torch.Generator().manual_seed(2)
    cpu = sample(oracle, schedule, x_T, 50, eta=1.0, generator=noise(), progress=False)
    gpu = sample(oracle, schedule, x_T.to(device), 50, eta=1.0, generator=noise(), progress=False).cpu()
    result["float64, exact oracle, eta = 1"] = {
        "max": float((gpu - cpu).abs().max()),
        "mean": float((gpu - cpu).abs().mean()),
    }
    return result


def sampler_times(device: torch.device, repeats: int) -> dict:
    model, config = load_model(CHECKPOINT, device=device, expect_model="unet")
    schedule, steps = config.schedule(), 50
    x_T = torch.randn(256, 1, 8, 8, generator=torch.Generator().manual_seed(0)).to(device)
    tau = timesteps(steps, schedule.T, "linear")
    bare = bare_loop(schedule, steps)
    loops = {
        "network only": lambda: network_only(model, x_T, tau),
        "ddimlib sample": lambda: sample(model, schedule, x_T, steps, progress=False),
        "bare 6-line loop": lambda: bare(model, x_T),
    }
    from sampler_overhead import diffusers_loop

    other = diffusers_loop(schedule, steps)
    if other is not None:
        loops["diffusers DDIMScheduler"] = lambda: other[0](model, x_T)
    medians = interleaved_medians({name: synchronized(fn, device) for name, fn in loops.items()}, repeats=repeats)
    return {name: 1e3 * seconds / steps for name, seconds in medians.items()}  # ms per step


def training_throughput(device: torch.device, compile: bool, steps: int = 150) -> dict:
    from ddimlib.train import DEFAULT_MODELS

    model_kind, model_config = DEFAULT_MODELS["digits"]
    config = TrainConfig(
        model=model_kind, model_config=model_config, batch_size=default_batch_size(device), compile=compile
    )
    trainer = Trainer(config, load_digits("train").images, device)
    started = time.monotonic()
    trainer.train(steps=50, progress=False)  # warm-up (and compilation)
    warm_up = time.monotonic() - started
    trainer.train(steps=steps, progress=False)
    run = trainer.runs[-1]
    return {
        "batch": config.batch_size,
        "steps_per_second": run["steps_per_second"],
        "samples_per_second": run["samples_per_second"],
        "warm_up_seconds": round(warm_up, 1),
        "compiled": compile and trainer.forward is not trainer.model,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "device_check")
    parser.add_argument(
        "--train-minutes", type=float, help="the training run's budget (default: 3 on CUDA, skipped on a CPU)"
    )
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds of the sampler timing")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    minutes = args.train_minutes if args.train_minutes is not None else (3.0 if cuda else 0.0)
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if cuda else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"device check on {name}, torch {torch.__version__}", flush=True)
    figures: dict = {"device": name, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    rows: list[tuple[str, str, str]] = []  # (check, figure, verdict)

    if cuda:
        print("1. CUDA tests", flush=True)
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_devices.py")],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        summary = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr.strip()[-200:]
        figures["cuda_tests"] = summary
        rows.append(("CUDA tests (tests/test_devices.py)", summary, "pass" if tests.returncode == 0 else "FAIL"))
        print("2. GPU vs CPU agreement", flush=True)
        figures["agreement"] = agreement(device)
        for label, d in figures["agreement"].items():
            rows.append((f"GPU vs CPU, {label}", f"max {d['max']:.1e}, mean {d['mean']:.1e}", ""))
    else:
        rows.append(("CUDA tests, GPU vs CPU agreement", "skipped: no CUDA GPU", ""))

    print("3. sampler time per step", flush=True)
    times = figures["sampler_ms_per_step"] = sampler_times(device, args.repeats)
    for loop, ms in times.items():
        rows.append((f"{loop}, ms per step (S = 50, batch 256)", f"{ms:.3f}", ""))
    ours = times["ddimlib sample"]
    # The goals are a GPU's, whose synchronized timings are steady; on a shared CPU, runs timed seconds apart differ
    # by several percent (benchmarks/sampler_overhead.py splits each run instead), so there the figures are reported
    # only.
    judge = lambda met, goal: ("met" if met else f"NOT met (goal: {goal})") if cuda else "CPU: reported, not judged"
    rows.append(
        (
            "sample vs bare loop",
            f"{100 * (ours / times['bare 6-line loop'] - 1):+.1f} %",
            judge(ours <= 1.05 * times["bare 6-line loop"], "within 5 %"),
        )
    )
    if "diffusers DDIMScheduler" in times:
        theirs = times["diffusers DDIMScheduler"]
        rows.append(
            ("sample vs diffusers' loop", f"{100 * (ours / theirs - 1):+.1f} %", judge(ours <= theirs, "no slower"))
        )
    else:
        rows.append(("sample vs diffusers' loop", "skipped: diffusers not installed (pip install -e .[bench])", ""))

    print("4. training throughput", flush=True)
    for compile in [False, True] if cuda else [False]:
        result = figures[f"training_{'compiled' if compile else 'eager'}"] = training_throughput(device, compile)
        label = "compiled" if result["compiled"] else ("compile failed, eager" if compile else "eager")
        goal = (
            ("met" if result["samples_per_second"] >= 100_000 else "NOT met (goal: 100k samples/s on an H100/H200)")
            if cuda
            else ""
        )
        rows.append(
            (
                f"training, {label}, batch {result['batch']}",
                f"{result['steps_per_second']:.1f} steps/s, {result['samples_per_second']:,} samples/s",
                goal,
            )
        )
    if not cuda:
        rows.append(("training, compiled", "skipped on a CPU (slower here: see benchmarks/README.md)", ""))

    if minutes > 0:
        print(f"5. a {minutes:g}-minute training run", flush=True)
        out = args.out / "digits_device_check.pt"
        command = [
            sys.executable,
            "-m",
            "ddimlib.train",
            "--dataset",
            "digits",
            "--minutes",
            str(minutes),
            "--out",
            str(out),
        ]
        if cuda:
            command.append("--compile")
        finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        sidecar = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
        metric = sidecar.get("metric", {})
        figures["training_run"] = {
            "command": " ".join(command[1:]),
            "steps": sidecar.get("steps"),
            "samples_per_second": sidecar.get("samples_per_second"),
            "metric": metric,
            "returncode": finished.returncode,
        }
        if "fd" in metric:
            figure = (
                f"{sidecar['steps']} steps; FD {metric['fd']:.2f} +- {metric['fd_se']:.2f} vs floor "
                f"{metric['floor_fd']:.2f} "
                f"({metric['fd_over_floor']:.2f}x), {metric['replicates']} sets of {metric['n']:,} samples"
            )
        else:
            figure = f"no metric ({metric.get('error') or finished.stderr.strip()[-200:]})"
        rows.append((f"training run, {minutes:g} min", figure, "pass" if finished.returncode == 0 else "FAIL"))
    else:
        rows.append(("training run with its quality figure", "skipped (give --train-minutes)", ""))

    (args.out / "device_check.json").write_text(json.dumps(figures, indent=2) + "\n")
    width = max(len(check) for check, _, _ in rows)
    print(f"\n{'check':{width}s} | figure | verdict")
    for check, figure, verdict in rows:
        print(f"{check:{width}s} | {figure} | {verdict}")
    print(f"\nfigures: {args.out / 'device_check.json'}")
    return 0 if all(not verdict.startswith("FAIL") for _, _, verdict in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
