"""Tiny random-weight Show-1 stage folders in the real hub layout.

`write_demo_models(root)` writes all five stages (show-1-base with its T5 and tokenizer,
show-1-interpolation, show-1-sr1, IF-II-L-v1.0, show-1-sr2 with its CLIP, tokenizer and VAE),
seeded, small enough for CPU tests, and loaded by exactly the code that loads the real checkpoints:
the hub's scheduler configs (DPM-Solver++; DDPM for IF-II), sr2 as the Show-1 UNet3D in its
ModelScope layout, and the hub's file formats (PyTorch pickles, show-1-base's T5 in shards, IF-II
as fp16 safetensors). Their output is noise: the weights are random. The demo CLI and the tests
use them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .models.unet import Show1UNet, UNetConfig
from .stage import StageKind

DIFFUSERS_VERSION = "0.19.3"
T5_WIDTH = 32
CLIP_WIDTH = 32
CORPUS = [
    "a burning lamborghini driving on rainbow", "two dogs playing in the snow at night",
    "a cat dancing in the rain", "an astronaut riding a horse on the moon, 4k",
    "video of a red car on a road in the city at sunset, cinematic, high quality",
    "low resolution, blur, watermark, text, ugly", "the quick brown fox jumps over the lazy dog",
    "waves crashing on a beach, drone shot, golden hour", "a panda eating bamboo in a forest",
]

# The schedulers of the published checkpoints: show-1-base's (also interpolation's; sr1's with
# sample_max_value 1) and show-1-sr2's, verbatim; DeepFloyd IF-II's DDPM and the image-noising DDPM.
BASE_SCHEDULER = {
    "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": DIFFUSERS_VERSION,
    "algorithm_type": "dpmsolver++", "beta_end": 0.02, "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001,
    "clip_sample": True, "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.95, "lambda_min_clipped": -5.1,
    "lower_order_final": True, "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.5,
    "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0, "thresholding": True,
    "timestep_spacing": "linspace", "trained_betas": None, "use_karras_sigmas": False, "variance_type": "fixed_small",
}
SR1_SCHEDULER = {**BASE_SCHEDULER, "sample_max_value": 1.0}
SR2_SCHEDULER = {
    "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": DIFFUSERS_VERSION,
    "algorithm_type": "dpmsolver++", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
    "clip_sample": False, "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995,
    "lambda_min_clipped": float("-inf"), "lower_order_final": True, "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True,
    "solver_order": 2, "solver_type": "midpoint", "steps_offset": 1, "thresholding": False,
    "timestep_spacing": "linspace", "trained_betas": None, "use_karras_sigmas": False, "variance_type": None,
}
IF_II_SCHEDULER = {
    "_class_name": "DDPMScheduler", "_diffusers_version": DIFFUSERS_VERSION, "beta_end": 0.02,
    "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "clip_sample": True, "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.95, "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "sample_max_value": 1.0, "steps_offset": 0, "thresholding": True, "timestep_spacing": "leading",
    "trained_betas": None, "variance_type": "learned_range",
}
NOISING_SCHEDULER = {**IF_II_SCHEDULER, "dynamic_thresholding_ratio": 0.995, "thresholding": False,
                     "variance_type": "fixed_small"}


def pixel_unet_config(in_channels: int, noise_level: bool, transformer_in: bool, resnet_levels: int = 1) -> dict:
    """A narrow member of the Show-1 pixel family with every option the real configs use.

    Attention comes only after `resnet_levels` downsampling levels, as in the real configs; the
    super-resolution UNets take more of them, since their attention cost grows with the square of
    the output size.
    """
    return {
        "_class_name": "UNet3DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "gelu",
        "addition_embed_type": "text", "addition_embed_type_num_heads": 4, "attention_head_dim": 8,
        "block_out_channels": [32] * (resnet_levels + 1), "class_embed_type": "timestep" if noise_level else None,
        "cross_attention_dim": 64, "cross_attention_norm": "group_norm",
        "down_block_types": ["ResnetDownsampleBlock3D"] * resnet_levels + ["SimpleCrossAttnDownBlock3D"],
        "encoder_hid_dim": T5_WIDTH,
        "encoder_hid_dim_type": "text_proj", "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": in_channels,
        "layers_per_block": 1, "mid_block_scale_factor": 1.4142271248762552 if noise_level else 1.0,
        "mid_block_type": "UNetMidBlock3DSimpleCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32,
        "only_cross_attention": False, "out_channels": 6, "resnet_out_scale_factor": 1.4142271248762552,
        "resnet_skip_time_act": True, "resnet_time_scale_shift": "scale_shift", "sample_size": 64,
        "time_embedding_act_fn": "gelu", "time_embedding_dim": 32 if noise_level else None,
        "transfromer_in_opt": transformer_in,
        "up_block_types": ["SimpleCrossAttnUpBlock3D"] + ["ResnetUpsampleBlock3D"] * resnet_levels,
    }


IF_II_CONFIG = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "gelu",
    "addition_embed_type": "text", "addition_embed_type_num_heads": 4, "attention_head_dim": 8,
    "block_out_channels": [32, 32, 32], "class_embed_type": "timestep", "cross_attention_dim": 64,
    "cross_attention_norm": "group_norm",
    "down_block_types": ["ResnetDownsampleBlock2D", "ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
    "encoder_hid_dim": T5_WIDTH, "encoder_hid_dim_type": "text_proj", "in_channels": 6, "layers_per_block": 1,
    "mid_block_scale_factor": 1.4142271248762552, "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "out_channels": 6, "resnet_out_scale_factor": 1.4142271248762552, "resnet_skip_time_act": True,
    "resnet_time_scale_shift": "scale_shift", "sample_size": 256, "time_embedding_act_fn": "gelu",
    "time_embedding_dim": 32,
    "up_block_types": ["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D", "ResnetUpsampleBlock2D"],
}
SR2_UNET_CONFIG = {
    "_class_name": "UNet3DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
    "attention_head_dim": 8, "block_out_channels": [32, 64], "cross_attention_dim": CLIP_WIDTH,
    "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"], "downsample_padding": 1, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 4, "layers_per_block": 1, "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock3DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4,
    "resnet_time_scale_shift": "default", "sample_size": 32, "transfromer_in_opt": True,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"], "use_linear_projection": False,
}
VAE_CONFIG = {
    "_class_name": "AutoencoderKL", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
    "block_out_channels": [32, 32, 32, 32], "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3,
    "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 32, "out_channels": 3, "sample_size": 64,
    "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D"] * 4,
}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _fp16_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}


def _save_bin(state: dict[str, torch.Tensor], directory: Path, stem: str, shards: int = 1) -> None:
    """PyTorch pickles named as save_pretrained names them; with shards, plus the index."""
    directory.mkdir(parents=True, exist_ok=True)
    if shards == 1:
        torch.save(state, directory / f"{stem}.bin")
        return
    keys = list(state)
    weight_map = {}
    for i in range(shards):
        name = f"{stem}-{i + 1:05d}-of-{shards:05d}.bin"
        part = {k: state[k] for k in keys[i::shards]}
        torch.save(part, directory / name)
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    _write_json(directory / f"{stem}.bin.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


def _save_component(model: torch.nn.Module, config: dict, directory: Path, fmt: str = "bin") -> None:
    """config.json plus fp16 weights: a .bin, or the fp16-variant safetensors IF-II ships."""
    _write_json(directory / "config.json", config)
    if fmt == "bin":
        _save_bin(_fp16_state(model), directory, "diffusion_pytorch_model")
    else:
        save_file(_fp16_state(model), str(directory / "diffusion_pytorch_model.fp16.safetensors"),
                  metadata={"format": "pt"})


def _quiet_output(model: torch.nn.Module, conv_out: str = "conv_out") -> torch.nn.Module:
    """Scale the final convolution down so random denoisers keep the sampling loops well conditioned."""
    conv = dict(model.named_modules())[conv_out]
    with torch.no_grad():
        conv.weight.mul_(0.05)
        conv.bias.mul_(0.05)
    return model


def _random_unet(config: dict) -> Show1UNet:
    model = Show1UNet(UNetConfig.from_dict(config))
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "positional_embedding"):
                module.positional_embedding.normal_(0, module.positional_embedding.shape[1] ** -0.5)
    return _quiet_output(model)


def _model_index(cls: str, **components) -> dict:
    return {"_class_name": cls, "_diffusers_version": DIFFUSERS_VERSION, **components}


SHOW1_UNET = ["showone.models.unet_3d_condition", "UNet3DConditionModel"]


def _t5_tokenizer(directory: Path) -> int:
    """A sentencepiece unigram model with T5's special ids, and the tokenizer files of the hub
    folder (written as data, so every transformers release reads them). Returns the vocabulary size."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 10), model_writer=model, vocab_size=200, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, character_coverage=1.0,
        normalization_rule_name="nfkc", shuffle_input_sentence=False, minloglevel=2)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spiece.model").write_bytes(model.getvalue())
    pieces = spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()
    extra = [f"<extra_id_{i}>" for i in range(100)]
    special = {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "additional_special_tokens": extra}
    _write_json(directory / "special_tokens_map.json", special)
    _write_json(directory / "tokenizer_config.json", {**special, "extra_ids": 100, "legacy": True,
                                                      "model_max_length": 512, "tokenizer_class": "T5Tokenizer"})
    return pieces + len(extra)


