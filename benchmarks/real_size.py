"""Real-size memory and speed: every model of the cascade built from the real hub configs
(`../shared/fixtures/hub_configs`) with random weights (nothing is downloaded), one denoising step of
each stage at the published size, through the pack's own stage functions.

    python benchmarks/real_size.py --configs ../shared/fixtures/hub_configs --out benchmarks/real_size_cpu.json \\
        [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--weight-dtype bf16|fp16|...] [--points NAME:FRAMES ...]

Each point (a stage at a frame count) runs in a process of its own, so its peak memory is its own:
the weights' bytes, the peak while the step ran, and seconds per step (after one warm-up call at
one step). On the CPU the peak is the resident set (the allocator is tuned as the CLI tunes it, so
freed memory stays in the heap and the peak is the peak); on a GPU it is torch's allocator peak.
On a CPU, where a full-size sr1 / sr2 / interpolation step takes minutes, the published resolution
runs at two smaller frame (or window) counts; `summarise` extrapolates per frame and says so.
`cascade_peak_bytes` is the published cascade's peak under each offload policy, composed from the
measured stages as the pack's run planner composes its estimates (`budget.CascadePlan`).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from show1_core.budget import CascadePlan, StageNeed  # noqa: E402
from show1_core.context import RunContext  # noqa: E402
from show1_core.demo import IF_II_SCHEDULER, NOISING_SCHEDULER, SR1_SCHEDULER  # noqa: E402
from show1_core.folders import read_json  # noqa: E402
from show1_core.loading import as_stored, build_on_meta  # noqa: E402
from show1_core.memory import DevicePlacement, Offload  # noqa: E402
from show1_core.models.clip import CLIPTextConfig, CLIPTextEncoder  # noqa: E402
from show1_core.models.ops import operations_for  # noqa: E402
from show1_core.models.t5 import T5Config, T5Encoder  # noqa: E402
from show1_core.models.unet import Show1UNet, UNetConfig  # noqa: E402
from show1_core.models.vae import AutoencoderKL, VAEConfig  # noqa: E402
from show1_core.precision import COMPUTE_DTYPES, WEIGHT_DTYPES, Precision  # noqa: E402
from show1_core.settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    LatentSRSettings,
    SR1Settings,  # noqa: E402
    VAEDecodeSettings,
    VAEEncodeSettings,
)
from show1_core.stage import Stage, StageKind  # noqa: E402
from show1_core.stages import (
    generate_keyframes,
    interpolate_keyframes,
    latent_video_to_video,
    super_resolve_pixels,  # noqa: E402
    upscale_first_frame,
    vae_decode,
    vae_encode,
)
from show1_core.text import PromptEmbeddings, TextEncoder, encode  # noqa: E402

# The text encoders' configs are not in the hub snapshot: these are the public ones the checkpoints
# were trained with (google/t5-v1_1-xxl of DeepFloyd IF; the OpenCLIP ViT-H text tower of
# ModelScope / zeroscope, 1024 wide, that sr2's cross_attention_dim 1024 takes).
T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
              feed_forward_proj="gated-gelu")
CLIP_H = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
              num_attention_heads=16, hidden_act="gelu")
# Published sizes: (frames or windows, height, width) of one step of each stage
PUBLISHED = {"keyframes": (8, 40, 64), "interpolation": (7, 40, 64), "if_ii": (1, 160, 256), "sr1": (8, 160, 256),
             "sr2": (29, 40, 72), "vae_encode": (8, 320, 576), "vae_decode": (8, 320, 576), "t5": (1, 0, 0),
             "clip": (1, 0, 0)}
UNIT = {"interpolation": "windows", "vae_encode": "frames per chunk", "vae_decode": "frames per chunk"}
CPU_POINTS = ["t5:1", "clip:1", "keyframes:8", "interpolation:1", "interpolation:2", "if_ii:1", "sr1:1", "sr1:2",
              "sr2:1", "sr2:2", "vae_encode:1", "vae_encode:2", "vae_decode:1", "vae_decode:2"]
GPU_POINTS = [f"{n}:{PUBLISHED[n][0]}" for n in PUBLISHED]


def randomise(model: torch.nn.Module, device: torch.device, precision: Precision) -> torch.nn.Module:
    """Materialise a meta model in its storage dtypes with random weights, scaled so activations
    stay finite (one tensor at a time: no full-precision copy of the model is ever held)."""
    as_stored(model, precision)
    model.to_empty(device=device)
    g = torch.Generator(device="cpu").manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g).div_(math.sqrt(math.prod(p.shape[1:]))))
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
    model.compute_dtype = precision.compute
    return model.eval().requires_grad_(False)


def build(factory, device, precision):
    return randomise(build_on_meta(lambda: factory(operations_for(precision.casts))), device, precision)


def weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def unet_stage(configs: Path, folder: str, kind: StageKind, device, precision) -> Stage:
    config = UNetConfig.from_dict(read_json(configs / folder / "unet" / "config.json"))
    unet = build(lambda ops: Show1UNet(config, ops), device, precision).use_channels_last()
    schedulers = {StageKind.BASE: read_json(configs / "show-1-base" / "scheduler" / "scheduler_config.json"),
                  StageKind.INTERPOLATION: read_json(configs / "show-1-base" / "scheduler" / "scheduler_config.json"),
                  StageKind.SR1: SR1_SCHEDULER, StageKind.IF_II: IF_II_SCHEDULER,
                  StageKind.SR2: read_json(configs / "show-1-sr2" / "scheduler" / "scheduler_config.json")}
    noising = NOISING_SCHEDULER if kind in (StageKind.SR1, StageKind.IF_II) else None
    return Stage(kind, configs / folder, unet, schedulers[kind], noising)


class PeakMemory:
    """The peak of the memory a block of work adds: torch's allocator peak on a GPU; on the CPU the
    resident set, sampled every few milliseconds (large buffers are mapped and unmapped one by one,
    so the resident set follows what is alive)."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self.base = device, 0, 0

    @staticmethod
    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        import threading

        self.base = self.peak = self.resident()
        self.running = True

        def sample():
            while self.running:
                self.peak = max(self.peak, self.resident())
                time.sleep(0.003)

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.peak, self.resident())

    @property
    def added(self) -> int:
        return self.peak - self.base


