"""Checks that need ComfyUI's own modules in the process, run by the integration suite with
ComfyUI's Python:

    COMFYUI_DIR=... <ComfyUI's python> tests/comfy_checks.py DEMO_ROOT CHECK

CHECK is one of the functions below; the last line printed is a JSON object of what it found
(the test asserts on it). ComfyUI runs with --cpu, as on this machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ["COMFYUI_DIR"])
from comfy.cli_args import args  # noqa: E402

args.cpu = True
import comfy.model_management as mm  # noqa: E402
import comfy.model_patcher  # noqa: E402
import torch  # noqa: E402


def pack(demo_root: str):
    """The pack imported as ComfyUI imports it (a package from its folder), models from demo_root."""
    os.environ["SHOW1_MODELS_DIR"] = demo_root
    spec = importlib.util.spec_from_file_location("show1_pack", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["show1_pack"] = module
    spec.loader.exec_module(module)
    import folder_paths

    folder_paths.add_model_folder_path("show1", demo_root, is_default=True)
    return module


def castable_fraction(model: torch.nn.Module) -> float:
    """Share of the parameter bytes that sit in layers ComfyUI can cast (comfy.ops layers)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    castable = sum(p.numel() * p.element_size() for m in model.modules() if hasattr(m, "comfy_cast_weights")
                   for p in m.parameters(recurse=False))
    return castable / total


def loaded_models(p, weight_dtype: str = "default"):
    nodes = p.NODES
    load = lambda choice: nodes["Show1ModelLoader"].run(model=choice, dtype="fp32", offload="stage",  # noqa: E731
                                                        weight_dtype=weight_dtype)[0]
    models = {kind: load(f"{folder} ({kind})") for folder, kind in (
        ("show-1-base", "base"), ("show-1-interpolation", "interpolation"), ("show-1-sr1", "sr1"),
        ("IF-II-L-v1.0", "if_ii"), ("show-1-sr2", "sr2"))}
    vae = nodes["Show1VAELoader"].run(model="show-1-sr2 (sr2)", dtype="fp32", weight_dtype=weight_dtype)[0]
    encoders = nodes["Show1TextEncoderLoader"].run(t5_model="show-1-base (base)", clip_model="show-1-sr2 (sr2)",
                                                   device="gpu", dtype="fp32", offload_after_encoding=True,
                                                   weight_dtype=weight_dtype)[0]
    return models, vae, encoders


def castable(demo_root: str) -> dict:
    """Every model the pack builds is made of comfy.ops layers and wrapped in ComfyUI's patcher."""
    p = pack(demo_root)
    models, vae, encoders = loaded_models(p)
    found = {kind: castable_fraction(m.stage.unet) for kind, m in models.items()}
    found |= {"vae": castable_fraction(vae.vae), "t5": castable_fraction(encoders.t5.model),
              "clip": castable_fraction(encoders.clip.model)}
    patchers = [m.patcher for m in models.values()] + [vae.patcher, *encoders.patchers]
    return {"fractions": found, "patchers": [type(x).__name__ for x in patchers],
            "patched_models": [type(x.model).__name__ for x in patchers]}


