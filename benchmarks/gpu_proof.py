"""One command that proves the pack on a GPU: parity, real-size memory and speed, the cascade under
memory caps, the projected time of a published video, the memory estimates, and ComfyUI.

    python benchmarks/gpu_proof.py [--out PATH] [--budget SECONDS] [--shared DIR]   # parts a-e
    python benchmarks/gpu_proof.py --comfyui [--out PATH] [--comfyui-python PY]      # part f
    python benchmarks/gpu_proof.py --dry-run [--comfyui]                             # the same code on the CPU

a  the public parity cases on the device in fp32 (TF32 off), each within the manifest's atol times
   GPU_TOLERANCE_FACTOR; the demo cascade in fp16 and bf16: finite, and every stage's output within
   1.25 x the largest value of the fp32 run's (sr2's VAE decode is not clamped to [-1, 1]).
b  every model built at real size from the hub configs on the meta device and given random weights
   where it runs (no CPU initialisation): weight bytes, peak allocated memory of one call at the
   published size (the guidance pair), seconds per call in fp16 and bf16 (median of 3 after a warm-up),
   FLOPs of one UNet call.
c  the published cascade at real size, 2 steps a stage, bf16: offload keep and stage, then stage under
   memory caps (torch.cuda.set_per_process_memory_fraction); each run first passes the CLI's refusal
   (`require_cascade_fits`, given the cap as the free memory); refused runs keep the refusal's figure,
   compared with the peak measured without a cap.
d  the projected time of a full published video (seconds per call x the published calls of each
   stage) against the arithmetic limit (UNET_WORK_FLOP at the card's measured bf16 matrix rate).
e  the estimates of show1_core.budget against every measured peak.
f  ComfyUI 0.33.0 (a separate command: its wheels and the parity fixtures do not travel together)
   on the device with dynamic VRAM, running example_workflows/show1_published_cascade.json on the demo
   weights; the Show-1 models must sit under ModelPatcherDynamic.

Every part runs in its own try: a failure is recorded, not fatal; a time guard skips what would
not fit in --budget seconds. Rows of the table are printed as they come; the JSON and a Markdown
table are written to --out (default $OUT/gpu_proof.json and .md, else outputs/). --dry-run runs the
same code on the CPU with scaled-down hub configs, small sizes, fp32, one step a stage and a subset
of the parity cases, in under a minute (tests/test_gpu_proof.py).
../shared does not travel to a device machine: benchmarks/gpu_wheels.sh copies what the command
reads (parity fixtures, hub configs, the checker, the ComfyUI snapshot) beside the wheels, and
--shared points at that copy (found by default).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIB = 2 ** 30
GPU_TOLERANCE_FACTOR = 10  # GPU kernels sum in other orders than the CPU reference: atol x 10
UNET_WORK_FLOP = 19.6e15  # UNet arithmetic of one published video (sr1 about two thirds of it)
CAPS_GB = (8, 12, 16, 24)
PART_SECONDS = {"a": 90, "b": 120, "c": 150, "d": 15, "e": 1, "f": 120}  # what each part needs on a GPU
DRY_PARITY = ("unet_if_ii_forward", "vae_encode_decode", "t5_encode_prompt_1_clean", "clip_encode_prompt",
              "scheduler_steps")
PROMPT = "a burning lamborghini driving on rainbow"
# The text encoders' configs are not in the hub snapshot: the public ones the checkpoints were trained
# with (google/t5-v1_1-xxl of DeepFloyd IF; the OpenCLIP ViT-H text tower, 1024 wide, of sr2).
T5_XXL = {"architectures": ["T5EncoderModel"], "model_type": "t5", "vocab_size": 32128, "d_model": 4096, "d_kv": 64,
          "d_ff": 10240, "num_layers": 24, "num_heads": 64, "feed_forward_proj": "gated-gelu",
          "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128, "layer_norm_epsilon": 1e-6}
CLIP_H = {"architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": 49408,
          "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 23, "num_attention_heads": 16,
          "max_position_embeddings": 77, "hidden_act": "gelu", "layer_norm_eps": 1e-5}
STEPS_2 = {"keyframe_steps": 2, "interp_steps": 2, "if_ii_steps": 2, "sr1_steps": 2, "sr2_steps": 2}
STEPS_1 = {"keyframe_steps": 1, "interp_steps": 1, "if_ii_steps": 1, "sr1_steps": 1, "sr2_steps": 2}
DRY_SIZES = {"frames": 2, "height": 8, "width": 8, "sr2_height": 64, "sr2_width": 64}
DRY_DEMO = {**STEPS_1, "frames": 2, "height": 8, "width": 8, "sr2_height": 64, "sr2_width": 64}


# ---------------------------------------------------------------------------------------------
# Every call into show1_core and the parity adapter is in this section, so a rename in the library
# is a one-line fix here.
# ---------------------------------------------------------------------------------------------
from benchmarks.real_size import PeakMemory  # noqa: E402
from show1_core import budget, headless, loading, options  # noqa: E402
from show1_core.cascade import CascadeModels, Prompt, run_cascade  # noqa: E402
from show1_core.context import RunContext  # noqa: E402
from show1_core.demo import write_demo_models  # noqa: E402
from show1_core.errors import DoesNotFit  # noqa: E402
from show1_core.folders import read_json  # noqa: E402
from show1_core.memory import DevicePlacement, default_placement, empty_cache  # noqa: E402
from show1_core.models.clip import CLIPTextConfig, CLIPTextEncoder  # noqa: E402
from show1_core.models.ops import operations_for  # noqa: E402
from show1_core.models.t5 import T5Config, T5Encoder  # noqa: E402
from show1_core.models.vae import AutoencoderKL, VAEConfig  # noqa: E402
from show1_core.precision import COMPUTE_DTYPES, Precision  # noqa: E402
from show1_core.rules import INTERPOLATION_WINDOW, PIXEL_NEW_PER_GAP, interpolated_frames  # noqa: E402
from show1_core.sampling import windows  # noqa: E402
from show1_core.schedulers import strength_timesteps  # noqa: E402
from show1_core.stage import Stage, StageKind  # noqa: E402
from show1_core.text import TextEncoder, encode_prompt  # noqa: E402

UNET_STAGES = {"keyframes": StageKind.BASE, "interpolation": StageKind.INTERPOLATION, "if_ii": StageKind.IF_II,
               "sr1": StageKind.SR1, "sr2": StageKind.SR2}


def lib_settings(dry: bool, steps: dict | None = None):
    """The published settings (small sizes in a dry run), with `steps` overriding step counts."""
    return options.apply(options.base_settings(False), {**(DRY_SIZES if dry else {}), **(steps or {})})


def lib_demo(root: Path) -> Path:
    write_demo_models(root)
    return root


def lib_demo_cascade(demo_root: Path, device: torch.device, compute: torch.dtype, dry: bool) -> dict:
    """The demo cascade as the CLI runs it (demo sizes and steps; fewer in a dry run): every stage's
    output video by its recorded name."""
    folders = headless.find_folders(demo_root, False, "sr2")
    settings = options.base_settings(True)
    if dry:
        settings = options.apply(settings, DRY_DEMO)
    models = headless.load_cascade(folders, settings, Precision(compute), device)
    videos = {}
    ctx = RunContext(default_placement(device, "keep"), on_warning=lambda message: None,
                     record=lambda name, t: videos.__setitem__(name, t.detach().float().cpu())
                     if name.endswith("_video") else None)
    run_cascade(models, Prompt(PROMPT), settings, ctx)
    return videos


@contextlib.contextmanager
def lib_parity_on(device: torch.device):
    """tests.parity_adapter with every model loaded on `device` (its loaders take a device; the
    adapter calls them with the default, the CPU). Yields its run_case."""
    from tests import parity_adapter

    names = ("load_stage", "load_vae", "load_text_encoder")
    saved = {name: getattr(parity_adapter, name) for name in names}

    def on_device(load):
        return lambda *args, **kwargs: load(*args, **{**kwargs, "device": device})

    try:
        for name in names:
            setattr(parity_adapter, name, on_device(getattr(loading, name)))
        yield parity_adapter.run_case
    finally:
        for name, load in saved.items():
            setattr(parity_adapter, name, load)


def lib_meta_unet(folder: Path) -> torch.nn.Module:
    return loading.build_unet(read_json(folder / "unet" / "config.json"))


def lib_loaded_unet(unet: torch.nn.Module) -> torch.nn.Module:
    """What `loading.load_stage` does to a UNet once its weights are in: the layout it computes in."""
    return unet.use_channels_last()


def lib_meta_text(folder: Path, casts: bool) -> torch.nn.Module:
    raw = read_json(folder / "text_encoder" / "config.json")
    ops = operations_for(casts)
    if "d_model" in raw:
        return loading.build_on_meta(lambda: T5Encoder(T5Config.from_dict(raw), ops))
    return loading.build_on_meta(lambda: CLIPTextEncoder(CLIPTextConfig.from_dict(raw), ops))


def lib_meta_vae(folder: Path, casts: bool) -> torch.nn.Module:
    config = VAEConfig.from_dict(read_json(folder / "vae" / "config.json"))
    return loading.build_on_meta(lambda: AutoencoderKL(config, operations_for(casts)))


def lib_store(model: torch.nn.Module, precision: Precision) -> None:
    """Give the meta model the dtypes its weights are stored in, and its compute dtype."""
    loading.as_stored(model, precision)
    model.compute_dtype = precision.compute


def lib_stage(kind: StageKind, folder: Path, unet: torch.nn.Module | None) -> Stage:
    noising = folder / "image_noising_scheduler" / "scheduler_config.json"
    return Stage(kind, folder, unet, read_json(folder / "scheduler" / "scheduler_config.json"),
                 read_json(noising) if noising.is_file() else None)


def lib_tokenizers(demo_root: Path) -> dict:
    """The demo folders' tokenizers (their ids fall inside the real vocabularies)."""
    return {kind: loading.load_text_encoder(demo_root / kind.folder).tokenizer for kind in (StageKind.BASE,
                                                                                             StageKind.SR2)}


