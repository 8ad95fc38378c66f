"""Adapter between the reference-parity fixtures and show1_core.

`run_case(case, inputs, fixture_dir)` is the callable of `shared/tools/check_parity.py`
(`check_parity.py FIXTURES tests.parity_adapter:run_case`, run from the project root). It is built
only from the public functions the nodes and the CLI call, and reads every model, size, seed and
step count from the manifest, so it runs any manifest of the same format.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from show1_core.captions import preprocess_prompt
from show1_core.cascade import CascadeModels, Prompt, run_cascade
from show1_core.context import RunContext
from show1_core.folders import inspect_stage
from show1_core.loading import load_stage, load_text_encoder, load_vae
from show1_core.precision import Precision
from show1_core.schedulers import build_scheduler, step, timesteps
from show1_core.options import CascadeSettings
from show1_core.settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    LatentSRSettings,
    SR1Settings,
    SR2Settings,
)
from show1_core.stage import StageKind
from show1_core.stages import (
    IFIIUpscale,
    generate_keyframes,
    interpolate_keyframes,
    sr2_from_frames,
    super_resolve_pixels,
    upscale_first_frame,
)
from show1_core.text import PromptEmbeddings, encode, encode_prompt


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
    sample = inputs["sample"]
    image = sample.dim() == 4  # IF-II takes images: one frame
    with torch.inference_mode():
        out = stage.unet(sample.unsqueeze(2) if image else sample, inputs["timestep"],
                         encoder_hidden_states=inputs["encoder_hidden_states"], **kwargs)
    return {"sample": out[:, :, 0] if image else out}


def vae(case, inputs, fixture_dir):
    model = load_vae(model_folder(fixture_dir, case["model"]))
    with torch.inference_mode():
        mean, std = model.posterior(inputs["image"])
        decoded = model.decode(inputs["latents"])
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


def recorder() -> tuple[dict, RunContext]:
    recorded = {}
    return recorded, RunContext(record=lambda name, t: recorded.__setitem__(name, t))


def scale_of(call: dict, low: torch.Tensor) -> int:
    scale = call["height"] // low.shape[-2]
    assert (call["height"], call["width"]) == (low.shape[-2] * scale, low.shape[-1] * scale), call
    return scale


def pipeline(case, inputs, fixture_dir):
    call = case["call"]
    stage = load_stage(model_folder(fixture_dir, case["model"]))
    if stage.kind is StageKind.BASE:
        settings = KeyframeSettings(num_frames=call["num_frames"], height=call["height"], width=call["width"], steps=call["num_inference_steps"],
                                    guidance=call["guidance_scale"], seed=seed_of(call["generator"]))
        return {"video": generate_keyframes(stage, embeds_from(inputs), settings)}
    if stage.kind is StageKind.INTERPOLATION:
        recorded, ctx = recorder()
        keyframes = inputs["pixel_values"][:, :, [0, -1]]
        settings = InterpolationSettings(steps=call["num_inference_steps"], guidance=call["guidance_scale"], seed=seed_of(call["generator"]))
        video = interpolate_keyframes(stage, embeds_from(inputs), keyframes, settings, ctx)
        if "init_noise" in inputs and not torch.equal(recorded["interp_init_noise"], inputs["init_noise"]):
            raise AssertionError("the interpolation stage drew a different initial noise than the reference")
        return {"video": video}
    if stage.kind is StageKind.IF_II:
        scale_of(call, inputs["image"])
        settings = IFIISettings(steps=call["num_inference_steps"], guidance=call["guidance_scale"], noise_level=call["noise_level"],
                                seed=seed_of(call["generator"]))
        return {"image": upscale_first_frame(stage, embeds_from(inputs), inputs["image"], settings)}
    if stage.kind is StageKind.SR1:
        ii, sr = call["if_ii"], call["sr1"]
        if_ii = load_stage(folders_by_stage(fixture_dir)[StageKind.IF_II])
        recorded, ctx = recorder()
        settings = SR1Settings(scale=scale_of(sr, inputs["video"]), steps=sr["num_inference_steps"], guidance=sr["guidance_scale"],
                               noise_level=sr["noise_level"], seed=seed_of(sr["generator"]))
        first = IFIIUpscale(if_ii, IFIISettings(steps=ii["num_inference_steps"], guidance=ii["guidance_scale"], noise_level=ii["noise_level"],
                                                seed=seed_of(ii["generator"])))
        video = super_resolve_pixels(stage, embeds_from(inputs), inputs["video"], settings, ctx, first)
        return {"video": video, "first_frame_cond": recorded["sr1_window_first_frame_conds"][0]}
    vae_model = load_vae(stage.folder)
    clip = encode_prompt(load_text_encoder(stage.folder), call["prompt"], call.get("negative_prompt") or "")
    settings = LatentSRSettings(strength=call["strength"], steps=call["num_inference_steps"], guidance=number(call.get("guidance_scale"), 15.0),
                                seed=seed_of(call["generator"]))
    return {"video": sr2_from_frames(stage, vae_model, clip, inputs["frames_uint8"], settings)}


def cascade_models(fixture_dir: Path, precision: Precision = Precision()) -> CascadeModels:
    """Every model of the fixture set, the UNets' weights stored as `precision` says."""
    folders = folders_by_stage(fixture_dir)
    stage = {kind: load_stage(folder, precision) for kind, folder in folders.items()}
    return CascadeModels({kind.spec.key: loaded for kind, loaded in stage.items()},
                         t5=load_text_encoder(folders[StageKind.BASE]), vae=load_vae(folders[StageKind.SR2]),
                         clip=load_text_encoder(folders[StageKind.SR2]))


