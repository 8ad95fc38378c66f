"""Tiny random-weight Show-1 stage folders in the real hub layout.

`write_demo_models(root)` writes all five stages (show-1-base with its T5 and tokenizer,
show-1-interpolation, show-1-sr1, IF-II-L-v1.0, show-1-sr2 with its CLIP, tokenizer and VAE),
seeded, small enough for CPU tests, and loaded by exactly the code that loads the real checkpoints.
Their output is noise: the weights are random. The demo CLI and the tests use them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from .loading import STAGE_FOLDERS, StageKind
from .models.pixel_unet import PixelUNet, PixelUNetConfig

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

# The schedulers of the published checkpoints (DeepFloyd IF for the pixel stages, zeroscope for sr2).
IF_SCHEDULER = {
    "_class_name": "DDPMScheduler", "_diffusers_version": DIFFUSERS_VERSION, "beta_end": 0.02,
    "beta_schedule": "squaredcos_cap_v2", "beta_start": 0.0001, "clip_sample": True, "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.95, "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "sample_max_value": 1.5, "steps_offset": 0, "thresholding": True, "timestep_spacing": "leading",
    "trained_betas": None, "variance_type": "learned_range",
}
IF_SR_SCHEDULER = {**IF_SCHEDULER, "sample_max_value": 1.0}
NOISING_SCHEDULER = {**IF_SCHEDULER, "dynamic_thresholding_ratio": 0.995, "sample_max_value": 1.0,
                     "thresholding": False, "variance_type": "fixed_small"}
SR2_SCHEDULER = {
    "_class_name": "DDIMScheduler", "_diffusers_version": DIFFUSERS_VERSION, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000, "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False, "sample_max_value": 1.0, "set_alpha_to_one": False, "steps_offset": 1,
    "thresholding": False, "timestep_spacing": "leading", "trained_betas": None,
}


def pixel_unet_config(in_channels: int, noise_level: bool, transformer_in: bool) -> dict:
    """A narrow member of the Show-1 pixel family with every option the real configs use."""
    return {
        "_class_name": "UNet3DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "gelu",
        "addition_embed_type": "text", "addition_embed_type_num_heads": 4, "attention_head_dim": 8,
        "block_out_channels": [32, 32], "class_embed_type": "timestep" if noise_level else None,
        "cross_attention_dim": 64, "cross_attention_norm": "group_norm",
        "down_block_types": ["ResnetDownsampleBlock3D", "SimpleCrossAttnDownBlock3D"], "encoder_hid_dim": T5_WIDTH,
        "encoder_hid_dim_type": "text_proj", "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": in_channels,
        "layers_per_block": 1, "mid_block_scale_factor": 1.4142271248762552 if noise_level else 1.0,
        "mid_block_type": "UNetMidBlock3DSimpleCrossAttn", "norm_eps": 1e-05, "norm_num_groups": 32,
        "only_cross_attention": False, "out_channels": 6, "resnet_out_scale_factor": 1.4142271248762552,
        "resnet_skip_time_act": True, "resnet_time_scale_shift": "scale_shift", "sample_size": 64,
        "time_embedding_act_fn": "gelu", "time_embedding_dim": 32 if noise_level else None,
        "transfromer_in_opt": transformer_in,
        "up_block_types": ["SimpleCrossAttnUpBlock3D", "ResnetUpsampleBlock3D"],
    }


IF_II_CONFIG = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "gelu",
    "addition_embed_type": "text", "addition_embed_type_num_heads": 4, "attention_head_dim": 8,
    "block_out_channels": [32, 32], "class_embed_type": "timestep", "cross_attention_dim": 64,
    "cross_attention_norm": "group_norm", "down_block_types": ["ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"],
    "encoder_hid_dim": T5_WIDTH, "encoder_hid_dim_type": "text_proj", "in_channels": 6, "layers_per_block": 1,
    "mid_block_scale_factor": 1.4142271248762552, "mid_block_type": "UNetMidBlock2DSimpleCrossAttn",
    "out_channels": 6, "resnet_out_scale_factor": 1.4142271248762552, "resnet_skip_time_act": True,
    "resnet_time_scale_shift": "scale_shift", "sample_size": 256, "time_embedding_act_fn": "gelu",
    "time_embedding_dim": 32, "up_block_types": ["SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"],
}
SR2_UNET_CONFIG = {
    "_class_name": "UNet3DConditionModel", "_diffusers_version": DIFFUSERS_VERSION, "act_fn": "silu",
    "attention_head_dim": 4, "block_out_channels": [32, 32], "cross_attention_dim": CLIP_WIDTH,
    "down_block_types": ["CrossAttnDownBlock3D", "DownBlock3D"], "in_channels": 4, "layers_per_block": 1,
    "norm_num_groups": 32, "out_channels": 4, "sample_size": 32, "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D"],
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


def _save_component(model: torch.nn.Module, config: dict, directory: Path, variant: str | None) -> None:
    """config.json plus fp16 safetensors weights, named as diffusers' save_pretrained names them."""
    _write_json(directory / "config.json", config)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    name = f"diffusion_pytorch_model.{variant}.safetensors" if variant else "diffusion_pytorch_model.safetensors"
    save_file(state, str(directory / name), metadata={"format": "pt"})