def lib_text_encoder(kind: str, tokenizer, model) -> TextEncoder:
    return TextEncoder(kind, tokenizer, model)


def lib_encode(encoder: TextEncoder, negative: str = ""):
    return encode_prompt(encoder, PROMPT, negative, False, RunContext(on_warning=lambda message: None))


def lib_precisions(compute: torch.dtype) -> dict[str, Precision]:
    """The precisions `headless.load_cascade` gives each model with the default weight dtypes: UNets
    in `compute`, the text encoders computing in fp32 on the fp16 their hub files hold, the VAE fp32."""
    return {"unet": Precision(compute), "text": Precision(torch.float32, torch.float16),
            "vae": Precision(torch.float32)}


def lib_folders(tree: Path) -> headless.Folders:
    return headless.Folders({kind: tree / kind.folder for kind in StageKind}, False)


PLAN = headless.cascade_plan
_PLANS: dict[str, object] = {}


def cached_plan(*args, **kwargs):
    """headless.cascade_plan, memoised on everything but the folders (one tree per proof): the
    refusal builds every UNet on the meta device for each weight dtype, seconds per plan, and its
    answer depends only on these arguments."""
    rest = list(args[1:])
    while rest and rest[-1] is None:  # a default passed or left out is the same plan
        rest.pop()
    key = repr((rest, sorted((k, v) for k, v in kwargs.items() if v is not None)))
    if key not in _PLANS:
        _PLANS[key] = PLAN(*args, **kwargs)
    return _PLANS[key]


def lib_plan_figure(tree: Path, settings, compute: torch.dtype, offload: str, device: torch.device) -> int:
    """The cascade plan's peak: the figure a refusal gives."""
    return cached_plan(lib_folders(tree), settings, Precision(compute), device, device).peak(offload)


def lib_refusal(tree: Path, settings, compute: torch.dtype, offload: str, device: torch.device,
                free: int) -> str | None:
    """The CLI's refusal before any weight moves, with `free` bytes free (CUDA's free-memory query
    does not see a per-process cap, so the cap is handed in); its message, or None when it fits."""
    from unittest import mock

    with mock.patch.object(headless, "free_bytes", lambda device: free), \
            mock.patch.object(headless, "cascade_plan", cached_plan):
        try:
            headless.require_cascade_fits(lib_folders(tree), settings, Precision(compute), offload, device, device)
        except DoesNotFit as e:
            return str(e)
    return None


def lib_cascade(models: dict, settings, device: torch.device, offload: str, t5_embeds) -> torch.Tensor:
    cascade = CascadeModels({key: models[key] for key in UNET_STAGES}, vae=models["vae"], clip=models["clip"])
    ctx = RunContext(DevicePlacement(device, torch.device("cpu"), offload), on_warning=lambda message: None)
    return run_cascade(cascade, Prompt(PROMPT), settings, ctx, t5_embeds)


