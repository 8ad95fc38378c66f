"""Command line: `python -m show1_core generate ...` runs the cascade headless and writes an mp4;
`python -m show1_core download ...` fetches the official stage folders (only when asked)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from .cascade import STAGE_ORDER, CascadeModels, CascadeSettings, run_cascade
from .demo import is_current_demo_folder, is_demo_folder, write_demo_models
from .errors import Show1Error
from .loading import STAGE_FOLDERS, StageKind, find_stages, load_stage, load_vae
from .memory import Offload, default_placement, tune_cpu_allocator
from .progress import StepEvent
from .stages import INTERPOLATED_FPS, KEYFRAME_FPS
from .text import load_text_encoder
from .video import to_uint8_frames, write_mp4

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Small sizes and few steps for the random demo weights: a quick run that exercises every stage.
DEMO_SETTINGS = dict(height=16, width=24, keyframe_steps=8, interp_steps=6, if_ii_steps=6, sr1_steps=4,
                     sr2_height=64, sr2_width=96, sr2_steps=10)
SETTING_FLAGS = {
    "frames": "num_frames", "height": "height", "width": "width", "keyframe_steps": "keyframe_steps",
    "keyframe_guidance": "keyframe_guidance", "interp_steps": "interp_steps", "if_ii_steps": "if_ii_steps",
    "sr1_steps": "sr1_steps", "sr2_steps": "sr2_steps", "sr2_height": "sr2_height", "sr2_width": "sr2_width",
    "strength": "sr2_strength", "sr2_guidance": "sr2_guidance",
}
STAGE_OUTPUTS = {"base_video": KEYFRAME_FPS, "interp_video": INTERPOLATED_FPS, "sr1_video": INTERPOLATED_FPS,
                 "sr2_video": INTERPOLATED_FPS}


def default_demo_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "show1" / "demo-weights"


class ProgressBars:
    """One tqdm bar per stage on stderr."""

    def __init__(self):
        from tqdm.auto import tqdm

        self.tqdm, self.bars = tqdm, {}

    def __call__(self, event: StepEvent) -> None:
        bar = self.bars.get(event.stage)
        if bar is None or bar.total != event.total or event.step < bar.n:
            if bar is not None:
                bar.close()
            bar = self.bars[event.stage] = self.tqdm(total=event.total, desc=f"{event.stage:>13}", unit="step",
                                                     leave=True, dynamic_ncols=True)
        bar.update(event.step - bar.n)
        if event.step >= event.total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def resolve_models(models: Path | None, force_demo: bool, last: int) -> tuple[dict[StageKind, Path], bool]:
    """Stage folders found under `models`, or the demo weights when none are there."""
    needed = [StageKind.BASE, StageKind.INTERPOLATION, StageKind.SR1, StageKind.SR2][: last + 1]
    found = {} if force_demo or models is None else {k: v[0].folder for k, v in find_stages(models).items()}
    missing = [k for k in needed if k not in found]
    if not missing:
        demo = all(is_demo_folder(found[k]) for k in needed)
        return found, demo
    if found and not force_demo:
        names = ", ".join(STAGE_FOLDERS[k] for k in missing)
        raise Show1Error(f"{models}: no folder for {names}; download them with `python -m show1_core download "
                         f"--dest {models} --stages {' '.join(k.value for k in missing)}` or choose an earlier "
                         f"--last-stage")
    demo_dir = default_demo_dir()
    if not all(is_current_demo_folder(demo_dir / STAGE_FOLDERS[k]) for k in StageKind):
        write_demo_models(demo_dir)
    where = f"in {models}" if models is not None else "(no --models given)"
    print(f"No Show-1 weights found {where}: running on the tiny built-in DEMO weights in {demo_dir}.\n"
          "These weights are random, so the video is noise; download the real checkpoints with "
          "`python -m show1_core download` for real videos.", file=sys.stderr)
    return {k: demo_dir / STAGE_FOLDERS[k] for k in StageKind}, True


def generate(args) -> int:
    last = STAGE_ORDER.index(args.last_stage)
    folders, demo = resolve_models(args.models, args.demo, last)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    if device.type == "cpu":
        tune_cpu_allocator()
    t5_device = torch.device(args.t5_device) if args.t5_device else device
    t5_dtype = dtype if t5_device.type != "cpu" or dtype is torch.float32 else torch.bfloat16
    settings = CascadeSettings(clean_caption=args.clean_caption)
    if demo:
        settings = settings.replace(**DEMO_SETTINGS)
    explicit = {SETTING_FLAGS[k]: v for k, v in vars(args).items() if k in SETTING_FLAGS and v is not None}
    settings = settings.replace(**explicit)

    started = time.perf_counter()
    t5 = load_text_encoder(folders[StageKind.BASE], t5_dtype, t5_device)
    from .text import encode_prompt
    t5_embeds = encode_prompt(t5, args.prompt, "", clean_caption=settings.clean_caption)
    del t5  # the largest model of the cascade is needed once per prompt
    offload = torch.device("cpu")
    models = CascadeModels(t5=None, base=load_stage(folders[StageKind.BASE], dtype, offload))
    if last >= 1:
        models.interpolation = load_stage(folders[StageKind.INTERPOLATION], dtype, offload)
    if last >= 2:
        models.sr1 = load_stage(folders[StageKind.SR1], dtype, offload)
        if_ii = folders.get(StageKind.IF_II) or next(iter(
            [i.folder for i in find_stages(args.models).get(StageKind.IF_II, [])] if args.models else []), None)
        if if_ii is not None:
            models.if_ii = load_stage(if_ii, dtype, offload)
        else:
            print("IF-II-L-v1.0 not found: sr1's first frame is conditioned on a bilinear upscale (softer video). "
                  "Accept its licence on the hub and download it with --stages if_ii.", file=sys.stderr)
    if last >= 3:
        models.sr2 = load_stage(folders[StageKind.SR2], dtype, offload)
        models.vae = load_vae(folders[StageKind.SR2], dtype, offload)
        models.clip = load_text_encoder(folders[StageKind.SR2], dtype if device.type != "cpu" else torch.float32,
                                        offload)
    save_dir = Path(args.save_stages) if args.save_stages else None

    def record(name: str, tensor: torch.Tensor) -> None:
        if save_dir is not None and name in STAGE_OUTPUTS:
            write_mp4(save_dir / f"{name}.mp4", to_uint8_frames(tensor), STAGE_OUTPUTS[name])

    bars = ProgressBars()
    try:
        video = run_cascade(models, args.prompt, args.negative_prompt, args.seed, settings, args.last_stage,
                            t5_embeds=t5_embeds, placement=default_placement(device, args.offload),
                            callback=bars, record=record)
    finally:
        bars.close()
    fps = KEYFRAME_FPS if last == 0 else INTERPOLATED_FPS
    out = write_mp4(args.out, to_uint8_frames(video), fps)
    _, _, frames, h, w = video.shape
    note = " (demo weights: the video is noise)" if demo else ""
    print(f"wrote {out}: {frames} frames of {w}x{h} at {fps} fps in {time.perf_counter() - started:.1f} s{note}")
    return 0


def download(args) -> int:
    from .download import download_stages

    download_stages(args.dest, args.stages, token=args.token, variant=None if args.all_variants else "fp16")
    return 0


def verify_configs(args) -> int:
    from .verify import verify

    reports = verify(args.dir, args.reference)
    for r in reports:
        print(r.line())
    failed = [r for r in reports if r.problems]
    total = sum(r.parameters for r in reports if "@" not in r.name)
    print(f"{len(reports) - len(failed)} of {len(reports)} ok ({total:,} parameters in all)"
          + (f"; {len(failed)} differ" if failed else ""))
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m show1_core", description="Show-1 text-to-video, headless.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="run the cascade and write an mp4")
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative-prompt", default="low resolution, blur", help="used by sr2's CLIP guidance")
    g.add_argument("--models", type=Path, help="folder holding the stage folders (show-1-base, ...); without "
                                               "weights the tiny demo weights run")
    g.add_argument("--out", type=Path, default=Path("show1.mp4"))
    g.add_argument("--seed", type=int, default=345)
    g.add_argument("--last-stage", choices=STAGE_ORDER, default="sr2")
    g.add_argument("--save-stages", metavar="DIR", help="also write every stage's output as an mp4 here")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    g.add_argument("--dtype", choices=sorted(DTYPES), help="default: fp16 on a GPU, fp32 on the CPU")
    g.add_argument("--offload", choices=[o.value for o in Offload], default="stage",
                   help="keep models on the GPU, or offload them between stages / windows")
    g.add_argument("--t5-device", help="run the T5 text encoder here (e.g. cpu) to spare GPU memory")
    g.add_argument("--clean-caption", action="store_true", help="apply DeepFloyd IF's caption cleaning")
    g.add_argument("--demo", action="store_true", help="use the random demo weights even if real ones exist")
    for flag, kind in (("frames", int), ("height", int), ("width", int), ("keyframe-steps", int),
                       ("keyframe-guidance", float), ("interp-steps", int), ("if-ii-steps", int),
                       ("sr1-steps", int), ("sr2-steps", int), ("sr2-height", int), ("sr2-width", int),
                       ("strength", float), ("sr2-guidance", float)):
        g.add_argument(f"--{flag}", type=kind)
    g.set_defaults(func=generate)
    d = sub.add_parser("download", help="download the official stage folders from the Hugging Face hub")
    d.add_argument("--dest", type=Path, required=True, help="e.g. ComfyUI/models/show1")
    d.add_argument("--stages", nargs="+", choices=[k.value for k in StageKind],
                   default=[k.value for k in StageKind if k is not StageKind.IF_II] + [StageKind.IF_II.value])
    d.add_argument("--token", help="hub token (IF-II is gated); default: HF_TOKEN or the saved login")
    d.add_argument("--all-variants", action="store_true", help="also fetch full-precision files")
    d.set_defaults(func=download)
    v = sub.add_parser("verify-configs", help="build every model of hub-layout stage folders from its config on the "
                                              "meta device (no weights) and compare with a reference")
    v.add_argument("dir", type=Path, help="folder holding the stage folders (configs are enough)")
    v.add_argument("--reference", type=Path, help="reference_state_dicts.json: key -> shape and parameter counts of "
                                                  "what the published code builds")
    v.set_defaults(func=verify_configs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Show1Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return 130
