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


@pytest.mark.parametrize("shape, config", [
    ((4, 1, 8, 8), UNetConfig(base=16, mults=(1, 2))),
    ((2, 1, 28, 28), UNetConfig(base=16, mults=(1, 2, 2))),
    ((2, 3, 12, 12), UNetConfig(channels=3, base=8, mults=(1, 2, 2, 2))),  # 12 -> 6 -> 3 -> 2: odd sizes on the way up
])
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