def lib_published_calls(stages: dict[str, Stage], settings) -> dict[str, int]:
    """UNet calls of a published video per stage: the schedule of each stage's scheduler, times the
    sr1 windows (run one after the other); the interpolation windows and the guidance pair go in one
    call on a GPU; sr2 runs the last int(steps x strength) steps."""
    frames = interpolated_frames(settings.keyframes.num_frames, PIXEL_NEW_PER_GAP)
    return {"keyframes": stages["keyframes"].schedule_length(settings.keyframes.steps),
            "interpolation": stages["interpolation"].schedule_length(settings.interpolation.steps),
            "if_ii": stages["if_ii"].schedule_length(settings.if_ii.steps),
            "sr1": stages["sr1"].schedule_length(settings.sr1.steps)
            * len(windows(frames, settings.sr1.window, settings.sr1.stride)),
            "sr2": len(strength_timesteps(stages["sr2"].scheduler(), settings.sr2.steps, settings.sr2.strength))}


def lib_estimate(name: str, model, shape: dict) -> int:
    if name in UNET_STAGES:
        return budget.unet_call_bytes(model, shape["frames"], shape["height"], shape["width"], shape["videos"])
    if name.startswith("vae"):
        return budget.vae_call_bytes(model, shape["frames"], shape["height"], shape["width"], name[4:])
    return budget.text_call_bytes(model)


def lib_weight_bytes(model) -> int:
    return budget.weight_bytes(model)


def lib_empty_cache(device: torch.device) -> None:
    empty_cache(device)
# ---------------------------------------------------------------------------------------------


class Report:
    """The table's rows as they come, the parts' results, and the files they end in."""

    def __init__(self, out: Path, meta: dict):
        self.out, self.rows, self.parts, self.meta = out, [], {}, meta
        print("| part | item | measure | value | note |\n|---|---|---|---|---|", flush=True)

    def row(self, part: str, item: str, measure: str, value, note: str = "") -> None:
        self.rows.append({"part": part, "item": item, "measure": measure, "value": value, "note": note})
        print(f"| {part} | {item} | {measure} | {show(value)} | {note} |", flush=True)

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        data = {**self.meta, "parts": self.parts, "rows": self.rows}
        self.out.write_text(json.dumps(data, indent=1, default=str) + "\n")
        lines = [f"# GPU proof: {self.meta['device_name']}", "",
                 f"torch {self.meta['torch']}, {'dry run on the CPU' if self.meta['dry_run'] else 'device run'}, "
                 f"{self.meta.get('elapsed_s', 0):.0f} s", "",
                 "| part | status | failures | skipped |", "|---|---|---|---|"]
        lines += [f"| {p} | {r['status']} | {'; '.join(r['failures'])[:300]} | {'; '.join(r['skipped'])[:200]} |"
                  for p, r in self.parts.items()]
        lines += ["", "| part | item | measure | value | note |", "|---|---|---|---|---|"]
        lines += [f"| {r['part']} | {r['item']} | {r['measure']} | {show(r['value'])} | {r['note']} |"
                  for r in self.rows]
        self.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Part:
    """One part's record: failures and skips are noted, never raised."""

    def __init__(self, report: Report, name: str):
        self.report, self.name = report, name
        self.record = report.parts[name] = {"status": "running", "failures": [], "skipped": [], "data": {}}
        self.started = time.monotonic()

    @property
    def data(self) -> dict:
        return self.record["data"]

    def fail(self, what: str, error: BaseException | str) -> None:
        if isinstance(error, str):
            text = error
        else:
            text = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"
        self.record["failures"].append(f"{what}: {text}")
        self.report.row(self.name, what, "FAILED", text[:200])
        if not isinstance(error, str):
            traceback.print_exception(error, file=sys.stderr)

    def skip(self, what: str, why: str) -> None:
        self.record["skipped"].append(f"{what}: {why}")
        self.report.row(self.name, what, "skipped", why)

    def row(self, item: str, measure: str, value, note: str = "") -> None:
        self.report.row(self.name, item, measure, value, note)

    def finish(self, status: str | None = None) -> None:
        r = self.record
        r["seconds"] = round(time.monotonic() - self.started, 1)
        r["status"] = status or ("failed" if r["failures"] else "partial" if r["skipped"] else "ok")


class Guard:
    """The global time budget: what would not fit is skipped."""

    def __init__(self, seconds: float):
        self.seconds, self.start = seconds, time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def fits(self, need: float) -> bool:
        return self.elapsed + need <= self.seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Peak(PeakMemory):
    """`real_size.PeakMemory`, with the freed CPU heap handed back first, so the resident set
    follows what lives."""

    def __enter__(self):
        sync(self.device)
        if self.device.type != "cuda":
            lib_empty_cache(self.device)
        return super().__enter__()


