"""Noise predictors: shapes for 2-D, 8x8 and 28x28 inputs, the timestep embedding, config checks."""

import math

import pytest
import torch

from ddimlib.models import MLPConfig, UNetConfig, build_model, count_parameters, timestep_embedding


def test_timestep_embedding_is_sinusoidal():
    t = torch.tensor([0, 1, 500])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8)
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    freqs = torch.exp(-math.log(10000) * torch.arange(4) / 4)
    assert torch.allclose(emb[2], torch.cat([(500 * freqs).sin(), (500 * freqs).cos()]), atol=1e-4)


@pytest.mark.parametrize(
    "shape, config",
    [
        ((4, 1, 8, 8), UNetConfig(base=16, mults=(1, 2))),
        ((2, 1, 28, 28), UNetConfig(base=16, mults=(1, 2, 2))),
        # 12 -> 6 -> 3 -> 2: odd sizes on the way up
        (
            (2, 3, 12, 12),
            UNetConfig(channels=3, base=8, mults=(1, 2, 2, 2)),
        ),
    ],
)
def test_unet_maps_images_to_their_shape_and_uses_t(shape, config):
    torch.manual_seed(0)
    model = build_model("unet", config)
    x = torch.randn(shape)
    a, b = model(x, torch.full((shape[0],), 10)), model(x, torch.full((shape[0],), 900))
    assert a.shape == x.shape and not torch.allclose(a, b)


def test_mlp_maps_points_to_their_shape_and_uses_t():
    torch.manual_seed(0)
    model = build_model("mlp", {"data_dim": 2, "hidden": 32, "depth": 2})
    x = torch.randn(5, 2)
    assert model(x, torch.full((5,), 1)).shape == (5, 2)
    assert not torch.allclose(model(x, torch.full((5,), 1)), model(x, torch.full((5,), 999)))
    assert count_parameters(model) == (2 + 64) * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2


def test_build_model_refuses_bad_configs():
    with pytest.raises(ValueError, match=r"unknown fields \['width'\]"):
        build_model("mlp", {"width": 3})
    with pytest.raises(ValueError, match="groups=8 must divide every level's channels; 12 is not divisible"):
        build_model("unet", UNetConfig(base=12))
    with pytest.raises(ValueError, match="kind must be one of 'mlp', 'unet'; got 'vit'"):
        build_model("vit", {})
    with pytest.raises(TypeError, match="must be a UNetConfig, got MLPConfig"):
        build_model("unet", MLPConfig())


def test_the_default_architectures_keep_their_parameter_counts():
    """The shipped checkpoints' architectures: a change here would leave their weights without a model to load into."""
    from ddimlib.train import DEFAULT_MODELS, DIGITS_SMALL

    assert count_parameters(build_model(*DEFAULT_MODELS["digits"])) == 177_201
    assert count_parameters(build_model(*DIGITS_SMALL)) == 64_473
    assert count_parameters(build_model(*DEFAULT_MODELS["fashion_mnist"])) == 971_873


@pytest.mark.parametrize(
    "checkpoint, shape, t, sums, row",
    [
        (
            "digits_unet.pt",
            (3, 1, 8, 8),
            [1, 500, 1000],
            [5.987246, 9.925602, 35.619332],
            (1, 3, 0, [0.258086, 0.158548, -0.102498, -0.033031]),
        ),
        (
            "fashion_unet_early.pt",
            (2, 1, 28, 28),
            [10, 700],
            [39.51891, 269.453238],
            (1, 14, 10, [0.246717, 0.248246, 0.251354, 0.253997]),
        ),
    ],
)
def test_a_shipped_checkpoint_gives_its_recorded_output_on_a_fixed_input(checkpoint, shape, t, sums, row):
    """A golden output: the forward pass with the shipped weights on a fixed ramp, as recorded on 2026-12-02
    (float32 on
    the CPU; tolerances cover another BLAS's rounding, not a change of the architecture or the embedding)."""
    from ddimlib.data import DATA_DIR
    from ddimlib.training import load_model

    model, _ = load_model(DATA_DIR / "checkpoints" / checkpoint)
    x = torch.linspace(-1, 1, math.prod(shape), dtype=torch.float64).reshape(shape).float()
    with torch.no_grad():
        y = model(x, torch.tensor(t))
    torch.testing.assert_close(
        y.double().sum(dim=(1, 2, 3)), torch.tensor(sums, dtype=torch.float64), rtol=1e-4, atol=1e-3
    )
    b, i, j, values = row
    torch.testing.assert_close(
        y[b, 0, i, j : j + 4].double(), torch.tensor(values, dtype=torch.float64), rtol=0, atol=1e-4
    )
