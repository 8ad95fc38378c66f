"""The pixel UNet family: config-driven construction and chunking that leaves the arithmetic alone."""

from __future__ import annotations

import pytest
import torch

from show1_core.demo import pixel_unet_config
from show1_core.errors import ModelLoadError
from show1_core.models import attention
from show1_core.models.pixel_unet import PixelUNet, PixelUNetConfig


def build(**changes) -> PixelUNet:
    torch.manual_seed(0)
    config = {**pixel_unet_config(6, True, True), **changes}
    model = PixelUNet(PixelUNetConfig.from_dict(config)).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model


def test_widths_heads_and_layers_come_from_the_config():
    model = build(block_out_channels=[32, 64, 64], layers_per_block=[1, 2, 1], attention_head_dim=16,
                  down_block_types=["ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D", "SimpleCrossAttnDownBlock3D"],
                  up_block_types=["SimpleCrossAttnUpBlock3D", "SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D"])
    assert len(model.down_blocks[1].resnets) == 2 and len(model.up_blocks[1].resnets) == 3
    assert model.down_blocks[1].attentions[0].heads == 64 // 16
    temporal = model.down_blocks[1].temp_attentions[0]
    assert temporal.transformer_blocks[0].attn1.heads == 16 and temporal.inner == 64
    assert model.size_multiple == 4
    x = torch.randn(2, 6, 3, 8, 12)
    out = model(x, torch.tensor([10, 500]), torch.randn(2, 77, 32), class_labels=torch.tensor([250, 250]))
    assert out.shape == (2, 6, 3, 8, 12) and torch.isfinite(out).all()


def test_only_cross_attention_drops_the_image_keys():
    model = build(only_cross_attention=True)
    attn = model.down_blocks[1].attentions[0]
    assert attn.only_cross_attention and not hasattr(attn, "to_k")
    assert "down_blocks.1.attentions.0.to_k.weight" not in model.state_dict()


def test_token_chunking_does_not_change_the_result(monkeypatch):
    model = build()
    x = torch.randn(1, 6, 4, 8, 12)
    args = (x, torch.tensor([300]), torch.randn(1, 77, 32))
    with torch.no_grad():
        whole = model(*args, class_labels=torch.tensor([100]))
        monkeypatch.setattr(attention, "TOKEN_CHUNK_ELEMENTS", 4096)
        assert len(attention.row_chunks(96, 4 * 64 * 8)) > 1
        chunked = model(*args, class_labels=torch.tensor([100]))
    assert torch.allclose(whole, chunked, atol=1e-6, rtol=0)


def test_noise_level_is_required_for_sr1():
    with pytest.raises(ValueError, match="class_labels"):
        build()(torch.randn(1, 6, 2, 8, 8), torch.tensor([1]), torch.randn(1, 77, 32))


def test_num_attention_heads_is_refused():
    with pytest.raises(ModelLoadError, match="num_attention_heads is not used"):
        PixelUNetConfig.from_dict({**pixel_unet_config(3, False, False), "num_attention_heads": 8})
