"""Data sets that ship with the project or are made in code, and an IDX loader for MNIST/Fashion-MNIST.

- 2-D toy sets, generated from a seed: eight Gaussians on a circle (also as an exact oracle
  mixture), two moons, swiss roll, checkerboard.
- The embedded default image set: the 8x8 handwritten digits (1,797 images) that scikit-learn
  bundles, shipped in data/digits.csv.gz with its sha256 (see data/README.md for provenance and
  licence), scaled to [-1, 1], with a fixed stratified train/test split.
- MNIST and Fashion-MNIST for users who are online: IDX files downloaded into a cache folder,
  verified by sha256, parsed with numpy.

Images are float32 tensors (N, 1, H, W) in [-1, 1]; 2-D sets are float32 (N, 2).
Used by notebooks/03_training.ipynb and ddimlib.train.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddimlib._validate import require_choice, require_int
from ddimlib.oracle import eight_gaussians
from ddimlib.schedules import Schedule

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DIGITS_FILE = DATA_DIR / "digits.csv.gz"
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_TEST_PER_CLASS = 50  # 500 held-out digits, 1,297 for training
DIGITS_SPLIT_SEED = 0

TOY_SETS = ("eight_gaussians", "two_moons", "swiss_roll", "checkerboard")


# ---------------------------------------------------------------- 2-D toy sets


def toy_2d(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """n points of a 2-D toy set, float32 (n, 2), roughly centred with coordinates within [-3, 3]."""
    name = require_choice("name", name, TOY_SETS)
    n = require_int("n", n, 1)
    g = torch.Generator().manual_seed(seed)
    if name == "eight_gaussians":
        return eight_gaussians_oracle(None).sample(n, generator=g).float()
    if name == "two_moons":
        upper = torch.rand(n, generator=g) < 0.5
        angle = torch.rand(n, generator=g) * math.pi
        x = torch.where(upper, angle.cos(), 1 - angle.cos())
        y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
        points = torch.stack([x - 0.5, y - 0.25], 1) * 1.6
        return points + 0.08 * torch.randn(n, 2, generator=g)
    if name == "swiss_roll":
        turn = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        points = torch.stack([turn * turn.cos(), turn * turn.sin()], 1) / 5
        return points + 0.08 * torch.randn(n, 2, generator=g)
    # checkerboard: uniform on the black squares of a 4x4 board over [-2, 2]^2
    cell = torch.randint(0, 8, (n,), generator=g)
    row = cell // 2
    col = 2 * (cell % 2) + (row % 2)
    offset = torch.rand(n, 2, generator=g)
    return torch.stack([col + offset[:, 0], row + offset[:, 1]], 1) - 2.0


def eight_gaussians_oracle(schedule: Schedule | None):
    """The eight-Gaussians set as a GaussianMixtureEps, so the exact oracle applies (radius 2, std 0.1).

    With schedule=None it can only be sampled (a linear schedule is attached as a placeholder).
    """
    from ddimlib.schedules import linear_schedule

    return eight_gaussians(schedule if schedule is not None else linear_schedule(), radius=2.0, std=0.1)


# ---------------------------------------------------------------- the embedded digits


@dataclass(frozen=True)
class ImageSplit:
    """Images (N, 1, H, W) float32 in [-1, 1] and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_digits(split: str = "train") -> ImageSplit:
    """The 8x8 digits (UCI / scikit-learn), verified by sha256, scaled from 0..16 to [-1, 1].

    split: "train" (1,297 images), "test" (500: 50 per class, held out for every metric) or "all".
    The split is a fixed stratified draw (seed DIGITS_SPLIT_SEED), the same on every machine.
    """
    split = require_choice("split", split, ("train", "test", "all"))
    if not DIGITS_FILE.exists():
        raise FileNotFoundError(f"the embedded digits file {DIGITS_FILE} is missing; it ships with the repository")
    found = sha256_of(DIGITS_FILE)
    if found != DIGITS_SHA256:
        raise ValueError(f"{DIGITS_FILE} has sha256 {found}, expected {DIGITS_SHA256}; the file is damaged or was replaced")
    with gzip.open(DIGITS_FILE, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :64]).reshape(-1, 1, 8, 8) / 8.0 - 1.0
    labels = torch.from_numpy(table[:, 64]).long()
    if split == "all":
        return ImageSplit(images, labels)
    g = torch.Generator().manual_seed(DIGITS_SPLIT_SEED)
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for digit in range(10):
        members = (labels == digit).nonzero().flatten()
        is_test[members[torch.randperm(len(members), generator=g)[:DIGITS_TEST_PER_CLASS]]] = True
    keep = is_test if split == "test" else ~is_test
    return ImageSplit(images[keep], labels[keep])


# ---------------------------------------------------------------- MNIST and Fashion-MNIST (online)

IDX_SOURCES = {
    # name: (base URL, {file: sha256})
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    ),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("DDIMLIB_CACHE", Path.home() / ".cache" / "ddimlib"))


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file (LeCun's format: zero bytes, dtype code, rank, big-endian sizes, data)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError("not an IDX file: it must start with two zero bytes")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise ValueError(f"not an IDX file: unknown data type code {raw[2]:#x}")
    rank = raw[3]
    shape = struct.unpack(f">{rank}I", raw[4 : 4 + 4 * rank])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * rank)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"IDX file is truncated: header says shape {shape} but {data.size} values follow")
    return data.reshape(shape)


def _fetch(url: str, target: Path, sha256: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    urllib.request.urlretrieve(url, partial)
    found = sha256_of(partial)
    if found != sha256:
        partial.unlink()
        raise ValueError(f"download of {url} has sha256 {found}, expected {sha256}")
    os.replace(partial, target)


def load_idx_dataset(name: str, split: str = "train", cache_dir: Path | None = None, download: bool = True) -> ImageSplit:
    """MNIST or Fashion-MNIST (28x28) from IDX files in cache_dir, downloading them if missing.

    Every file is verified by sha256 before it is parsed. Offline, a missing file raises a
    RuntimeError that names the embedded default (load_digits), which needs no network.
    """
    name = require_choice("name", name, tuple(IDX_SOURCES))
    split = require_choice("split", split, ("train", "test"))
    base, files = IDX_SOURCES[name]
    folder = Path(cache_dir or default_cache_dir()) / name
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz"):
        file = f"{prefix}-{kind}"
        path = folder / file
        if not path.exists():
            if not download:
                raise RuntimeError(f"{path} is missing and download=False; use ddimlib.data.load_digits() (embedded, offline)")
            try:
                _fetch(base + file, path, files[file])
            except OSError as error:
                raise RuntimeError(
                    f"could not download {name} ({error}); this machine may be offline. "
                    "The embedded 8x8 digits need no network: ddimlib.data.load_digits()"
                ) from error
        found = sha256_of(path)
        if found != files[file]:
            raise ValueError(f"{path} has sha256 {found}, expected {files[file]}; delete it to download again")
        arrays.append(parse_idx(gzip.decompress(path.read_bytes())))
    images = torch.from_numpy(arrays[0].astype(np.float32)).unsqueeze(1) / 127.5 - 1.0
    return ImageSplit(images, torch.from_numpy(arrays[1].astype(np.int64)))
