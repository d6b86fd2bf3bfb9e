"""Data sets that ship with the project or are made in code, and an IDX loader for MNIST/Fashion-MNIST.

- 2-D toy sets, generated from a seed: eight Gaussians on a circle (`ddimlib.oracle.eight_gaussians`,
  whose exact denoiser is known), two moons, swiss roll, checkerboard.
- The embedded default image set: the 8x8 handwritten digits (1,797 images) that scikit-learn
  bundles, shipped in data/digits.csv.gz with its sha256 (see data/README.md for provenance and
  licence), scaled to [-1, 1], with a fixed stratified train/test split.
- MNIST and Fashion-MNIST for users who are online: IDX files downloaded into a cache folder,
  verified by sha256, parsed with numpy.

Images are float32 tensors (N, 1, H, W) in [-1, 1]; 2-D sets are float32 (N, 2).
Used by notebooks/03_training.ipynb and ddimlib.train.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ddimlib._validate import require_choice, require_int
from ddimlib.checkpoints import write_atomic
from ddimlib.oracle import eight_gaussians


def _data_dir() -> Path:
    """The data folder: the repository's data/ in a checkout (and its editable install), else the copy of it that a
    wheel installs as the package ddimlib.data_files (pyproject.toml)."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "data"
    return checkout if (checkout / "digits.csv.gz").exists() else package / "data_files"


DATA_DIR = _data_dir()
DIGITS_FILE = DATA_DIR / "digits.csv.gz"
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_TEST_PER_CLASS = 50  # 500 held-out digits, 1,297 for training
DIGITS_SPLIT_SEED = 0

TOY_SETS = ("eight_gaussians", "two_moons", "swiss_roll", "checkerboard")
# the image sets (load_image_set) and one image's (C, H, W)
IMAGE_SHAPES = {
    "digits": (1, 8, 8),
    "fashion_mnist": (1, 28, 28),
}


# ---------------------------------------------------------------- 2-D toy sets


def toy_2d(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """n points of a 2-D toy set, float32 (n, 2), roughly centred with coordinates within [-3, 3]."""
    name = require_choice("name", name, TOY_SETS)
    n = require_int("n", n, 1)
    g = torch.Generator().manual_seed(seed)
    if name == "eight_gaussians":
        return eight_gaussians().sample(n, generator=g).float()
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


# ---------------------------------------------------------------- the embedded digits


@dataclass(frozen=True)
class ImageSplit:
    """Images (N, 1, H, W) float32 in [-1, 1] and labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=2)
def _digits_table(path: Path, mtime_ns: int) -> np.ndarray:
    """The digits file verified and parsed, once per process (and again if the file changes)."""
    found = sha256_of(path)
    if found != DIGITS_SHA256:
        raise ValueError(f"{path} has sha256 {found}, expected {DIGITS_SHA256}; the file is damaged or was replaced")
    with gzip.open(path, "rt") as f:
        return np.loadtxt(f, delimiter=",", dtype=np.float32)


def load_digits(split: str = "train") -> ImageSplit:
    """The 8x8 digits (UCI / scikit-learn), verified by sha256, scaled from 0..16 to [-1, 1].

    split: "train" (1,297 images), "test" (500: 50 per class, held out for every metric) or "all".
    The split is a fixed stratified draw (seed DIGITS_SPLIT_SEED), the same on every machine.
    """
    split = require_choice("split", split, ("train", "test", "all"))
    if not DIGITS_FILE.exists():
        raise FileNotFoundError(
            f"the embedded digits file {DIGITS_FILE} is missing; it ships with the repository and in the wheel"
        )
    table = _digits_table(DIGITS_FILE, DIGITS_FILE.stat().st_mtime_ns)
    # new tensors: the cached table stays as read
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


# ---------------------------------------------------------------- MNIST and Fashion-MNIST

IDX_SOURCES = {
    # name: (base URL of the upstream download, {file: sha256 of its *decompressed* IDX bytes})
    # The decompressed bytes are what is verified, not the .gz: Debian's package recompressed the same
    # content (its .gz files hash differently from upstream's, its IDX bytes hash the same).
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {
            "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ),
    "fashion_mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ),
}
# Folders that a system package fills: Debian's (and Ubuntu's) dataset-fashion-mnist
SYSTEM_DIRS = {"fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}
SYSTEM_PACKAGES = {"fashion_mnist": "dataset-fashion-mnist"}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


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


@functools.lru_cache(maxsize=4)
def _parsed_idx(path: Path, sha256: str, mtime_ns: int, size: int) -> np.ndarray:
    """An IDX file verified and parsed, once per process for each file as it is on disk (read-only array)."""
    array = parse_idx(_read_verified(path, sha256))
    array.flags.writeable = False
    return array


_REMEDY = "delete it if it is in your cache (a download replaces it), or reinstall the system package it came from"


def _read_verified(path: Path, sha256: str) -> bytes:
    """The decompressed bytes of a .gz IDX file, checked against the sha256 of that content."""
    return _verified(path.read_bytes(), sha256, str(path))


def _verified(compressed: bytes, sha256: str, where: str) -> bytes:
    """The decompressed bytes of a .gz IDX file (read from `where`), checked against the sha256 of that content."""
    try:
        raw = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"{where} is not a readable .gz file ({error}); {_REMEDY}") from error
    found = hashlib.sha256(raw).hexdigest()
    if found != sha256:
        raise ValueError(
            f"{where} decompresses to content with sha256 {found}, expected {sha256}; "
            f"the file is damaged or holds another data set: {_REMEDY}"
        )
    return raw


def _fetch(url: str, target: Path, sha256: str) -> None:
    """Download url and keep it at target (written atomically) only if its decompressed content verifies; the
    download itself lands in a temporary folder that goes whatever happens."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download.") as folder:
        downloaded = Path(folder) / target.name
        urllib.request.urlretrieve(url, downloaded)
        payload = downloaded.read_bytes()
    try:
        _verified(payload, sha256, url)
    except ValueError as error:
        raise ValueError(f"the download of {url} did not verify: {error}") from error
    write_atomic(target, lambda f: f.write(payload))


