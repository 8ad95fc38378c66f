"""Adapter between the reference-parity fixtures and show1_core.

`run_case(case, inputs, fixture_dir)` is the callable of `shared/tools/check_parity.py`. It is built
only from the public functions the nodes and the CLI call, and reads every model, size, seed and
step count from the manifest, so it runs any manifest of the same format.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .cascade import CascadeModels, CascadeSettings, run_cascade
from .captions import preprocess_prompt
from .loading import StageKind, inspect_stage, load_stage, load_vae
from .schedulers import build_scheduler, step, timesteps
from .stages import generate_keyframes, interpolate_keyframes, sr2_from_frames, super_resolve_pixels, \
    upscale_first_frame
from .stages.vae import decode_latents, encode_posterior
from .text import PromptEmbeddings, encode, encode_prompt, load_text_encoder


def model_folder(fixture_dir: Path, key: str) -> Path:
    manifest = json.loads((fixture_dir / "manifest.json").read_text())
    return fixture_dir / manifest["models"][key]["path"]


def folders_by_stage(fixture_dir: Path) -> dict[StageKind, Path]:
    manifest = json.loads((fixture_dir / "manifest.json").read_text())
    found = {}
    for entry in manifest["models"].values():
        folder = fixture_dir / entry["path"]
        found[inspect_stage(folder).kind] = folder
    return found


def seed_of(value) -> int:
    """The seed in "torch.manual_seed(345)" (or a plain integer)."""
    if isinstance(value, int):
        return value
    match = re.search(r"manual_seed\((\d+)\)", str(value))
    if not match:
        raise ValueError(f"cannot read a seed from {value!r}")
    return int(match.group(1))


def number(value, default: float) -> float:
    """Guidance given as a number, or as a note like "default 15.0"."""
    return float(value) if isinstance(value, (int, float)) else default


def embeds_from(inputs: dict) -> PromptEmbeddings:
    return PromptEmbeddings(inputs["prompt_embeds"], inputs["negative_prompt_embeds"], "t5")


def unet_forward(case, inputs, fixture_dir):
    stage = load_stage(model_folder(fixture_dir, case["model"]))
    kwargs = {"class_labels": inputs["class_labels"]} if "class_labels" in inputs else {}
    with torch.inference_mode():
        out = stage.unet(inputs["sample"], inputs["timestep"], encoder_hidden_states=inputs["encoder_hidden_states"],
                         **kwargs)
    return {"sample": getattr(out, "sample", out)}


def vae(case, inputs, fixture_dir):
    model = load_vae(model_folder(fixture_dir, case["model"]))
    with torch.inference_mode():
        mean, std = encode_posterior(model, inputs["image"])
        decoded = decode_latents(model, inputs["latents"])
    return {"posterior_mean": mean, "posterior_std": std, "decoded": decoded}


def text_encode(case, inputs, fixture_dir):
    encoder = load_text_encoder(model_folder(fixture_dir, case["model"]))
    call = case["call"]
    if encoder.kind == "clip":
        out = {}
        for i, text in enumerate(call["texts"]):
            enc = encode(encoder, [text])
            out[f"embeds_{i}"], out[f"input_ids_{i}"] = enc.embeds, enc.input_ids
        return out
    clean = bool(call.get("clean_caption"))
    texts = [preprocess_prompt(call["prompt"], clean), preprocess_prompt(call.get("negative_prompt") or "", clean)]
    enc = encode(encoder, texts)
    return {"prompt_embeds": enc.embeds[:1], "negative_prompt_embeds": enc.embeds[1:],
            "input_ids": enc.input_ids[:1], "attention_mask": enc.attention_mask[:1],
            "negative_input_ids": enc.input_ids[1:], "negative_attention_mask": enc.attention_mask[1:]}


def scheduler_loops(case, inputs, fixture_dir):
    call = case["call"]
    out = {}
    for run in call["runs"]:
        name = run["name"]
        scheduler = build_scheduler({**run["config"], "_class_name": run["scheduler_class"]}, run["config_from"])
        schedule = timesteps(scheduler, call["steps"])
        x, samples = inputs[f"{name}_sample"], []
        for model_output, t in zip(inputs[f"{name}_model_outputs"], schedule):
            x, _ = step(scheduler, model_output, t, x, torch.Generator().manual_seed(call["seed"]))
            samples.append(x)
        out[f"{name}_timesteps"], out[f"{name}_samples"] = torch.tensor(schedule), torch.stack(samples)
    return out


def pipeline(case, inputs, fixture_dir):
    call = case["call"]
    stage = load_stage(model_folder(fixture_dir, case["model"]))
    if stage.kind is StageKind.BASE:
        video = generate_keyframes(stage, embeds_from(inputs), call["num_frames"], call["height"], call["width"],
                                   call["num_inference_steps"], call["guidance_scale"], seed_of(call["generator"]))
        return {"video": video}
    if stage.kind is StageKind.INTERPOLATION:
        recorded = {}
        keyframes = inputs["pixel_values"][:, :, [0, -1]]
        video = interpolate_keyframes(stage, embeds_from(inputs), keyframes, call["num_inference_steps"],
                                      call["guidance_scale"], seed_of(call["generator"]),
                                      record=lambda name, t: recorded.__setitem__(name, t))
        if "init_noise" in inputs and not torch.equal(recorded["interp_init_noise"], inputs["init_noise"]):
            raise AssertionError("the interpolation stage drew a different initial noise than the reference")
        return {"video": video}
    if stage.kind is StageKind.IF_II:
        image = upscale_first_frame(stage, embeds_from(inputs), inputs["image"], call["height"], call["width"],
                                    call["num_inference_steps"], call["guidance_scale"], call["noise_level"],
                                    seed_of(call["generator"]))
        return {"image": image}
    if stage.kind is StageKind.SR1:
        ii, sr = call["if_ii"], call["sr1"]
        if_ii = load_stage(folders_by_stage(fixture_dir)[StageKind.IF_II])
        recorded = {}
        video = super_resolve_pixels(
            stage, embeds_from(inputs), inputs["video"], sr["height"], sr["width"], sr["num_inference_steps"],
            sr["guidance_scale"], sr["noise_level"], seed_of(sr["generator"]), if_ii=if_ii,
            if_ii_steps=ii["num_inference_steps"], if_ii_guidance=ii["guidance_scale"],
            if_ii_noise_level=ii["noise_level"], if_ii_seed=seed_of(ii["generator"]),
            record=lambda name, t: recorded.__setitem__(name, t))
        return {"video": video, "first_frame_cond": recorded["sr1_window_first_frame_conds"][0]}
    vae_model = load_vae(stage.folder)
    clip = encode_prompt(load_text_encoder(stage.folder), call["prompt"], call.get("negative_prompt") or "")
    video = sr2_from_frames(stage, vae_model, clip, inputs["frames_uint8"], call["strength"],
                            call["num_inference_steps"], number(call.get("guidance_scale"), 15.0),
                            seed_of(call["generator"]))
    return {"video": video}


def cascade(case, inputs, fixture_dir):
    call = case["call"]
    folders = folders_by_stage(fixture_dir)
    stage = {kind: load_stage(folder) for kind, folder in folders.items()}
    models = CascadeModels(
        t5=load_text_encoder(folders[StageKind.BASE]), base=stage[StageKind.BASE],
        interpolation=stage[StageKind.INTERPOLATION], sr1=stage[StageKind.SR1], if_ii=stage.get(StageKind.IF_II),
        sr2=stage[StageKind.SR2], vae=load_vae(folders[StageKind.SR2]), clip=load_text_encoder(folders[StageKind.SR2]))
    kf, it, ii, sr1, sr2 = (call[k] for k in ("keyframes", "interpolation", "if_ii_first_frame", "sr1", "sr2"))
    width, height = sr2["resize_to_wh"]
    settings = CascadeSettings(
        num_frames=kf["num_frames"], height=kf["height"], width=kf["width"], keyframe_steps=kf["num_inference_steps"],
        keyframe_guidance=kf["guidance_scale"], interp_steps=it["num_inference_steps"],
        interp_guidance=it["guidance_scale"], if_ii_steps=ii["num_inference_steps"],
        if_ii_guidance=ii["guidance_scale"], if_ii_noise_level=ii["noise_level"],
        sr1_steps=sr1["num_inference_steps"], sr1_guidance=sr1["guidance_scale"], sr1_noise_level=sr1["noise_level"],
        sr1_window=sr1["window_size"], sr1_stride=sr1["stride"], sr1_scale=sr1["scale"], sr2_height=height,
        sr2_width=width, sr2_strength=sr2["strength"], sr2_steps=sr2["num_inference_steps"],
        sr2_guidance=number(sr2.get("guidance_scale"), 15.0))
    out = {}
    run_cascade(models, call["prompt"], call["negative_prompt_for_sr2"], call["seed"], settings,
                record=lambda name, t: out.__setitem__(name, t))
    return out


HANDLERS = {"unet_forward": unet_forward, "vae": vae, "text_encode": text_encode, "scheduler": scheduler_loops,
            "pipeline": pipeline, "cascade": cascade}


def run_case(case: dict, inputs: dict, fixture_dir) -> dict[str, torch.Tensor]:
    handler = HANDLERS.get(case["kind"])
    if handler is None:
        raise NotImplementedError(f"case kind {case['kind']!r}")
    return handler(case, inputs, Path(fixture_dir))