def materialise(model: torch.nn.Module, precision: Precision, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """Random weights for a meta model, made where it runs, in its storage dtypes: each matrix
    N(0, 1/fan_in), norm scales 1, biases 0, the UNet's output convolution quietened as the demo
    weights are (so random denoisers keep the samplers finite)."""
    lib_store(model, precision)
    model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                scale = 1 / math.sqrt(math.prod(p.shape[1:]))
                if name.startswith("conv_out."):
                    scale *= 0.05
                p.copy_(torch.randn(p.shape, generator=g, device=device, dtype=torch.float32 if device.type == "cpu"
                                    else p.dtype).mul_(scale))
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
    return model.eval().requires_grad_(False)


# ------------------------------------------------------------------ the config tree (parts b, c)
def shrink(config: dict, kind: str) -> dict:
    """A scaled-down copy of a hub config for the dry run: the same blocks, narrow and shallow."""
    c = dict(config)
    if kind == "unet":
        c["block_out_channels"] = [max(32, ch // 320 * 32) for ch in c["block_out_channels"]]
        n = len(c["block_out_channels"])
        c["layers_per_block"] = [1] * n if isinstance(c["layers_per_block"], list) else 1
        c["attention_head_dim"] = [8] * n if isinstance(c.get("attention_head_dim"), list) else 8
        c["cross_attention_dim"] = 64
        c["addition_embed_type_num_heads"] = 4
        for key, value in (("encoder_hid_dim", 64), ("time_embedding_dim", 128)):
            if c.get(key) is not None:
                c[key] = value
    elif kind == "vae":
        c.update(block_out_channels=[32] * len(c["block_out_channels"]), layers_per_block=1)
    elif kind == "t5":
        c.update(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
    elif kind == "clip":
        c.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    return c


def config_tree(hub: Path, demo_root: Path, dest: Path, dry: bool) -> Path:
    """Stage folders of configs alone: the hub snapshot's configs, the public text encoder configs,
    and, for what the snapshot lacks (IF-II's model_index, sr1's and IF-II's schedulers, the
    interpolation scheduler, the tokenizers), the demo folders' files, which carry the published
    schedulers. Scaled down for a dry run."""
    if dest.exists():
        shutil.rmtree(dest)
    for kind in StageKind:
        src, out = hub / kind.folder, dest / kind.folder
        demo = demo_root / kind.folder
        for path in demo.rglob("*"):  # the demo's configs and tokenizers, no weights
            if path.is_file() and path.suffix in (".json", ".model", ".txt") and ".index." not in path.name \
                    and not path.name.startswith("SHOW1_DEMO"):
                target = out / path.relative_to(demo)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        if kind is StageKind.INTERPOLATION and (hub / "show-1-base/scheduler/scheduler_config.json").is_file():
            shutil.copyfile(hub / "show-1-base/scheduler/scheduler_config.json",
                            out / "scheduler/scheduler_config.json")
        for path in src.rglob("*.json"):  # the hub's own configs win
            if "first_upload" not in path.name:
                target = out / path.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        text = {StageKind.BASE: ("t5", T5_XXL), StageKind.SR2: ("clip", CLIP_H)}.get(kind)
        if text:
            (out / "text_encoder" / "config.json").write_text(json.dumps(text[1], indent=1))
    if dry:
        for path in dest.rglob("config.json"):
            kind = {"unet": "unet", "vae": "vae"}.get(path.parent.name)
            if path.parent.name == "text_encoder":
                kind = "t5" if path.parent.parent.name == StageKind.BASE.folder else "clip"
            if kind:
                path.write_text(json.dumps(shrink(json.loads(path.read_text()), kind), indent=1))
    return dest


def call_shapes(settings) -> dict[str, dict]:
    """One call of each model at the settings' sizes, as the stages make it: the guidance pair in
    one batch, all interpolation windows in one call, sr1 one window, sr2 the whole video, the VAE
    one chunk of 8 frames, the text encoders a prompt and its negative."""
    kf, s1, s2 = settings.keyframes, settings.sr1, settings.sr2
    frames = interpolated_frames(kf.num_frames, PIXEL_NEW_PER_GAP)
    hi = (kf.height * s1.scale, kf.width * s1.scale)
    return {
        "keyframes": dict(videos=2, frames=kf.num_frames, height=kf.height, width=kf.width),
        "interpolation": dict(videos=2 * (kf.num_frames - 1), frames=INTERPOLATION_WINDOW, height=kf.height,
                              width=kf.width),
        "if_ii": dict(videos=2, frames=1, height=hi[0], width=hi[1], label=150),
        "sr1": dict(videos=2, frames=min(s1.window, frames), height=hi[0], width=hi[1], label=250),
        "sr2": dict(videos=2, frames=frames, height=s2.height // 8, width=s2.width // 8),
        "vae_encode": dict(frames=8, height=s2.height, width=s2.width),
        "vae_decode": dict(frames=8, height=s2.height, width=s2.width),
        "t5": dict(tokens=77), "clip": dict(tokens=77),
    }


def build(name: str, tree: Path, precision: Precision, device: torch.device) -> torch.nn.Module:
    if name in UNET_STAGES:
        return lib_loaded_unet(materialise(lib_meta_unet(tree / UNET_STAGES[name].folder), precision, device))
    if name.startswith("vae"):
        model = lib_meta_vae(tree / StageKind.SR2.folder, precision.casts)
    else:
        model = lib_meta_text(tree / (StageKind.BASE if name == "t5" else StageKind.SR2).folder, precision.casts)
    return materialise(model, precision, device)


def one_call(name: str, model, shape: dict, device: torch.device):
    """The inputs of one call, and the call."""
    g = torch.Generator(device="cpu").manual_seed(1)
    if name in UNET_STAGES:
        dtype = model.compute_dtype
        c = model.config
        x = torch.randn(shape["videos"], c.in_channels, shape["frames"], shape["height"], shape["width"],
                        generator=g).to(device, dtype)
        text = (torch.randn(shape["videos"], 77, model.text_dim, generator=g) * 0.1).to(device, dtype)
        t = torch.tensor([500], device=device)
        labels = torch.tensor([shape["label"]], device=device) if "label" in shape else None
        return lambda: model(x, t, encoder_hidden_states=text, class_labels=labels)
    if name == "vae_encode":
        images = (torch.rand(shape["frames"], 3, shape["height"], shape["width"], generator=g) * 2 - 1)
        images = images.to(device, model.compute_dtype)
        return lambda: model.posterior(images)
    if name == "vae_decode":
        latents = torch.randn(shape["frames"], 4, shape["height"] // 8, shape["width"] // 8, generator=g)
        latents = latents.to(device, model.compute_dtype)
        return lambda: model.decode(latents)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (2, shape["tokens"]), generator=g).to(device)
    mask = torch.ones_like(ids)
    return lambda: model(ids, mask)


def timed(call, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    return time.perf_counter() - start


def count_flops(call) -> int | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            call()
        return int(counter.get_total_flops())
    except Exception:  # an operator the counter does not know: the FLOPs are left out
        return None


# ------------------------------------------------------------------ the parts
def part_a(report: Report, guard: Guard, ctx: dict) -> None:
    """Parity cases on the device in fp32, then the demo cascade in fp16 and bf16."""
    part = Part(report, "a")
    device, fixtures = ctx["device"], ctx["shared"] / "fixtures" / "parity"
    try:
        sys.path.insert(0, str(ctx["shared"] / "tools"))
        import check_parity

        manifest = json.loads((fixtures / "manifest.json").read_text())
        cases = [c for c in manifest["cases"] if not ctx["dry"] or c["id"] in DRY_PARITY]
        part.data["cases"] = {}
        tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            with lib_parity_on(device) as run_case:
                for case in cases:
                    if not guard.fits(5):
                        part.skip(case["id"], "time guard")
                        continue
                    parity_case(part, check_parity, run_case, case, fixtures, device)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    except Exception as e:
        part.fail("parity", e)
    part.data["demo"] = {}
    reference = None
    for dtype in ("fp32", *ctx["dtypes"]):  # fp32 first: the range the others must keep
        if not guard.fits(15):
            part.skip(f"demo cascade {dtype}", "time guard")
            continue
        try:
            start = time.perf_counter()
            videos = lib_demo_cascade(ctx["demo"], device, COMPUTE_DTYPES[dtype], ctx["dry"])
            seconds = time.perf_counter() - start
            demo_check(part, dtype, videos, reference, seconds)
            reference = reference or videos
        except Exception as e:
            part.fail(f"demo cascade {dtype}", e)
    part.finish()


def demo_check(part: Part, dtype: str, videos: dict, reference: dict | None, seconds: float) -> None:
    """Finite, and in range: every stage's output within 1.25 x the largest value of the fp32 run's
    (the pixel stages are thresholded to about [-1, 1]; sr2's VAE decode is not clamped)."""
    final = videos[list(videos)[-1]]
    finite = all(bool(torch.isfinite(v).all()) for v in videos.values())
    bounds = {name: float(v.abs().max()) for name, v in videos.items()}
    limits = {name: 1.25 * float(reference[name].abs().max()) + 1e-3 for name in videos} if reference else {}
    outside = [name for name, b in bounds.items() if name in limits and b > limits[name]]
    drift = float((final - reference[list(videos)[-1]]).abs().mean()) if reference else 0.0
    ok = finite and not outside
    part.data["demo"][dtype] = {"shape": list(final.shape), "finite": finite, "max_abs": bounds, "limits": limits,
                                "mean_abs_diff_to_fp32": drift, "seconds": round(seconds, 2), "ok": ok}
    part.row(f"demo cascade {dtype}", "max |x| of the video", bounds[list(videos)[-1]],
             f"{'ok' if ok else 'NOT OK'}: {'finite' if finite else 'NON-FINITE'}"
             + (f", outside fp32 range: {', '.join(outside)}" if outside else "")
             + (f", mean |diff| to fp32 {drift:.3g}" if reference else " (the reference)")
             + f"; {tuple(final.shape)} in {seconds:.1f} s")
    if not ok:
        part.fail(f"demo cascade {dtype}", f"finite {finite}, outside the fp32 range: {outside}")


def parity_case(part: Part, check_parity, run_case, case: dict, fixtures: Path, device: torch.device) -> None:
    cid, atol = case["id"], float(case["tolerance"]["atol"])
    try:
        inputs = check_parity.load_tensors(fixtures, case.get("inputs_tensors", {}))
        if case["kind"] in ("unet_forward", "vae"):  # these call the model directly on their inputs
            inputs = {k: v.to(device) for k, v in inputs.items()}
        start = time.perf_counter()
        outputs = run_case(case, inputs, fixtures)
        seconds = time.perf_counter() - start
        expected = check_parity.load_tensors(fixtures, case["expected"])
        worst, bad = 0.0, []
        for name, exp in expected.items():
            if name not in outputs:
                bad.append(f"{name} not returned")
                continue
            good, message = check_parity.compare(name, outputs[name], exp, atol * GPU_TOLERANCE_FACTOR)
            if exp.is_floating_point():
                diff = (torch.as_tensor(outputs[name]).detach().cpu().double() - exp.double()).abs()
                worst = max(worst, float(diff.max()) / atol if diff.numel() else 0.0)
            if not good:
                bad.append(message)
        within = worst <= 1.0
        part.data["cases"][cid] = {"max_diff_over_atol": worst, "atol": atol, "within_manifest_atol": within,
                                   "pass": not bad, "seconds": round(seconds, 2), "problems": bad}
        note = (f"{'pass' if not bad else 'FAIL'} (atol {atol:g} x {GPU_TOLERANCE_FACTOR}"
                f"{', within the manifest atol' if within else ''})")
        part.row(cid, "max|diff| / atol", worst, note)
        if bad:
            part.fail(cid, "; ".join(bad)[:300])
    except Exception as e:
        part.fail(cid, e)


def part_b(report: Report, guard: Guard, ctx: dict) -> None:
    """Every model at real size: weights, the peak of one call, seconds per call, FLOPs."""
    part = Part(report, "b")
    device, tree = ctx["device"], ctx["tree"]
    shapes = call_shapes(ctx["settings"])
    part.data["stages"] = {}
    for name, shape in shapes.items():
        entry = part.data["stages"][name] = {"shape": shape, "dtypes": {}}
        for dtype in ctx["dtypes"]:
            if not guard.fits(8):
                part.skip(f"{name} {dtype}", "time guard")
                continue
            compute = COMPUTE_DTYPES[dtype]
            text = name in ("t5", "clip")
            precision = Precision(torch.float32, compute) if text else Precision(compute)
            model = None
            try:
                model = build(name, tree, precision, device)
                call = one_call(name, model, shape, device)
                with torch.inference_mode():
                    call()  # warm-up: kernels and the allocator's first blocks
                    with Peak(device) as memory:
                        times = [timed(call, device) for _ in range(ctx["repeat"])]
                    flops = count_flops(call) if dtype == ctx["fast"] and name in UNET_STAGES else None
                weights = lib_weight_bytes(model)
                record = {"weight_bytes": weights, "peak_bytes": memory.peak, "activation_bytes": memory.added,
                          "seconds_per_call": statistics.median(times), "precision": str(precision),
                          "estimate_bytes": lib_estimate(name, model, shape)}
                if flops is not None:
                    record["flops_per_call"] = flops
                entry["dtypes"][dtype] = record
                entry["weight_bytes"] = weights if dtype == ctx["fast"] else entry.get("weight_bytes", weights)
                part.row(f"{name} {dtype}", "weights / peak / s per call",
                         f"{weights / GIB:.2f} / {memory.peak / GIB:.2f} GiB / {record['seconds_per_call']:.4f} s",
                         f"activation {memory.added / GIB:.3f} GiB" + (f", {flops / 1e12:.2f} TFLOP" if flops else ""))
            except Exception as e:
                part.fail(f"{name} {dtype}", e)
            finally:
                del model
                lib_empty_cache(device)
    part.finish()


def cpu_copies(tree: Path, device: torch.device, compute: torch.dtype, tokenizers: dict) -> dict:
    """Every model of the cascade at real size, made on the device and kept on the CPU between runs
    (the CLI's offload device)."""
    p = lib_precisions(compute)
    models = {}
    for name in UNET_STAGES:
        unet = lib_loaded_unet(materialise(lib_meta_unet(tree / UNET_STAGES[name].folder), p["unet"], device))
        unet.to("cpu")
        models[name] = lib_stage(UNET_STAGES[name], tree / UNET_STAGES[name].folder, unet)
    models["vae"] = materialise(lib_meta_vae(tree / StageKind.SR2.folder, p["vae"].casts), p["vae"], device).to("cpu")
    for key, kind, tag in (("t5", StageKind.BASE, "t5"), ("clip", StageKind.SR2, "clip")):
        model = materialise(lib_meta_text(tree / kind.folder, p["text"].casts), p["text"], device).to("cpu")
        models[key] = lib_text_encoder(tag, tokenizers[kind], model)
    lib_empty_cache(device)
    return models


def modules_of(models: dict):
    for value in models.values():
        yield value.unet if isinstance(value, Stage) else value.model if isinstance(value, TextEncoder) else value


def part_c(report: Report, guard: Guard, ctx: dict) -> None:
    """The published cascade at real size, 2 steps a stage, under offload policies and caps."""
    part = Part(report, "c")
    device, tree, dry = ctx["device"], ctx["tree"], ctx["dry"]
    compute = COMPUTE_DTYPES[ctx["fast"]]
    settings = lib_settings(dry, STEPS_1 if dry else STEPS_2)
    part.data["runs"] = {}
    try:
        models = cpu_copies(tree, device, compute, ctx["tokenizers"])
    except Exception as e:
        part.fail("models", e)
        part.finish()
        return
    figures = {o: lib_plan_figure(tree, settings, compute, o, device) for o in ("keep", "stage")}
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        caps = [(f"stage, cap {gb} GB", "stage", gb * 10 ** 9) for gb in CAPS_GB]
    else:  # no cap can be enforced on the CPU: caps around the estimate exercise both answers
        total = None
        caps = [(f"stage, cap {f:g} x estimate", "stage", int(figures["stage"] * f)) for f in (0.5, 2.0)]
    runs = [("keep", "keep", None), ("stage", "stage", None), *caps]
    for label, offload, cap in runs:
        if not guard.fits(30 if device.type == "cuda" else 3):
            part.skip(label, "time guard")
            continue
        run = part.data["runs"][label] = {"offload": offload, "cap_bytes": cap, "figure_bytes": figures[offload]}
        try:
            if cap is not None and total is not None:
                torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
            lib_empty_cache(device)
            used = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            free = (cap - used) if cap is not None else (torch.cuda.mem_get_info(device)[0] if device.type == "cuda"
                                                         else budget.free_bytes(device))
            refusal = lib_refusal(tree, settings, compute, offload, device, free)
            if refusal is not None:
                run.update(done=False, refused=refusal)
                part.row(label, "refused before work; figure", f"{figures[offload] / GIB:.2f} GiB", refusal[:160])
                continue
            start = time.perf_counter()
            with Peak(device) as memory, torch.inference_mode():
                t5 = models["t5"]
                t5.model.to(device)
                t5_embeds = lib_encode(t5)
                t5.model.to("cpu")  # the CLI drops T5 once the prompt is encoded
                lib_empty_cache(device)
                video = lib_cascade(models, settings, device, offload, t5_embeds)
            seconds = time.perf_counter() - start
            run.update(done=True, peak_bytes=memory.peak, seconds=round(seconds, 1), shape=list(video.shape),
                       figure_over_peak=figures[offload] / max(1, memory.peak),
                       finite=bool(torch.isfinite(video).all()))
            part.row(label, "peak / figure", f"{memory.peak / GIB:.2f} / {figures[offload] / GIB:.2f} GiB",
                     f"done in {seconds:.1f} s; figure / peak {run['figure_over_peak']:.2f}; {tuple(video.shape)}"
                     + ("" if cap is None or total is not None else "; cap not enforced on the CPU"))
        except Exception as e:
            run.update(done=False, error=f"{type(e).__name__}: {str(e)[:300]}")
            part.fail(label, e)
        finally:
            for module in modules_of(models):
                module.to("cpu")
            if device.type == "cuda":
                torch.cuda.set_per_process_memory_fraction(1.0, device)
            lib_empty_cache(device)
    uncapped = {o: part.data["runs"].get(o, {}).get("peak_bytes") for o in ("keep", "stage")}
    for label, run in part.data["runs"].items():  # a refusal's figure against the peak it would have had
        if not run.get("done") and run.get("refused") and uncapped.get(run["offload"]):
            run["measured_peak_bytes"] = uncapped[run["offload"]]
            run["figure_over_peak"] = run["figure_bytes"] / uncapped[run["offload"]]
            right = uncapped[run["offload"]] > run["cap_bytes"]
            run["refusal_right"] = right
            part.row(label, "figure / measured peak (no cap)", run["figure_over_peak"],
                     "the run would not have fit: refusal right" if right else "the run would have fit: refused "
                     "needlessly")
    del models
    lib_empty_cache(device)
    part.finish()


def matmul_rate(device: torch.device, dry: bool) -> float:
    """FLOP/s of a large matrix product: bf16 on a GPU, fp32 on the CPU."""
    n, dtype = (512, torch.float32) if dry or device.type != "cuda" else (8192, torch.bfloat16)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def part_d(report: Report, guard: Guard, ctx: dict) -> None:
    """A published video's projected time against the arithmetic limit."""
    part = Part(report, "d")
    device, tree = ctx["device"], ctx["tree"]
    try:
        rate = matmul_rate(device, ctx["dry"])
        stages = {name: lib_stage(kind, tree / kind.folder, None) for name, kind in UNET_STAGES.items()}
        calls = lib_published_calls(stages, lib_settings(False))
        measured = report.parts.get("b", {}).get("data", {}).get("stages", {})
        projected, counted, per_stage = 0.0, 0, {}
        for name, n in calls.items():
            bf16 = measured.get(name, {}).get("dtypes", {}).get(ctx["fast"])
            if bf16 is None:
                part.fail(name, f"no {ctx['fast']} time per call from part b")
                continue
            seconds = bf16["seconds_per_call"] * n
            flops = bf16.get("flops_per_call", 0) * n
            projected += seconds
            counted += flops
            per_stage[name] = {"calls": n, "seconds_per_call": bf16["seconds_per_call"], "seconds": seconds,
                               "flops": flops, "limit_s": flops / rate if flops else None}
            part.row(name, "calls x s per call", f"{n} x {bf16['seconds_per_call']:.4f} = {seconds:.1f} s",
                     f"{flops / 1e15:.2f} PFLOP counted" + (f", {seconds / (flops / rate):.2f} x its limit" if flops
                                                            else ""))
        limit = UNET_WORK_FLOP / rate
        part.data.update(matmul_flops_per_s=rate, stages=per_stage, projected_s=projected, limit_s=limit,
                         ratio=projected / limit, counted_flops=counted, stated_flops=UNET_WORK_FLOP,
                         sr1_share_counted=(per_stage.get("sr1", {}).get("flops", 0) / counted) if counted else None)
        part.row("matmul", "FLOP/s", rate, "bf16 8192^3" if device.type == "cuda" and not ctx["dry"] else "fp32 512^3")
        part.row("published video", "projected / limit", part.data["ratio"],
                 f"{projected:.0f} s projected, {limit:.1f} s for {UNET_WORK_FLOP / 1e15:.1f} PFLOP; counted "
                 f"{counted / 1e15:.2f} PFLOP")
    except Exception as e:
        part.fail("projection", e)
    part.finish()


def part_e(report: Report, guard: Guard, ctx: dict) -> None:
    """The estimates of show1_core.budget against every measured peak."""
    part = Part(report, "e")
    try:
        stages = report.parts.get("b", {}).get("data", {}).get("stages", {})
        part.data["stages"] = {}
        for name, entry in stages.items():
            for dtype, record in entry.get("dtypes", {}).items():
                ratio = record["estimate_bytes"] / max(1, record["activation_bytes"])
                part.data["stages"][f"{name} {dtype}"] = {"estimate_bytes": record["estimate_bytes"],
                                                          "activation_bytes": record["activation_bytes"],
                                                          "ratio": ratio}
                part.row(f"{name} {dtype}", "estimate / measured activation", ratio,
                         f"{record['estimate_bytes'] / GIB:.3f} / {record['activation_bytes'] / GIB:.3f} GiB")
        part.data["cascade"] = {}
        for label, run in report.parts.get("c", {}).get("data", {}).get("runs", {}).items():
            if run.get("done"):
                part.data["cascade"][label] = run["figure_over_peak"]
                part.row(label, "cascade figure / peak", run["figure_over_peak"])
        if not part.data["stages"]:
            part.fail("estimates", "no measurement from part b")
    except Exception as e:
        part.fail("estimates", e)
    part.finish()


# ------------------------------------------------------------------ part f: ComfyUI
PROBE = '''"""Records which patcher class holds each model ComfyUI loads (for the GPU proof)."""
NODE_CLASS_MAPPINGS = {}
try:
    from aiohttp import web
    from server import PromptServer
    import comfy.memory_management
    import comfy.model_management as mm
    import comfy.model_patcher

    SEEN = []
    _load_models_gpu = mm.load_models_gpu

    def load_models_gpu(models, *args, **kwargs):
        for m in models:
            SEEN.append({"patcher": type(m).__name__, "model": type(getattr(m, "model", None)).__name__})
        return _load_models_gpu(models, *args, **kwargs)

    mm.load_models_gpu = load_models_gpu

    @PromptServer.instance.routes.get("/gpu_proof/patchers")
    async def patchers(request):
        held = [{"patcher": type(m.model).__name__, "model": type(getattr(m.model, "model", None)).__name__}
                for m in mm.current_loaded_models if m.model is not None]
        return web.json_response({"loaded": SEEN, "held": held,
                                  "core": comfy.model_patcher.CoreModelPatcher.__name__,
                                  "aimdo": bool(getattr(comfy.memory_management, "aimdo_enabled", False))})
except Exception as e:
    print("gpu_proof probe not registered:", e)
'''
SHOW1_MODELS = ("Show1UNet", "AutoencoderKL", "T5Encoder", "CLIPTextEncoder")
SMALL_COMFY = {"Show1KeyframeSampler": {"num_frames": 3, "width": 24, "height": 16},
               "Show1PixelInterpolate": {"width": 24, "height": 16}, "Show1VAEEncode": {"width": 128, "height": 64}}


def part_f(report: Report, guard: Guard, ctx: dict, python: str, step_cap: int) -> None:
    """ComfyUI 0.33.0 with dynamic VRAM runs the published-cascade example on the demo weights."""
    import urllib.request

    part = Part(report, "f")
    server, log = None, None
    work = Path(tempfile.mkdtemp(prefix="gpu_proof_comfyui_"))
    try:
        tarball = ctx["shared"] / "comfyui" / "ComfyUI-0.33.0.tar.gz"
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(work)], check=True)
        comfy_dir = work / "ComfyUI-0.33.0"
        for d in ("custom_nodes", "output", "input", "user", "temp", "web"):
            (work / d).mkdir(exist_ok=True)
        (work / "web" / "index.html").write_text("<!doctype html><title>ComfyUI</title>\n")  # no frontend needed
        (work / "custom_nodes" / "ComfyUI-Show1").symlink_to(ROOT)
        (work / "custom_nodes" / "gpu_proof_probe.py").write_text(PROBE)
        (work / "extra_model_paths.yaml").write_text(
            f"gpu_proof:\n  base_path: {work}\n  custom_nodes: custom_nodes\n  show1: {ctx['demo']}\n")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        args = [python, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--output-directory",
                str(work / "output"), "--input-directory", str(work / "input"), "--user-directory", str(work / "user"),
                "--temp-directory", str(work / "temp"), "--database-url", "sqlite:///:memory:",
                "--disable-auto-launch", "--disable-api-nodes", "--front-end-root", str(work / "web"),
                "--extra-model-paths-config", str(work / "extra_model_paths.yaml")]
        if ctx["device"].type != "cuda":
            args.append("--cpu")
        log = open(work / "server.log", "w")
        start = time.perf_counter()
        server = subprocess.Popen(args, cwd=comfy_dir, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})

        def get(path: str):
            with urllib.request.urlopen(url + path, timeout=30) as r:
                return json.loads(r.read())

        def post(path: str, body: dict):
            request = urllib.request.Request(url + path, json.dumps(body).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as r:
                return json.loads(r.read() or b"{}")

        while True:
            if server.poll() is not None:
                raise RuntimeError("ComfyUI exited: " + (work / "server.log").read_text()[-1500:])
            if not guard.fits(5):
                raise TimeoutError("ComfyUI did not answer in time")
            try:
                get("/system_stats")
                break
            except OSError:
                time.sleep(0.5)
        started = time.perf_counter() - start
        text = (work / "server.log").read_text(errors="replace")
        dynamic = "DynamicVRAM support detected and enabled" in text
        part.data.update(started_s=round(started, 1), dynamic_vram_logged=dynamic)
        part.row("ComfyUI 0.33.0", "started in", f"{started:.1f} s",
                 "log: DynamicVRAM support detected and enabled" if dynamic else "no dynamic VRAM line in the log")
        if ctx["device"].type == "cuda" and not dynamic:
            part.fail("dynamic VRAM", "the log does not say it is enabled")
        sys.path.insert(0, str(ROOT / "tests"))
        from workflows import load, to_api

        object_info = get("/object_info")
        workflow = load(ROOT / "example_workflows" / "show1_published_cascade.json")
        prompt = to_api(workflow, object_info)
        for node in prompt.values():
            for key in ("steps", "if_ii_steps"):
                if isinstance(node["inputs"].get(key), int):
                    node["inputs"][key] = min(node["inputs"][key], step_cap)
            if ctx["dry"]:
                node["inputs"].update(SMALL_COMFY.get(node["class_type"], {}))
        answer = post("/prompt", {"prompt": prompt, "client_id": "gpu-proof"})
        if answer.get("node_errors"):
            raise RuntimeError(f"node errors: {json.dumps(answer['node_errors'])[:500]}")
        prompt_id, start = answer["prompt_id"], time.perf_counter()
        while True:
            history = get(f"/history/{prompt_id}").get(prompt_id)
            if history and history["status"].get("status_str") in ("success", "error"):
                break
            if server.poll() is not None or not guard.fits(2):
                raise RuntimeError("the workflow did not finish: " + (work / "server.log").read_text()[-1500:])
            time.sleep(0.5)
        seconds = time.perf_counter() - start
        status = history["status"]["status_str"]
        videos = [f for f in (work / "output").rglob("*") if f.suffix in (".mp4", ".webm")]
        part.data.update(workflow_status=status, workflow_s=round(seconds, 1), step_cap=step_cap,
                         outputs=[f.name for f in videos])
        part.row("show1_published_cascade", "status", status,
                 f"{seconds:.1f} s, steps capped at {step_cap}; {len(videos)} video file(s)")
        if status != "success":
            part.fail("workflow", json.dumps(history["status"])[-400:])
        probe = get("/gpu_proof/patchers")
        part.data["patchers"] = probe
        show1 = [m for m in probe["loaded"] + probe["held"] if m["model"] in SHOW1_MODELS]
        classes = sorted({m["patcher"] for m in show1})
        models = sorted({m["model"] for m in show1})
        part.row("Show-1 models loaded", "patcher classes", ", ".join(classes) or "none",
                 f"{', '.join(models)}; {len(probe['held'])} held at the end; CoreModelPatcher is {probe['core']}, "
                 f"aimdo {probe['aimdo']}")
        if ctx["device"].type == "cuda" and (not show1 or classes != ["ModelPatcherDynamic"]):
            part.fail("patchers", f"Show-1 models under {classes or 'no patcher'}, not ModelPatcherDynamic")
    except Exception as e:
        part.fail("comfyui", e)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        if log is not None:
            log.close()
            part.data["log_tail"] = Path(log.name).read_text(errors="replace")[-3000:]
        shutil.rmtree(work, ignore_errors=True)
    part.finish()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ main
def find_shared(given: Path | None) -> Path:
    """The shared material: --shared, else ../shared beside the checkout, else the copy that travels."""
    if given is not None:
        if not given.is_dir():
            raise FileNotFoundError(f"--shared {given} is not a folder")
        return given
    for candidate in (ROOT.parent / "shared", ROOT / ".whl" / "data", ROOT / ".whl-comfyui" / "data"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no shared material: give --shared (benchmarks/gpu_wheels.sh makes a copy that travels)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="the same code on the CPU, tiny configs, in under a minute")
    ap.add_argument("--comfyui", action="store_true", help="part f alone: ComfyUI 0.33.0 with dynamic VRAM")
    ap.add_argument("--out", type=Path, help="the JSON to write (a .md table beside it)")
    ap.add_argument("--budget", type=float, help="seconds for everything (default 420, 200 for --comfyui)")
    ap.add_argument("--shared", type=Path, help="the shared material (default ../shared, else .whl/data)")
    ap.add_argument("--comfyui-python", default=sys.executable, help="the Python that runs ComfyUI")
    ap.add_argument("--comfyui-steps", type=int, default=4, help="cap of every steps input of the workflow")
    ap.add_argument("--parts", default="abcde", help="which of the parts a-e to run")
    args = ap.parse_args()
    dry = args.dry_run
    if dry:
        torch.set_num_threads(1)  # tiny tensors: one thread beats several that wait on each other
    device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "outputs"
    out = args.out or default_out / ("gpu_proof_comfyui.json" if args.comfyui else "gpu_proof.json")
    guard = Guard(args.budget or (300 if dry else 200 if args.comfyui else 420))
    report = Report(out, {"device_name": name, "device": str(device), "torch": torch.__version__,
                          "cuda": torch.version.cuda, "dry_run": dry, "budget_s": guard.seconds,
                          "gpu_tolerance_factor": GPU_TOLERANCE_FACTOR, "unet_work_flop": UNET_WORK_FLOP})
    work = Path(tempfile.mkdtemp(prefix="gpu_proof_"))
    ctx = {"device": device, "dry": dry, "settings": lib_settings(dry),
           # half precision on the CPU is emulated (seconds per tiny call): a dry run computes in fp32
           "dtypes": ("fp32",) if dry else ("fp16", "bf16"), "fast": "fp32" if dry else "bf16",
           "repeat": 1 if dry else 3}
    parts = {"f": lambda *a: part_f(*a, args.comfyui_python, args.comfyui_steps)} if args.comfyui else {
        key: run for key, run in (("a", part_a), ("b", part_b), ("c", part_c), ("d", part_d), ("e", part_e))
        if key in args.parts}
    try:
        try:
            ctx["shared"] = find_shared(args.shared)
            ctx["demo"] = lib_demo(work / "demo")
            if not args.comfyui:
                ctx["tree"] = config_tree(ctx["shared"] / "fixtures" / "hub_configs", ctx["demo"], work / "hub", dry)
                ctx["tokenizers"] = lib_tokenizers(ctx["demo"])
        except Exception as e:  # nothing can run: every part says why
            for key in parts:
                Part(report, key).fail("setup", e)
                report.parts[key]["status"] = "failed"
            parts = {}
        for key, run in parts.items():
            if not dry and not guard.fits(PART_SECONDS.get(key, 60) / 3):
                Part(report, key).finish("skipped: time guard")
                continue
            try:
                run(report, guard, ctx)
            except Exception as e:  # a part's own trys missed it: recorded, and the next part runs
                record = report.parts.get(key) or Part(report, key).record
                record["failures"].append(f"{type(e).__name__}: {e}"[:300])
                record["status"] = "failed"
                traceback.print_exception(e, file=sys.stderr)
            report.meta["elapsed_s"] = round(guard.elapsed, 1)
            report.write()
    finally:
        report.meta["elapsed_s"] = round(guard.elapsed, 1)
        report.write()
        shutil.rmtree(work, ignore_errors=True)
    failed = [p for p, r in report.parts.items() if r["status"] != "ok"]
    print(f"wrote {out} and {out.with_suffix('.md')} in {guard.elapsed:.0f} s; "
          + (f"not ok: {', '.join(failed)}" if failed else "every part ok"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
