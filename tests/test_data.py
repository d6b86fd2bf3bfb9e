"""Data: 2-D toy sets, the embedded digits (hash-verified, fixed split), and the IDX loader on files we write."""

import gzip
import hashlib
import shutil
import struct
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from ddimlib import data
from ddimlib.oracle import eight_gaussians


@pytest.mark.parametrize("name", data.TOY_SETS)
def test_toy_sets_are_seeded_2d_and_bounded(name):
    a, b, c = data.toy_2d(name, 500, seed=1), data.toy_2d(name, 500, seed=1), data.toy_2d(name, 500, seed=2)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() < 3.5 and a.std(0).min() > 0.3


def test_eight_gaussians_has_its_mixture():
    points = data.toy_2d("eight_gaussians", 4000, seed=0).double()
    radius = points.norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.01
    mixture = eight_gaussians()
    assert mixture.means.shape == (8, 2) and torch.allclose(
        mixture.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64)
    )
    again = eight_gaussians().sample(4000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(points.float(), again.float())


def test_checkerboard_lies_on_black_squares():
    points = data.toy_2d("checkerboard", 2000)
    col, row = (points[:, 0] + 2).floor().long(), (points[:, 1] + 2).floor().long()
    assert ((col + row) % 2 == 0).all()


def test_digits_split_is_fixed_stratified_and_scaled():
    train, test, everything = data.load_digits("train"), data.load_digits("test"), data.load_digits("all")
    assert train.images.shape == (1297, 1, 8, 8) and test.images.shape == (500, 1, 8, 8)
    assert everything.images.shape == (1797, 1, 8, 8)
    assert train.images.min() == -1 and train.images.max() == 1
    assert torch.bincount(test.labels).tolist() == [50] * 10
    assert torch.equal(data.load_digits("test").images, test.images)  # the same split every time
    # train and test partition the whole set: every image is in exactly one of them (as a multiset)
    key = lambda images: sorted(map(bytes, (images.reshape(len(images), -1) * 8 + 8).to(torch.uint8).numpy()))
    assert key(torch.cat([train.images, test.images])) == key(everything.images)


def test_digits_hash_is_verified(tmp_path, monkeypatch):
    damaged = tmp_path / "digits.csv.gz"
    shutil.copy(data.DIGITS_FILE, damaged)
    with open(damaged, "ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(data, "DIGITS_FILE", damaged)
    with pytest.raises(ValueError, match="has sha256 .* expected 09f66e6d"):
        data.load_digits()


def write_idx(path, array, level=9):
    """Write `array` as a .gz IDX file; return the sha256 of its decompressed content (what the loader verifies)."""
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw, compresslevel=level, mtime=0))
    return hashlib.sha256(raw).hexdigest()


def tiny_set(folder, seed=0, level=9):
    """All four IDX files of a 3-image stand-in for MNIST in `folder`: {file: content sha256}, and the train images."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 3], dtype=np.uint8)
    hashes = {}
    for prefix in ("train", "t10k"):
        hashes[f"{prefix}-images-idx3-ubyte.gz"] = write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, level)
        hashes[f"{prefix}-labels-idx1-ubyte.gz"] = write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, level)
    return hashes, images, labels


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """A 3-image set written into the cache as "mnist" (no system folder, an unreachable download)."""
    hashes, images, labels = tiny_set(tmp_path / "mnist")
    monkeypatch.setitem(data.IDX_SOURCES, "mnist", ("http://unreachable.invalid/", hashes))
    return tmp_path, images, labels


def test_idx_loader_parses_files_it_verified(tiny_mnist):
    cache, images, labels = tiny_mnist
    split = data.load_idx_dataset("mnist", "train", cache_dir=cache, download=False)
    assert split.images.shape == (3, 1, 28, 28) and split.labels.tolist() == [7, 0, 3]
    assert torch.allclose(split.images[:, 0], torch.from_numpy(images).float() / 127.5 - 1)


def test_idx_loader_refuses_a_file_with_the_wrong_content(tiny_mnist):
    cache, _, _ = tiny_mnist
    path = cache / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x01\x05"))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz decompresses to content with sha256"):
        data.load_idx_dataset("mnist", "train", cache_dir=cache, download=False)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a readable .gz file"):
        data.load_idx_dataset("mnist", "train", cache_dir=cache, download=False)
    damaged = bytearray(gzip.compress(bytes(range(256)) * 64, mtime=0))
    damaged[20:40] = bytes(20)  # a damaged deflate stream: zlib's own error, not an OSError
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="not a readable .gz file .*delete it if it is in your cache"):
        data.load_idx_dataset("mnist", "train", cache_dir=cache, download=False)


def test_idx_loader_verifies_content_not_compression(tmp_path, monkeypatch):
    """Debian's package recompressed Fashion-MNIST: other .gz bytes, the same IDX content. Both must load."""
    hashes, _, _ = tiny_set(tmp_path / "a" / "mnist", level=9)
    same, _, _ = tiny_set(tmp_path / "b" / "mnist", level=1)
    assert same == hashes
    assert (tmp_path / "a" / "mnist" / "train-images-idx3-ubyte.gz").read_bytes() != (
        tmp_path / "b" / "mnist" / "train-images-idx3-ubyte.gz"
    ).read_bytes()
    monkeypatch.setitem(data.IDX_SOURCES, "mnist", ("http://unreachable.invalid/", hashes))
    a, b = (data.load_idx_dataset("mnist", "test", cache_dir=tmp_path / k, download=False) for k in "ab")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.fixture
