"""Files that must survive a kill and never run code when loaded: checkpoints, sidecars and cached results.

- `write_atomic`: every file a user keeps is written to a temporary file beside it, fsynced, then renamed over it,
  so a kill at any moment leaves the previous file or the new one, whole (`save_atomic` for torch states,
  `write_json` for records).
- `load_checkpoint`: torch.load(weights_only=True), which refuses any pickle that would run code; the format tag
  CHECKPOINT_FORMAT says it is ours. `load_weights` puts a checkpoint's weights into a model with a clear error.
- `hardware`: the one record of what a run ran on.

The training state and the inference export themselves are made by ddimlib.training (Trainer.state, Trainer.export,
load_model); the commands of ddimlib.train and ddimlib.experiments write their records here.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch

CHECKPOINT_FORMAT = "ddimlib-checkpoint-v1"


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """write(file) into a temporary file in path's folder, fsync, then os.replace onto `path`: a kill at any moment
    leaves either the previous file or the new one, whole. The one way this package writes a file a user keeps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def save_atomic(state: dict, path: str | Path) -> Path:
    """torch.save(state) to `path`, atomically (write_atomic)."""
    return write_atomic(path, lambda f: torch.save(state, f))


def write_json(record: dict, path: str | Path, indent: int = 2) -> Path:
    """A JSON record (a sidecar, a cached result) at `path`, atomically (write_atomic)."""
    text = json.dumps(record, indent=indent) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode()))


def hardware(device: torch.device | str | None = None) -> dict:
    """What a run ran on, for its record: the device (with the GPU's name on CUDA), the CPU, torch's threads, torch's
    version."""
    name = None
    if device is not None:
        device = torch.device(device)
        name = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    return {
        "device": name,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
    }


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a ddimlib checkpoint with torch.load(weights_only=True); never runs pickled code.

    Raises FileNotFoundError if missing, ValueError if the file is truncated, not a checkpoint, or
    holds anything but tensors and plain containers (a pickle that would execute code).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"refusing to load {path}: it holds objects that only a full unpickle could build "
            f"(which can execute code); ddimlib checkpoints hold tensors and plain containers only ({error})"
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f"{path} is truncated or not a ddimlib checkpoint ({error})") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a ddimlib checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return state


def load_weights(model: torch.nn.Module, weights: dict, path) -> None:
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(
            f"{path} holds weights of another architecture than its config builds: {str(error)[:300]}"
        ) from error