def find_idx_folder(
    name: str, files: list[str] | None = None, cache_dir: Path | None = None, download: bool = True
) -> Path:
    """The folder that holds all of `files` (default: all four) of the IDX set `name`, looked for in this order:

    1. the user's cache, cache_dir or $DDIMLIB_CACHE or ~/.cache/ddimlib, in its subfolder `name`;
    2. the system folder a package fills (Fashion-MNIST: Debian's dataset-fashion-mnist);
    3. the upstream download into the cache (only if download=True).

    Raises RuntimeError naming all three places, and what to run, if none has them.
    """
    name = require_choice("name", name, tuple(IDX_SOURCES))
    base, hashes = IDX_SOURCES[name]
    files = list(hashes) if files is None else files
    cache = Path(cache_dir or default_cache_dir()) / name
    system = SYSTEM_DIRS.get(name)
    for folder in (cache, system):
        if folder is not None and all((folder / file).exists() for file in files):
            return folder
    failure = "download=False"
    if download:
        try:
            for file in files:
                if not (cache / file).exists():
                    _fetch(base + file, cache / file, hashes[file])
            return cache
        except OSError as error:
            failure = f"the download failed: {error}; this machine may be offline"
    places = [f"1. the cache {cache} (set DDIMLIB_CACHE to use another)"]
    if system is not None:
        places.append(
            f"2. the system folder {system} (sudo apt-get install {SYSTEM_PACKAGES[name]}, on Debian or Ubuntu)"
        )
    places.append(f"{len(places) + 1}. the upstream download from {base} ({failure})")
    raise RuntimeError(
        f"{name} was not found in any of: "
        + "; ".join(places)
        + ". The embedded 8x8 digits need no network: ddimlib.data.load_digits()"
    )


def load_idx_dataset(
    name: str, split: str = "train", cache_dir: Path | None = None, download: bool = True
) -> ImageSplit:
    """MNIST or Fashion-MNIST (28x28), found by find_idx_folder (cache, system package, download).

    Every file's decompressed content is verified by sha256 before it is parsed. Images are scaled
    from 0..255 to [-1, 1]: (N, 1, 28, 28) float32; labels (N,) int64.
    """
    name = require_choice("name", name, tuple(IDX_SOURCES))
    split = require_choice("split", split, ("train", "test"))
    prefix = "train" if split == "train" else "t10k"
    files = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    folder = find_idx_folder(name, files, cache_dir, download)
    stats = [(folder / file).stat() for file in files]
    images, labels = (
        _parsed_idx(folder / file, IDX_SOURCES[name][1][file], stat.st_mtime_ns, stat.st_size)
        for file, stat in zip(files, stats)
    )
    return ImageSplit(
        torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 127.5 - 1.0,
        torch.from_numpy(labels.astype(np.int64)),
    )


def load_image_set(name: str, split: str = "train") -> ImageSplit:
    """One of the image sets the series trains and scores on, by name: "digits" (`load_digits`) or "fashion_mnist"
    (`load_fashion_mnist`); images of shape (N, *IMAGE_SHAPES[name])."""
    name = require_choice("name", name, tuple(IMAGE_SHAPES))
    return load_digits(split) if name == "digits" else load_fashion_mnist(split)


def load_fashion_mnist(split: str = "train") -> ImageSplit:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT licence): "train" 60,000 or "test" 10,000 images
    (N, 1, 28, 28) in [-1, 1] with labels 0..9 (FASHION_CLASSES), found as load_idx_dataset says."""
    return load_idx_dataset("fashion_mnist", split)