def _quiet_output(model: torch.nn.Module, conv_out: str = "conv_out") -> torch.nn.Module:
    """Scale the final convolution down so random denoisers keep the sampling loops well conditioned."""
    conv = dict(model.named_modules())[conv_out]
    with torch.no_grad():
        conv.weight.mul_(0.05)
        conv.bias.mul_(0.05)
    return model


def _random_pixel_unet(config: dict) -> PixelUNet:
    model = PixelUNet(PixelUNetConfig.from_dict(config))
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "positional_embedding"):
                module.positional_embedding.normal_(0, module.positional_embedding.shape[1] ** -0.5)
    return _quiet_output(model)


def _model_index(cls: str, **components) -> dict:
    return {"_class_name": cls, "_diffusers_version": DIFFUSERS_VERSION, **components}


def _t5_tokenizer(directory: Path) -> None:
    import sentencepiece as spm
    from transformers import T5Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 10), model_writer=model, vocab_size=200, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, character_coverage=1.0,
        normalization_rule_name="nfkc", shuffle_input_sentence=False, minloglevel=2)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spiece.model").write_bytes(model.getvalue())
    T5Tokenizer(str(directory / "spiece.model"), extra_ids=100, legacy=True).save_pretrained(str(directory))


def _clip_tokenizer(directory: Path) -> None:
    """A byte-level BPE vocabulary with no merges: every byte is a token, as CLIP's base alphabet."""
    from transformers import CLIPTokenizer
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"),
                  pad_token="<|endoftext|>").save_pretrained(str(directory))


def write_base(folder: Path) -> None:
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    _t5_tokenizer(folder / "tokenizer")
    vocab = len(T5Tokenizer.from_pretrained(str(folder / "tokenizer"), legacy=True))
    config = T5Config(vocab_size=vocab, d_model=T5_WIDTH, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                      feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, is_encoder_decoder=False,
                      use_cache=False, dense_act_fn="gelu_new", tie_word_embeddings=False)
    T5EncoderModel(config).to(torch.float16).save_pretrained(str(folder / "text_encoder"), variant="fp16",
                                                             safe_serialization=True)
    _save_component(_random_pixel_unet(pixel_unet_config(3, False, True)),
                    pixel_unet_config(3, False, True), folder / "unet", "fp16")
    _write_json(folder / "scheduler" / "scheduler_config.json", IF_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "TextToVideoIFPipeline", feature_extractor=[None, None], scheduler=["diffusers", "DDPMScheduler"],
        text_encoder=["transformers", "T5EncoderModel"], tokenizer=["transformers", "T5Tokenizer"],
        unet=["showone.models.unet_3d_condition", "UNet3DConditionModel"]))


def write_interpolation(folder: Path) -> None:
    config = pixel_unet_config(7, False, False)
    _save_component(_random_pixel_unet(config), config, folder / "unet", "fp16")
    _write_json(folder / "scheduler" / "scheduler_config.json", IF_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "TextToVideoIFInterpPipeline", feature_extractor=[None, None], scheduler=["diffusers", "DDPMScheduler"],
        text_encoder=[None, None], tokenizer=[None, None],
        unet=["showone.models.unet_3d_condition", "UNet3DConditionModel"]))