def three_places(tmp_path, monkeypatch):
    """Fashion-MNIST stand-ins in a cache and a system folder (different images), and a download that records its
    calls."""
    cache_hashes, cache_images, _ = tiny_set(tmp_path / "cache" / "fashion_mnist", seed=1)
    system_hashes, system_images, _ = tiny_set(tmp_path / "system", seed=2)
    downloads = []

    def offline(url, filename):
        downloads.append(url)
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion_mnist", tmp_path / "system")
    return tmp_path, {"cache": (cache_hashes, cache_images), "system": (system_hashes, system_images)}, downloads


def test_fashion_mnist_is_found_in_the_cache_then_the_system_folder(three_places, monkeypatch):
    tmp_path, sets, downloads = three_places
    cache = tmp_path / "cache"
    monkeypatch.setitem(data.IDX_SOURCES, "fashion_mnist", ("http://unreachable.invalid/", sets["cache"][0]))
    assert data.find_idx_folder("fashion_mnist", cache_dir=cache) == cache / "fashion_mnist"  # the cache first
    loaded = data.load_idx_dataset("fashion_mnist", "train", cache_dir=cache)
    assert torch.equal(loaded.images[:, 0], torch.from_numpy(sets["cache"][1]).float() / 127.5 - 1)
    shutil.rmtree(cache / "fashion_mnist")  # no cache: the system folder, with no download tried
    monkeypatch.setitem(data.IDX_SOURCES, "fashion_mnist", ("http://unreachable.invalid/", sets["system"][0]))
    assert data.find_idx_folder("fashion_mnist", cache_dir=cache) == tmp_path / "system"
    loaded = data.load_idx_dataset("fashion_mnist", "train", cache_dir=cache)
    assert torch.equal(loaded.images[:, 0], torch.from_numpy(sets["system"][1]).float() / 127.5 - 1)
    assert downloads == []


def test_fashion_mnist_is_downloaded_only_when_neither_has_it(three_places, monkeypatch):
    tmp_path, sets, downloads = three_places
    shutil.rmtree(tmp_path / "system")
    (tmp_path / "cache" / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz").unlink()  # a cache with one file missing
    hashes, _ = sets["cache"]
    monkeypatch.setitem(data.IDX_SOURCES, "fashion_mnist", ("http://mirror.invalid/", hashes))

    def download(url, filename):
        downloads.append(url)
        source = tmp_path / "upstream"
        tiny_set(source, seed=1)
        shutil.copy(source / url.rsplit("/", 1)[1], filename)

    monkeypatch.setattr(urllib.request, "urlretrieve", download)
    split = data.load_idx_dataset("fashion_mnist", "test", cache_dir=tmp_path / "cache")
    assert downloads == ["http://mirror.invalid/t10k-labels-idx1-ubyte.gz"] and split.labels.tolist() == [7, 0, 3]


def test_a_download_that_does_not_verify_is_not_kept(three_places, monkeypatch):
    tmp_path, sets, _ = three_places
    shutil.rmtree(tmp_path / "system")
    shutil.rmtree(tmp_path / "cache")
    monkeypatch.setattr(
        urllib.request, "urlretrieve", lambda url, filename: write_idx(Path(filename), np.zeros((2, 2), np.uint8))
    )
    with pytest.raises(ValueError, match="did not verify"):
        data.load_idx_dataset("fashion_mnist", "test", cache_dir=tmp_path / "cache")
    assert not any((tmp_path / "cache" / "fashion_mnist").iterdir())


def test_idx_parser_rejects_truncated_and_foreign_files():
    with pytest.raises(ValueError, match="truncated"):
        data.parse_idx(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\1\2\3")
    with pytest.raises(ValueError, match="two zero bytes"):
        data.parse_idx(b"PK\3\4 not idx")


def test_with_none_of_the_three_places_the_error_names_them_all(three_places):
    tmp_path, _, downloads = three_places
    shutil.rmtree(tmp_path / "system")
    with pytest.raises(RuntimeError) as raised:
        data.load_idx_dataset("fashion_mnist", "test", cache_dir=tmp_path / "empty")
    message = str(raised.value)
    assert str(tmp_path / "empty" / "fashion_mnist") in message and "DDIMLIB_CACHE" in message
    assert str(tmp_path / "system") in message and "apt-get install dataset-fashion-mnist" in message
    assert "the download failed: Temporary failure in name resolution" in message and "load_digits()" in message
    assert len(downloads) == 1
    with pytest.raises(RuntimeError, match=r"download=False\). The embedded 8x8 digits need no network"):
        data.load_idx_dataset("mnist", "test", cache_dir=tmp_path, download=False)


def test_the_shipped_hashes_are_those_of_the_data_on_this_machine():
    """Where Debian's package is installed, its decompressed files hash as IDX_SOURCES says (upstream's content)."""
    folder = data.SYSTEM_DIRS["fashion_mnist"]
    if not folder.exists():
        pytest.skip(f"{folder} is not here (apt-get install dataset-fashion-mnist)")
    test = data.load_idx_dataset("fashion_mnist", "test", cache_dir=Path("/nonexistent"), download=False)
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.bincount().tolist() == [1000] * 10