def byte_alphabet() -> list[str]:
    """GPT-2 / CLIP's printable stand-ins for the 256 byte values, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _clip_tokenizer(directory: Path) -> int:
    """A byte-level BPE vocabulary with no merges (every byte is a token, as CLIP's base alphabet),
    in the files of the hub folder. Returns the vocabulary size."""
    alphabet = byte_alphabet()
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>"}
    _write_json(directory / "special_tokens_map.json", special)
    _write_json(directory / "tokenizer_config.json", {**special, "model_max_length": 77,
                                                      "tokenizer_class": "CLIPTokenizer"})
    return len(vocab)


def write_base(folder: Path) -> None:
    from transformers import T5Config, T5EncoderModel

    vocab = _t5_tokenizer(folder / "tokenizer")
    config = T5Config(vocab_size=vocab, d_model=T5_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, is_encoder_decoder=False,
                      use_cache=False, dense_act_fn="gelu_new", tie_word_embeddings=False)
    config.architectures = ["T5EncoderModel"]
    encoder = T5EncoderModel(config)
    (folder / "text_encoder").mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder / "text_encoder"))
    _save_bin(_fp16_state(encoder), folder / "text_encoder", "pytorch_model", shards=2)
    config = pixel_unet_config(3, False, False)
    _save_component(_random_unet(config), config, folder / "unet")
    _write_json(folder / "scheduler" / "scheduler_config.json", BASE_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "TextToVideoIFPipeline", feature_extractor=[None, None], scheduler=["diffusers", "DPMSolverMultistepScheduler"],
        text_encoder=["transformers", "T5EncoderModel"], tokenizer=["transformers", "T5Tokenizer"], unet=SHOW1_UNET))


def write_interpolation(folder: Path) -> None:
    config = pixel_unet_config(7, False, False)
    _save_component(_random_unet(config), config, folder / "unet")
    _write_json(folder / "scheduler" / "scheduler_config.json", BASE_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "TextToVideoIFInterpPipeline", feature_extractor=[None, None],
        scheduler=["diffusers", "DPMSolverMultistepScheduler"], text_encoder=[None, None], tokenizer=[None, None],
        unet=SHOW1_UNET))


def write_sr1(folder: Path) -> None:
    config = pixel_unet_config(6, True, False, resnet_levels=2)
    _save_component(_random_unet(config), config, folder / "unet")
    _write_json(folder / "scheduler" / "scheduler_config.json", SR1_SCHEDULER)
    _write_json(folder / "image_noising_scheduler" / "scheduler_config.json", NOISING_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "TextToVideoIFSuperResolutionPipeline_Cond", feature_extractor=[None, None],
        image_noising_scheduler=["diffusers", "DDPMScheduler"], scheduler=["diffusers", "DPMSolverMultistepScheduler"],
        text_encoder=[None, None], tokenizer=[None, None], unet=SHOW1_UNET))


def write_if_ii(folder: Path) -> None:
    from diffusers import UNet2DConditionModel

    _save_component(_quiet_output(UNet2DConditionModel.from_config(IF_II_CONFIG)), IF_II_CONFIG, folder / "unet",
                    "safetensors")
    _write_json(folder / "scheduler" / "scheduler_config.json", IF_II_SCHEDULER)
    _write_json(folder / "image_noising_scheduler" / "scheduler_config.json", NOISING_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "IFSuperResolutionPipeline", feature_extractor=[None, None],
        image_noising_scheduler=["diffusers", "DDPMScheduler"], requires_safety_checker=False,
        safety_checker=[None, None], scheduler=["diffusers", "DDPMScheduler"], text_encoder=[None, None],
        tokenizer=[None, None], unet=["diffusers", "UNet2DConditionModel"], watermarker=[None, None]))


def write_sr2(folder: Path) -> None:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab = _clip_tokenizer(folder / "tokenizer")
    config = CLIPTextConfig(vocab_size=vocab, hidden_size=CLIP_WIDTH, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                            projection_dim=CLIP_WIDTH, bos_token_id=vocab - 2, eos_token_id=vocab - 1,
                            pad_token_id=vocab - 1)
    config.architectures = ["CLIPTextModel"]
    clip = CLIPTextModel(config)
    (folder / "text_encoder").mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder / "text_encoder"))
    # the hub's key layout ("text_model." prefix), which every transformers release reads
    state = {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in _fp16_state(clip).items()}
    _save_bin(state, folder / "text_encoder", "pytorch_model")
    _save_component(_random_unet(SR2_UNET_CONFIG), SR2_UNET_CONFIG, folder / "unet")
    _save_component(AutoencoderKL.from_config(VAE_CONFIG), VAE_CONFIG, folder / "vae")
    _write_json(folder / "scheduler" / "scheduler_config.json", SR2_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "VideoToVideoSDPipeline", scheduler=["diffusers", "DPMSolverMultistepScheduler"],
        text_encoder=["transformers", "CLIPTextModel"], tokenizer=["transformers", "CLIPTokenizer"],
        unet=SHOW1_UNET, vae=["diffusers", "AutoencoderKL"]))


DEMO_MARKER = "SHOW1_DEMO_WEIGHTS.txt"
DEMO_FORMAT = "3"  # bumped whenever the demo folders change layout, so old caches are rewritten


def write_demo_models(root: str | Path, seed: int = 0, stages=tuple(StageKind)) -> dict[StageKind, Path]:
    """Write the tiny random stage folders under `root` (named as the hub repositories; each stage's
    writer is its declaration's `demo`) and return them."""
    root = Path(root)
    folders = {}
    for kind in stages:
        folder = root / kind.folder
        torch.manual_seed(seed * 1000 + list(StageKind).index(kind))
        kind.spec.demo_writer(folder)
        (folder / DEMO_MARKER).write_text(f"format {DEMO_FORMAT}\nRandom weights written by show1_core.demo: the "
                                          "outputs are noise.\n")
        folders[kind] = folder
    return folders


def is_demo_folder(folder: str | Path) -> bool:
    return (Path(folder) / DEMO_MARKER).is_file()


def is_current_demo_folder(folder: str | Path) -> bool:
    marker = Path(folder) / DEMO_MARKER
    return marker.is_file() and marker.read_text().startswith(f"format {DEMO_FORMAT}\n")
