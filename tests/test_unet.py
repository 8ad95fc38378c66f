"""The Show-1 UNet3D family: config-driven construction of both block layouts, the published head
split, and chunking that leaves the arithmetic alone."""

from __future__ import annotations

import pytest
import torch

from show1_core.demo import SR2_UNET_CONFIG, pixel_unet_config
from show1_core.errors import ModelLoadError
from show1_core.models import attention
from show1_core.models.unet import Show1UNet, UNetConfig


def build(base: dict | None = None, **changes) -> Show1UNet:
    torch.manual_seed(0)
    config = {**(base or pixel_unet_config(6, True, True)), **changes}
    model = Show1UNet(UNetConfig.from_dict(config)).eval()
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
    with pytest.raises(ModelLoadError, match="num_attention_heads .* is not used"):
        UNetConfig.from_dict({**pixel_unet_config(3, False, False), "num_attention_heads": 8})


LATENT = {**SR2_UNET_CONFIG, "block_out_channels": [64, 64], "attention_head_dim": 64}


def test_sr2_heads_follow_the_published_split():
    """Published: heads = attention_head_dim in the spatial and temporal transformers (64 heads of 1
    channel here); diffusers' UNet3DConditionModel takes channels / 64 heads of 64."""
    model = build(LATENT)
    spatial = model.down_blocks[0].attentions[0].transformer_blocks[0]
    temporal = model.down_blocks[0].temp_attentions[0].transformer_blocks[0]
    assert spatial.attn1.heads == spatial.attn2.heads == temporal.attn1.heads == 64
    assert model.transformer_in.transformer_blocks[0].attn1.heads == 8 and model.transformer_in.inner == 512
    assert model.size_multiple == 1


def test_sr2_has_diffusers_parameter_names_but_computes_another_function():
    from diffusers import UNet3DConditionModel

    ours = build(LATENT, use_linear_projection=True)  # diffusers' class knows only linear projections
    with torch.no_grad():  # peaked attention, so the way heads are split shows in the output
        for name, p in ours.named_parameters():
            if name.endswith(("to_q.weight", "to_k.weight")):
                p.mul_(20)
    keys = {"in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
            "layers_per_block", "norm_num_groups", "cross_attention_dim", "attention_head_dim"}
    theirs = UNet3DConditionModel.from_config({k: v for k, v in LATENT.items() if k in keys}).eval()
    state = ours.state_dict()
    assert {k: v.shape for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in state.items()}
    theirs.load_state_dict(state)
    x, t, text = torch.randn(1, 4, 3, 8, 12), torch.tensor([500]), torch.randn(1, 77, 32)
    with torch.no_grad():
        a, b = ours(x, t, text), theirs(x, t, encoder_hidden_states=text).sample
    assert (a - b).abs().max() > 0.05 * a.abs().max(), "the head split must differ from diffusers' UNet3DConditionModel"


@pytest.mark.parametrize("linear", [False, True])
def test_sr2_projection_layout_follows_use_linear_projection(linear):
    model = build(LATENT, use_linear_projection=linear)
    weight = model.state_dict()["down_blocks.0.attentions.0.proj_in.weight"]
    assert weight.shape == ((64, 64) if linear else (64, 64, 1, 1))


def test_sr2_takes_odd_latent_sizes_like_the_published_upsampling():
    model = build(LATENT)
    with torch.no_grad():
        out = model(torch.randn(1, 4, 2, 5, 7), torch.tensor([10]), torch.randn(1, 77, 32))
    assert out.shape == (1, 4, 2, 5, 7) and torch.isfinite(out).all()


def test_spatial_transformer_frame_chunking_does_not_change_the_result(monkeypatch):
    model = build(LATENT)
    args = (torch.randn(2, 4, 3, 8, 12), torch.tensor([300, 20]), torch.randn(2, 77, 32))
    with torch.no_grad():
        whole = model(*args)
        monkeypatch.setattr(attention, "TOKEN_CHUNK_ELEMENTS", 8 * 12 * 64 * 8 * 2)
        chunked = model(*args)
    assert torch.allclose(whole, chunked, atol=1e-6, rtol=0)


def test_mixing_block_families_in_the_down_path_is_refused_by_stage_recognition():
    from show1_core.folders import classify_unet

    config = {**SR2_UNET_CONFIG, "down_block_types": ["CrossAttnDownBlock3D", "ResnetDownsampleBlock3D"]}
    with pytest.raises(ModelLoadError, match="is not one of the Show-1 stages"):
        classify_unet(config, "unet")


def test_padded_heads_compute_the_same_attention():
    """Zero-padding q, k and v to a multiple of 8 channels with the true head size's scale is the
    attention of the unpadded heads (against SDPA's math kernel; float64 leaves only rounding)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator().manual_seed(0)
    for d in (3, 5, 10, 20):
        q, k, v = (torch.randn(2, 4, 37, d, generator=g, dtype=torch.float64) for _ in range(3))
        with sdpa_kernel(SDPBackend.MATH):
            plain = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            padded = attention.padded_sdpa(q, k, v)
        assert padded.shape == plain.shape
        assert (padded - plain).abs().max() < 1e-12, d


def test_a_unet_with_odd_head_sizes_gives_the_same_output_with_padded_heads(monkeypatch):
    """sr2's head sizes (here 4 and 8 channels) through the padding CUDA uses: the same output."""
    model = build(SR2_UNET_CONFIG)
    assert {b.attn1.heads for m in model.modules() if isinstance(m, attention.SpatialTransformer)
            for b in m.transformer_blocks} and model.config.block_out_channels[0] // 8 % 8 != 0
    x, text = torch.randn(1, 4, 3, 8, 12), torch.randn(1, 77, SR2_UNET_CONFIG["cross_attention_dim"])
    with torch.inference_mode():
        plain = model(x, 500, text)
        calls = []
        monkeypatch.setattr(attention, "pads_heads", lambda q: calls.append(q.shape[-1]) or q.shape[-1] % 8 != 0)
        padded = model(x, 500, text)
    assert 4 in calls and (padded - plain).abs().max() < 1e-5