def cascade_inputs(call: dict) -> tuple[Prompt, CascadeSettings]:
    """The prompt and settings of a cascade case, as the manifest gives them."""
    kf, it, ii, sr1, sr2 = (call[k] for k in ("keyframes", "interpolation", "if_ii_first_frame", "sr1", "sr2"))
    width, height = sr2["resize_to_wh"]
    settings = CascadeSettings(
        seed=call["seed"],
        keyframes=KeyframeSettings(num_frames=kf["num_frames"], height=kf["height"], width=kf["width"],
                                   steps=kf["num_inference_steps"], guidance=kf["guidance_scale"]),
        interpolation=InterpolationSettings(steps=it["num_inference_steps"], guidance=it["guidance_scale"]),
        if_ii=IFIISettings(steps=ii["num_inference_steps"], guidance=ii["guidance_scale"], noise_level=ii["noise_level"]),
        sr1=SR1Settings(scale=sr1["scale"], steps=sr1["num_inference_steps"], guidance=sr1["guidance_scale"],
                        noise_level=sr1["noise_level"], window=sr1["window_size"], stride=sr1["stride"]),
        sr2=SR2Settings(strength=sr2["strength"], steps=sr2["num_inference_steps"],
                        guidance=number(sr2.get("guidance_scale"), 15.0), height=height, width=width))
    return Prompt(call["prompt"], call["negative_prompt_for_sr2"]), settings


def cascade(case, inputs, fixture_dir):
    out, ctx = recorder()
    run_cascade(cascade_models(fixture_dir), *cascade_inputs(case["call"]), ctx)
    return out


HANDLERS = {"unet_forward": unet_forward, "vae": vae, "text_encode": text_encode, "scheduler": scheduler_loops,
            "pipeline": pipeline, "cascade": cascade}


def run_case(case: dict, inputs: dict, fixture_dir) -> dict[str, torch.Tensor]:
    handler = HANDLERS.get(case["kind"])
    if handler is None:
        raise NotImplementedError(f"case kind {case['kind']!r}")
    return handler(case, inputs, Path(fixture_dir))
