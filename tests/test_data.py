"""Data: 2-D toy sets, the embedded digits (hash-verified, fixed split), and the IDX loader on files we write."""

import gzip
import hashlib
import shutil
import struct
import urllib.request

import numpy as np
import pytest
import torch

from ddimlib import data


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
    oracle = data.eight_gaussians_oracle(None)
    assert oracle.means.shape == (8, 2) and torch.allclose(oracle.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))


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


def write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.tobytes()
    path.write_bytes(gzip.compress(raw))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 3], dtype=np.uint8)
    hashes = {
        "train-images-idx3-ubyte.gz": write_idx(folder / "train-images-idx3-ubyte.gz", images),
        "train-labels-idx1-ubyte.gz": write_idx(folder / "train-labels-idx1-ubyte.gz", labels),
    }
    monkeypatch.setitem(data.IDX_SOURCES, "mnist", ("http://unreachable.invalid/", hashes))
    return tmp_path, images, labels


def test_idx_loader_parses_files_it_verified(tiny_mnist):
    cache, images, labels = tiny_mnist
    split = data.load_idx_dataset("mnist", "train", cache_dir=cache, download=False)
    assert split.images.shape == (3, 1, 28, 28) and split.labels.tolist() == [7, 0, 3]
    assert torch.allclose(split.images[:, 0], torch.from_numpy(images).float() / 127.5 - 1)


def test_idx_loader_refuses_a_file_with_the_wrong_hash(tiny_mnist):
    cache, _, _ = tiny_mnist
    path = cache / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x01\x05"))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz has sha256"):
        data.load_idx_dataset("mnist", "train", cache_dir=cache, download=False)


def test_idx_parser_rejects_truncated_and_foreign_files():
    with pytest.raises(ValueError, match="truncated"):
        data.parse_idx(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\1\2\3")
    with pytest.raises(ValueError, match="two zero bytes"):
        data.parse_idx(b"PK\3\4 not idx")


def test_offline_download_fails_naming_the_embedded_default(tmp_path, monkeypatch):
    def offline(url, filename):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(RuntimeError, match=r"offline.*load_digits\(\)"):
        data.load_idx_dataset("fashion_mnist", "test", cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match=r"download=False; use ddimlib.data.load_digits\(\)"):
        data.load_idx_dataset("mnist", "test", cache_dir=tmp_path, download=False)
