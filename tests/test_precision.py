"""Weight storage formats: fp8 saturates at its largest finite value instead of turning larger
weights into NaN or infinity (what a plain cast gives, depending on the format and the torch
build), in every model the loader stores in fp8, T5's embedding table included."""

from __future__ import annotations

import shutil

import pytest
import torch

from show1_core.loading import load_stage, load_text_encoder
from show1_core.precision import FP8_LIMITS, Precision, to_storage
from show1_core.stage import StageKind
from show1_core.text import encode_prompt
from show1_core.weights import find_weights, iter_tensors

FP8 = sorted(FP8_LIMITS, key=str)


def test_fp8_storage_saturates_at_the_largest_finite_value():
    x = torch.tensor([-1e6, -500.0, -1.0, 0.0, 0.3, 447.0, 449.0, 1e5, 6e4])
    for dtype, limit in FP8_LIMITS.items():
        back = to_storage(x, dtype).float()
        assert torch.isfinite(back).all() and back.max() == limit and back.min() == -limit, dtype
    assert not torch.isfinite(x.to(torch.float8_e5m2).float()).all()  # what saturation replaces
    assert torch.equal(to_storage(x, torch.float16), x.to(torch.float16))


def with_large_weights(src, dst, library: str, value: float) -> None:
    """The component folder `src` copied to `dst` (as safetensors) with a few entries of every
    matrix set to +-`value`, beyond fp8's range."""
    from safetensors.torch import save_file

    path, _ = find_weights(src, library)
    state = {}
    for key, v in iter_tensors(path):
        v = v.float().clone() if v.is_floating_point() else v
        if v.is_floating_point() and v.dim() >= 2:
            flat = v.view(-1)
            flat[:3] = torch.tensor([value, -value, value])[: flat.numel()]
        state[key] = v.contiguous()
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.bin", "*.bin.index.json", "*.safetensors*"))
    save_file(state, str(dst / ("model.safetensors" if library == "transformers" else
                                "diffusion_pytorch_model.safetensors")))


@pytest.mark.parametrize("dtype", FP8, ids=str)
def test_models_stored_in_fp8_stay_finite_with_weights_beyond_its_range(demo_root, tmp_path, dtype):
    base = tmp_path / "show-1-base"
    src = demo_root / StageKind.BASE.folder
    shutil.copytree(src, base, ignore=shutil.ignore_patterns("text_encoder", "unet"))
    limit = FP8_LIMITS[dtype]
    with_large_weights(src / "text_encoder", base / "text_encoder", "transformers", 2 * limit)
    with_large_weights(src / "unet", base / "unet", "diffusers", 2 * limit)
    t5 = load_text_encoder(base, dtype)
    table = next(m.weight for m in t5.model.modules() if isinstance(m, torch.nn.Embedding))
    assert table.dtype == dtype and table.float().abs().max() == limit
    embeds = encode_prompt(t5, "a panda eating bamboo")  # refuses non-finite embeddings
    stage = load_stage(base, Precision(torch.float32, dtype))
    weights = [p for p in stage.unet.parameters() if p.dtype == dtype]
    assert weights and max(float(p.float().abs().max()) for p in weights) == limit
    if dtype is torch.float8_e4m3fn:  # weights of 57344 (e5m2) overflow float32 activations anyway
        with torch.inference_mode():
            out = stage.unet(torch.randn(1, 3, 2, 16, 24), 500, embeds.positive)
        assert torch.isfinite(out).all()