def release_heap() -> None:
    """Map large buffers one by one and hand freed memory back, so the resident set is what is alive."""
    from show1_core.memory import glibc

    libc = glibc()
    if libc is not None:
        libc.mallopt(-3, 1 << 16)  # M_MMAP_THRESHOLD: a fixed 64 KiB, not the adaptive one
        libc.malloc_trim(0)


def point(configs: Path, name: str, count: int, device: torch.device, precision: Precision) -> dict:
    """One stage at `count` frames (windows, frames per chunk): weights, peak, seconds per step."""
    g = torch.Generator().manual_seed(0)
    embeds = PromptEmbeddings(torch.randn(1, 77, 4096, generator=g) * 0.1, torch.randn(1, 77, 4096, generator=g) * 0.1,
                              "t5")
    clip_embeds = PromptEmbeddings(torch.randn(1, 77, 1024, generator=g), torch.randn(1, 77, 1024, generator=g), "clip")
    ctx = RunContext(DevicePlacement(device, device, Offload.KEEP))
    _, h, w = PUBLISHED[name]
    unit = UNIT.get(name, "frames")
    if name == "t5":
        model = build(lambda ops: T5Encoder(T5Config(**T5_XXL), ops), device, precision_text(precision))
        tok = FakeTokenizer(32128)
        run = lambda: encode(TextEncoder("t5", tok, model), ["a prompt", ""], ctx)  # noqa: E731
    elif name == "clip":
        model = build(lambda ops: CLIPTextEncoder(CLIPTextConfig(**CLIP_H), ops), device, precision_text(precision))
        tok = FakeTokenizer(49408)
        run = lambda: encode(TextEncoder("clip", tok, model), ["a prompt", ""], ctx)  # noqa: E731
    elif name.startswith("vae"):
        config = VAEConfig.from_dict(read_json(configs / "show-1-sr2" / "vae" / "config.json"))
        model = build(lambda ops: AutoencoderKL(config, ops), device, precision)
        if name == "vae_encode":
            video = torch.rand(1, 3, count, h, w, generator=g) * 2 - 1
            run = lambda: vae_encode(model, video, VAEEncodeSettings(frames_per_chunk=count), ctx)  # noqa: E731
        else:
            latents = torch.randn(1, 4, count, h // 8, w // 8, generator=g)
            run = lambda: vae_decode(model, latents, VAEDecodeSettings(frames_per_chunk=count), ctx)  # noqa: E731
    else:
        folder, kind = {"keyframes": ("show-1-base", StageKind.BASE), "interpolation": ("show-1-interpolation",
                        StageKind.INTERPOLATION), "if_ii": ("IF-II-L-v1.0", StageKind.IF_II),
                        "sr1": ("show-1-sr1", StageKind.SR1), "sr2": ("show-1-sr2", StageKind.SR2)}[name]
        stage = unet_stage(configs, folder, kind, device, precision)
        model = stage.unet
        if name == "keyframes":
            s = KeyframeSettings(num_frames=count, height=h, width=w, steps=1)
            run = lambda: generate_keyframes(stage, embeds, s, ctx)  # noqa: E731
        elif name == "interpolation":
            keyframes = torch.rand(1, 3, count + 1, h, w, generator=g) * 2 - 1
            run = lambda: interpolate_keyframes(stage, embeds, keyframes, InterpolationSettings(steps=1), ctx)  # noqa
        elif name == "if_ii":
            image = torch.rand(1, 3, h // 4, w // 4, generator=g) * 2 - 1
            run = lambda: upscale_first_frame(stage, embeds, image, IFIISettings(steps=1), ctx)  # noqa: E731
        elif name == "sr1":
            video = torch.rand(1, 3, count, h // 4, w // 4, generator=g) * 2 - 1
            first = torch.rand(1, 3, h, w, generator=g) * 2 - 1
            run = lambda: super_resolve_pixels(stage, embeds, video, SR1Settings(steps=1), ctx, first)  # noqa: E731
        else:
            latents = torch.randn(1, 4, count, h, w, generator=g)
            s = LatentSRSettings(strength=1.0, steps=1)
            run = lambda: latent_video_to_video(stage, clip_embeds, latents, s, ctx)  # noqa: E731
    weights = weight_bytes(model)
    if device.type == "cuda":
        run()  # warm-up: kernels and the allocator's first blocks
    else:
        release_heap()
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        run()
        sync(device)
        seconds = time.perf_counter() - start
    return {"stage": name, unit: count, "height": h, "width": w, "weight_bytes": weights,
            "activation_bytes": memory.added, "peak_bytes": memory.peak, "seconds_per_step": round(seconds, 3),
            "device": str(device), "precision": str(precision)}


def precision_text(precision: Precision) -> Precision:
    """Text encoders compute in float32; their weights are stored as the others'."""
    return Precision(torch.float32, precision.storage)


class FakeTokenizer:
    """Tokens of the right vocabulary and length (the weights are random: the text does not matter)."""

    def __init__(self, vocab: int):
        self.vocab = vocab

    def __call__(self, texts, **kwargs):
        from types import SimpleNamespace

        ids = torch.randint(0, self.vocab, (len(texts), 77), generator=torch.Generator().manual_seed(1))
        return SimpleNamespace(input_ids=ids, attention_mask=torch.ones_like(ids))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarise(points: list[dict]) -> dict:
    """Per stage: the measured points, and on the CPU the per-frame extrapolation to the published
    count (activation and time linear in frames, fitted through the two smallest counts)."""
    out = {}
    for name in PUBLISHED:
        mine = sorted((p for p in points if p["stage"] == name), key=lambda p: p[UNIT.get(name, "frames")])
        if not mine:
            continue
        unit = UNIT.get(name, "frames")
        target = PUBLISHED[name][0]
        entry = {"weight_bytes": mine[0]["weight_bytes"], "points": mine, "published_" + unit.replace(" ", "_"): target}
        at = next((p for p in mine if p[unit] == target), None)
        if at is not None:
            entry.update(activation_bytes=at["activation_bytes"], seconds_per_step=at["seconds_per_step"],
                         how="measured at the published size")
        elif len(mine) >= 2:
            a, b = mine[0], mine[1]
            span = b[unit] - a[unit]
            per_act = (b["activation_bytes"] - a["activation_bytes"]) / span
            per_sec = (b["seconds_per_step"] - a["seconds_per_step"]) / span
            entry.update(activation_bytes=int(a["activation_bytes"] + per_act * (target - a[unit])),
                         seconds_per_step=round(a["seconds_per_step"] + per_sec * (target - a[unit]), 1),
                         how=f"extrapolated per {unit.replace('frames', 'frame').replace('windows', 'window')} from {a[unit]} and "
                             f"{b[unit]} {unit} at the published resolution")
        out[name] = entry
    return out


def cascade_peaks(stages: dict, with_t5: bool = True) -> dict:
    """The published cascade's peak under each offload policy, from the measured stages: T5 runs
    alone first (or on another device); sr2 holds the VAE and CLIP beside its UNet and decodes with
    the VAE's activations."""
    def need(name, weights, act, transient=False):
        return StageNeed(name, weights, act, transient)

    sr2 = stages["sr2"]
    needs = [need("T5", stages["t5"]["weight_bytes"], stages["t5"]["activation_bytes"], transient=True),
             *(need(n, stages[n]["weight_bytes"], stages[n]["activation_bytes"])
               for n in ("keyframes", "interpolation", "if_ii", "sr1")),
             need("sr2", sr2["weight_bytes"] + stages["vae_decode"]["weight_bytes"] + stages["clip"]["weight_bytes"],
                  max(sr2["activation_bytes"], stages["vae_decode"]["activation_bytes"]))]
    plan = CascadePlan(tuple(needs if with_t5 else needs[1:]))
    return {offload: plan.peak(offload) for offload in ("keep", "stage", "window")}


def run_points(args) -> list[dict]:
    results = []
    for spec in args.points:
        name, count = spec.split(":")
        cmd = [sys.executable, __file__, "--configs", str(args.configs), "--device", args.device, "--dtype", args.dtype,
               "--weight-dtype", args.weight_dtype, "--one", name, count]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{spec} failed")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=Path, default=ROOT.parent / "shared" / "fixtures" / "hub_configs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(COMPUTE_DTYPES), default="fp32", help="the arithmetic")
    ap.add_argument("--weight-dtype", choices=[k for k in WEIGHT_DTYPES if k != "default"], default="bf16")
    ap.add_argument("--points", nargs="+", help="NAME:FRAMES, e.g. sr1:2 (default: the CPU or GPU set)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--summarise", type=Path, metavar="JSON", help="summarise the points of an earlier run again")
    ap.add_argument("--one", nargs=2, metavar=("NAME", "FRAMES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    precision = Precision(COMPUTE_DTYPES[args.dtype], WEIGHT_DTYPES[args.weight_dtype])
    if args.one:
        print(json.dumps(point(args.configs, args.one[0], int(args.one[1]), device, precision)))
        return
    if args.summarise:
        result = json.loads(args.summarise.read_text())
        points = [p for stage in result["stages"].values() for p in stage["points"]]
    else:
        args.points = args.points or (GPU_POINTS if device.type == "cuda" else CPU_POINTS)
        points = run_points(args)
        result = {"device": args.device, "compute": args.dtype, "weights": args.weight_dtype,
                  "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": os.cpu_count()}
    result["stages"] = summarise(points)
    if all(name in result["stages"] for name in PUBLISHED):
        result["cascade_peak_bytes"] = cascade_peaks(result["stages"])
        result["cascade_peak_bytes_t5_elsewhere"] = cascade_peaks(result["stages"], with_t5=False)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