def write_sr1(folder: Path) -> None:
    config = pixel_unet_config(6, True, False)
    _save_component(_random_pixel_unet(config), config, folder / "unet", None)
    _write_json(folder / "scheduler" / "scheduler_config.json", IF_SR_SCHEDULER)
    _write_json(folder / "image_noising_scheduler" / "scheduler_config.json", NOISING_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "TextToVideoIFSuperResolutionPipeline_Cond", feature_extractor=[None, None],
        image_noising_scheduler=["diffusers", "DDPMScheduler"], scheduler=["diffusers", "DDPMScheduler"],
        text_encoder=[None, None], tokenizer=[None, None],
        unet=["showone.models.unet_3d_condition", "UNet3DConditionModel"]))


def write_if_ii(folder: Path) -> None:
    from diffusers import UNet2DConditionModel

    _save_component(_quiet_output(UNet2DConditionModel.from_config(IF_II_CONFIG)), IF_II_CONFIG, folder / "unet",
                    "fp16")
    _write_json(folder / "scheduler" / "scheduler_config.json", IF_SR_SCHEDULER)
    _write_json(folder / "image_noising_scheduler" / "scheduler_config.json", NOISING_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "IFSuperResolutionPipeline", feature_extractor=[None, None],
        image_noising_scheduler=["diffusers", "DDPMScheduler"], requires_safety_checker=False,
        safety_checker=[None, None], scheduler=["diffusers", "DDPMScheduler"], text_encoder=[None, None],
        tokenizer=[None, None], unet=["diffusers", "UNet2DConditionModel"], watermarker=[None, None]))


def write_sr2(folder: Path) -> None:
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    _clip_tokenizer(folder / "tokenizer")
    vocab = len(CLIPTokenizer.from_pretrained(str(folder / "tokenizer")))
    config = CLIPTextConfig(vocab_size=vocab, hidden_size=CLIP_WIDTH, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
                            projection_dim=CLIP_WIDTH, bos_token_id=vocab - 2, eos_token_id=vocab - 1,
                            pad_token_id=vocab - 1)
    CLIPTextModel(config).to(torch.float16).save_pretrained(str(folder / "text_encoder"), safe_serialization=True)
    _save_component(_quiet_output(UNet3DConditionModel.from_config(SR2_UNET_CONFIG)), SR2_UNET_CONFIG,
                    folder / "unet", None)
    _save_component(AutoencoderKL.from_config(VAE_CONFIG), VAE_CONFIG, folder / "vae", None)
    _write_json(folder / "scheduler" / "scheduler_config.json", SR2_SCHEDULER)
    _write_json(folder / "model_index.json", _model_index(
        "VideoToVideoSDPipeline", scheduler=["diffusers", "DDIMScheduler"],
        text_encoder=["transformers", "CLIPTextModel"], tokenizer=["transformers", "CLIPTokenizer"],
        unet=["diffusers", "UNet3DConditionModel"], vae=["diffusers", "AutoencoderKL"]))


WRITERS = {StageKind.BASE: write_base, StageKind.INTERPOLATION: write_interpolation, StageKind.SR1: write_sr1,
           StageKind.IF_II: write_if_ii, StageKind.SR2: write_sr2}
DEMO_MARKER = "SHOW1_DEMO_WEIGHTS.txt"


def write_demo_models(root: str | Path, seed: int = 0, stages=tuple(WRITERS)) -> dict[StageKind, Path]:
    """Write the tiny random stage folders under `root` (named as the hub repositories) and return them."""
    root = Path(root)
    folders = {}
    for i, kind in enumerate(stages):
        folder = root / STAGE_FOLDERS[kind]
        torch.manual_seed(seed * 1000 + i)
        WRITERS[kind](folder)
        (folder / DEMO_MARKER).write_text("Random weights written by show1_core.demo: the outputs are noise.\n")
        folders[kind] = folder
    return folders


def is_demo_folder(folder: str | Path) -> bool:
    return (Path(folder) / DEMO_MARKER).is_file()