def partial_load(demo_root: str) -> dict:
    """A Show-1 UNet loaded in part (a quarter of its bytes) computes what it computes loaded whole,
    in the default and in fp8 storage."""
    p = pack(demo_root)
    out = {}
    for weight_dtype in ("default", "fp8_e4m3fn"):
        model = p.NODES["Show1ModelLoader"].run(model="show-1-sr2 (sr2)", dtype="fp32", offload="stage",
                                                weight_dtype=weight_dtype)[0]
        unet, patcher = model.stage.unet, model.patcher
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 4, 3, 8, 12, generator=g)
        text = torch.randn(2, 77, unet.text_dim, generator=g)
        device = mm.get_torch_device()
        patcher.load(device, lowvram_model_memory=0, full_load=True)
        with torch.inference_mode():
            whole = unet(x, torch.tensor([500]), text)
        patcher.unpatch_model(patcher.offload_device)
        size = patcher.model_size()
        patcher.load(device, lowvram_model_memory=size // 4)
        cast = sum(1 for m in unet.modules() if getattr(m, "comfy_cast_weights", False))
        layers = sum(1 for m in unet.modules() if hasattr(m, "comfy_cast_weights"))
        with torch.inference_mode():
            partial = unet(x, torch.tensor([500]), text)
        out[weight_dtype] = {"max_abs_diff": float((whole - partial).abs().max()), "cast_layers": cast,
                             "layers": layers, "loaded_bytes": int(patcher.loaded_size()), "model_bytes": int(size),
                             "lowvram": bool(getattr(unet, "model_lowvram", False))}
        patcher.unpatch_model(patcher.offload_device)
    return out


def cast_paths(demo_root: str) -> dict:
    """The functional casts of the pack's layer set (`ComfyOps.weights`) on each path the ComfyUI at
    hand offers: the offloadable cast, each handed back with uncast_bias_weight, where ComfyUI has it
    (0.33), and the legacy cast (the only one in 0.3.64; taken there too when uncast_bias_weight is
    hidden). A sr2 UNet loaded in part computes on each what it computes loaded whole."""
    p = pack(demo_root)
    layers = sys.modules["show1_pack.nodes.comfy"]
    real_cast, real_uncast = comfy.ops.cast_bias_weight, getattr(comfy.ops, "uncast_bias_weight", None)
    calls = {"casts": [], "uncasts": 0}

    def from_pack() -> bool:
        return sys._getframe(2).f_code.co_filename == layers.__file__

    def cast(*args, **kwargs):
        if from_pack():
            calls["casts"].append(bool(kwargs.get("offloadable")))
        return real_cast(*args, **kwargs)

    def uncast(*args, **kwargs):
        calls["uncasts"] += from_pack()
        return real_uncast(*args, **kwargs)

    def run(path: str) -> dict:
        calls.update(casts=[], uncasts=0)
        if path == "legacy" and real_uncast is not None:
            del comfy.ops.uncast_bias_weight
        try:
            model = p.NODES["Show1ModelLoader"].run(model="show-1-sr2 (sr2)", dtype="fp32", offload="stage")[0]
        finally:
            if real_uncast is not None:
                comfy.ops.uncast_bias_weight = uncast
        unet, patcher = model.stage.unet, model.patcher
        g = torch.Generator().manual_seed(0)
        x, text = torch.randn(2, 4, 3, 8, 12, generator=g), torch.randn(2, 77, unet.text_dim, generator=g)
        device = mm.get_torch_device()
        patcher.load(device, lowvram_model_memory=0, full_load=True)
        with torch.inference_mode():
            whole = unet(x, torch.tensor([500]), text)
        patcher.unpatch_model(patcher.offload_device)
        patcher.load(device, lowvram_model_memory=patcher.model_size() // 4)
        with torch.inference_mode():
            partial = unet(x, torch.tensor([500]), text)
        open_after_forward = len(layers._open_casts)
        layers.release_casts()
        patcher.unpatch_model(patcher.offload_device)
        return {"functional_casts": len(calls["casts"]), "offloadable_casts": sum(calls["casts"]),
                "uncasts": calls["uncasts"], "open_after_forward": open_after_forward,
                "open_after_release": len(layers._open_casts), "max_abs_diff": float((whole - partial).abs().max())}

    comfy.ops.cast_bias_weight = cast
    paths = {"legacy": run("legacy")}
    if real_uncast is not None:
        paths["offloadable"] = run("offloadable")
    return {"has_uncast": real_uncast is not None, "paths": paths}


def load_requests(demo_root: str) -> dict:
    """Stages ask ComfyUI for their model with their activation estimate, never forcing a full load."""
    p = pack(demo_root)
    models, vae, encoders = loaded_models(p)
    calls = []
    real = mm.load_models_gpu

    def spy(models_, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
            force_full_load=False):
        calls.append({"model": type(models_[0].model).__name__, "memory_required": int(memory_required),
                      "force_full_load": force_full_load})
        return real(models_, memory_required=memory_required, force_patch_weights=force_patch_weights,
                    minimum_memory_required=minimum_memory_required, force_full_load=force_full_load)

    mm.load_models_gpu = spy
    cond = p.NODES["Show1TextEncode"].run(text_encoder=encoders, prompt="a boat", negative_prompt="blur",
                                          pixel_negative_prompt="", clean_caption=False)[0]
    p.NODES["Show1KeyframeSampler"].run(model=models["base"], cond=cond, num_frames=2, width=24, height=16, steps=1,
                                        guidance=9.0, seed=0, fps=2.0)
    latent = p.NODES["Show1VAEEncode"].run(vae=vae, images=torch.rand(2, 64, 96, 3), width=96, height=64,
                                           resize="crop", posterior="mean", seed=0, tile=False)[0]
    p.NODES["Show1LatentUpscale"].run(model=models["sr2"], cond=cond, latent=latent, strength=0.5, steps=2,
                                      guidance=7.0, seed=0)
    return {"calls": calls}


def dynamic_patcher(demo_root: str) -> dict:
    """The patcher class is looked up when a model is wrapped (ComfyUI 0.16+ rebinds CoreModelPatcher
    at start), and the model is wrapped before its weights arrive, then assigned them."""
    seen = {}

    class DynamicPatcher(comfy.model_patcher.ModelPatcher):
        def __init__(self, model, *a, **k):
            seen.setdefault("meta_at_wrap", []).append(next(model.parameters()).device.type == "meta")
            super().__init__(model, *a, **k)

        def is_dynamic(self):
            return True

    p = pack(demo_root)
    comfy.model_patcher.CoreModelPatcher = DynamicPatcher  # after the pack was imported
    model = p.NODES["Show1ModelLoader"].run(model="show-1-base (base)", dtype="fp32", offload="stage")[0]
    return {"patcher": type(model.patcher).__name__, "meta_at_wrap": seen["meta_at_wrap"],
            "weights_after": next(model.stage.unet.parameters()).device.type,
            "size_matches": model.patcher.model_size() == sum(
                t.numel() * t.element_size() for t in model.stage.unet.state_dict().values())}


def tiny_t5_config() -> dict:
    """ComfyUI's T5-XXL config, narrowed (the vocabulary stays: ComfyUI's tokenizer is the real one)."""
    config = json.loads((Path(os.environ["COMFYUI_DIR"]) / "comfy" / "text_encoders" / "t5_config_xxl.json")
                        .read_text())
    return {**config, "d_model": 32, "d_kv": 8, "num_heads": 4, "d_ff": 64, "num_layers": 2}


def t5_equality(demo_root: str) -> dict:
    """ComfyUI's T5 module and the pack's give the same embeddings from the same weights, and
    Show1TextEncode fed a CLIP that ComfyUI builds for a t5xxl file (CLIPLoader's pixart type)
    encodes exactly as Show-1 does."""
    import comfy.sd
    import comfy.text_encoders.pixart_t5
    import comfy.text_encoders.t5

    p = pack(demo_root)
    t5_module = sys.modules["show1_pack.show1_core.models.t5"]
    text_module = sys.modules["show1_pack.show1_core.text"]
    config = tiny_t5_config()
    torch.manual_seed(0)
    ours = t5_module.T5Encoder(t5_module.T5Config(**{k: config[k] for k in (
        "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")}, dense_act_fn="gelu_new",
        feed_forward_proj="gated-gelu")).eval()
    with torch.no_grad():
        for prm in ours.parameters():
            prm.normal_(0, 0.3)
    state = ours.state_dict()

    theirs = comfy.text_encoders.t5.T5(config, torch.float32, "cpu", comfy.ops.manual_cast).eval()
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config["vocab_size"], (2, 77), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    with torch.inference_mode():
        a = ours(ids, mask)
        b, _ = theirs(ids, mask, dtype=torch.float32)
    module_diff = float((a - b).abs().max())

    # the CLIP object CLIPLoader (type pixart) makes, with the narrowed config, holding these weights
    class Target:
        params = {}
        clip = comfy.text_encoders.pixart_t5.pixart_te()
        tokenizer = comfy.text_encoders.pixart_t5.PixArtTokenizer

    clip = comfy.sd.CLIP(Target(), model_options={"t5xxl_model_config": config, "dtype": torch.float32})
    clip.load_sd(state)
    prompt, negative = "A Panda eating bamboo, in a forest.", ""
    cond = p.NODES["Show1TextEncode"].run(t5=clip, prompt=prompt, negative_prompt="", pixel_negative_prompt=negative,
                                          clean_caption=False)[0]
    tokenizer = p.nodes.comfy.comfy_t5(clip)[0]
    reference = text_module.encode_prompt(text_module.TextEncoder("t5", tokenizer, ours), prompt, negative)
    tokens = tokenizer([prompt.lower().strip(), ""], padding="max_length", max_length=77, truncation=True,
                       return_tensors="pt")
    return {"missing": list(missing), "unexpected": list(unexpected), "module_max_abs_diff": module_diff,
            "masked_positions_matter": float((a[1] - ours(ids, torch.ones_like(ids))[1]).abs().max()),
            "node_positive_diff": float((cond.t5.positive - reference.positive).abs().max()),
            "node_negative_diff": float((cond.t5.negative - reference.negative).abs().max()),
            "shape": list(cond.t5.positive.shape), "negative_tokens": int(tokens.attention_mask[1].sum()),
            "positive_tokens": int(tokens.attention_mask[0].sum()), "end_token": int(tokens.input_ids[1, 0])}


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[2]](sys.argv[1])))
