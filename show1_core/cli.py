"""Command line: `python -m show1_core generate ...` runs the cascade headless and writes an mp4;
`python -m show1_core download ...` fetches the official stage folders (only when asked);
`python -m show1_core verify-configs DIR` proves that hub configs build the published models.

Every input is checked before any weight is loaded (flags, sizes after every stage's resize, the
output paths, the devices), with the flag's own name in the message. Every failure ends in one
line on stderr and a non-zero exit; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from . import rules
from .cascade import STAGE_ORDER, CascadeModels, CascadeSettings, run_cascade
from .demo import is_current_demo_folder, is_demo_folder, write_demo_models
from .errors import InputError, Show1Error
from .loading import STAGE_FOLDERS, StageKind, find_stages, inspect_stage, load_stage, load_vae, vae_size_multiple
from .memory import Offload, default_placement, is_out_of_memory, tune_cpu_allocator
from .progress import StepEvent
from .stages import INTERPOLATED_FPS, KEYFRAME_FPS
from .text import encode_prompt, load_text_encoder
from .video import to_uint8_frames, write_mp4

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Small sizes and few steps for the random demo weights: a quick run that exercises every stage.
DEMO_SETTINGS = dict(height=16, width=24, keyframe_steps=8, interp_steps=6, if_ii_steps=6, sr1_steps=4,
                     sr2_height=64, sr2_width=96, sr2_steps=10)
# flag -> (setting, type)
SETTING_FLAGS = {
    "--frames": ("num_frames", int), "--height": ("height", int), "--width": ("width", int),
    "--keyframe-steps": ("keyframe_steps", int), "--keyframe-guidance": ("keyframe_guidance", float),
    "--interp-steps": ("interp_steps", int), "--interp-guidance": ("interp_guidance", float),
    "--if-ii-steps": ("if_ii_steps", int), "--sr1-steps": ("sr1_steps", int),
    "--sr1-guidance": ("sr1_guidance", float), "--sr1-scale": ("sr1_scale", int),
    "--sr2-steps": ("sr2_steps", int), "--sr2-height": ("sr2_height", int), "--sr2-width": ("sr2_width", int),
    "--strength": ("sr2_strength", float), "--sr2-guidance": ("sr2_guidance", float),
}
FLAG_OF = {setting: flag for flag, (setting, _) in SETTING_FLAGS.items()}
STAGE_OUTPUTS = {"base_video": KEYFRAME_FPS, "interp_video": INTERPOLATED_FPS, "sr1_video": INTERPOLATED_FPS,
                 "sr2_video": INTERPOLATED_FPS}
OOM_LEVERS = ("use --offload window, fewer --frames, smaller sizes, --dtype bf16/fp16 on a GPU, or --t5-device cpu")


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


# --- checks before any work ----------------------------------------------------------------------

def check_device(flag: str, value: str) -> torch.device:
    """A device torch knows and this machine has."""
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise InputError(f"{flag}: {value!r} is not a device; use auto, cpu, cuda, cuda:1, mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{flag}: {value!r}, but this machine has no CUDA GPU usable by torch "
                             f"{torch.__version__}; use {flag} cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"{flag}: {value!r}, but there are {torch.cuda.device_count()} CUDA device(s); use "
                             f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"{flag}: 'mps' is not available here; use {flag} cpu (or auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"{flag}: {value!r} is not a device this pack runs on; use auto, cpu, cuda or mps")
    return device


def check_writable_file(flag: str, path: Path, suffix: str) -> None:
    if path.is_dir():
        raise InputError(f"{flag}: {path} is a folder; give a file name, e.g. {path / ('show1' + suffix)}")
    if path.suffix.lower() != suffix:
        raise InputError(f"{flag}: {str(path)!r} is not a {suffix} file; the CLI writes H.264 {suffix} videos (name it "
                         f"{path.with_suffix(suffix).name})")
    check_writable_folder(flag, path.parent, what=f"the folder of {path.name}")


def check_writable_folder(flag: str, folder: Path, what: str = "the folder") -> None:
    """`folder` exists as a writable folder, or can be made (its nearest existing ancestor is one)."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{flag}: {what} cannot be made: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: {what} is not writable ({existing} is read-only for this user); choose a folder "
                         "you can write to")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as e:
        raise InputError(f"{flag}: cannot write in {existing} ({e.strerror}); choose another folder") from None


def resolve_models(models: Path | None, force_demo: bool, last: int) -> tuple[dict[StageKind, Path], bool]:
    """Stage folders found under `models`, or the demo weights when no folder is given."""
    needed = [StageKind.BASE, StageKind.INTERPOLATION, StageKind.SR1, StageKind.SR2][: last + 1]
    if models is not None and not force_demo:
        if not models.is_dir():
            raise InputError(f"--models: {models} is not a folder; give the folder that holds the stage folders "
                             "(show-1-base, ...), or leave --models out to run the tiny demo weights")
        found = {k: v[0].folder for k, v in find_stages(models).items()}
        missing = [k for k in needed if k not in found]
        if missing:
            names = ", ".join(STAGE_FOLDERS[k] for k in missing)
            raise InputError(f"--models: {models} has no folder for {names}; download them with `python -m show1_core "
                             f"download --dest {models} --stages {' '.join(k.value for k in missing)}`, choose an "
                             "earlier --last-stage, or leave --models out to run the demo weights")
        return found, all(is_demo_folder(found[k]) for k in needed)
    demo_dir = default_demo_dir()
    if not all(is_current_demo_folder(demo_dir / STAGE_FOLDERS[k]) for k in StageKind):
        write_demo_models(demo_dir)
    print(f"No --models given: running on the tiny built-in DEMO weights in {demo_dir}.\n"
          "These weights are random, so the video is noise; download the real checkpoints with "
          "`python -m show1_core download` for real videos.", file=sys.stderr)
    return {k: demo_dir / STAGE_FOLDERS[k] for k in StageKind}, True


def settings_from(args, demo: bool) -> CascadeSettings:
    settings = CascadeSettings(clean_caption=args.clean_caption)
    if demo:
        settings = settings.replace(**DEMO_SETTINGS)
    given = {setting: getattr(args, flag[2:].replace("-", "_")) for flag, (setting, _) in SETTING_FLAGS.items()}
    return settings.replace(**{k: v for k, v in given.items() if v is not None})


def if_ii_folder(folders: dict, models: Path | None) -> Path | None:
    if StageKind.IF_II in folders:
        return folders[StageKind.IF_II]
    found = find_stages(models).get(StageKind.IF_II, []) if models is not None else []
    return found[0].folder if found else None


def generate(args) -> int:
    # everything that needs no model first, then what the configs say; weights only after both
    rules.SEED.check("--seed", args.seed)
    last = STAGE_ORDER.index(args.last_stage)
    device = check_device("--device", args.device)
    t5_device = check_device("--t5-device", args.t5_device) if args.t5_device else device
    check_writable_file("--out", args.out, ".mp4")
    save_dir = Path(args.save_stages) if args.save_stages else None
    if save_dir is not None:
        if save_dir.exists() and not save_dir.is_dir():
            raise InputError(f"--save-stages: {save_dir} is a file; give a folder for the stage videos")
        check_writable_folder("--save-stages", save_dir)
    folders, demo = resolve_models(args.models, args.demo, last)
    settings = settings_from(args, demo)
    if_ii = if_ii_folder(folders, args.models) if last >= 2 else None
    multiples = {key: size_multiple(folders, kind) for key, kind in (
        ("keyframes", StageKind.BASE), ("interpolation", StageKind.INTERPOLATION), ("sr1", StageKind.SR1))}
    if if_ii is not None:
        multiples["if_ii"] = size_multiple({StageKind.IF_II: if_ii}, StageKind.IF_II)
    if last >= 3:
        multiples["vae"] = vae_size_multiple(folders[StageKind.SR2])
    settings.check(args.last_stage, multiples, FLAG_OF)

    dtype = DTYPES[args.dtype or ("fp16" if device.type == "cuda" else "fp32")]
    if device.type == "cpu":
        tune_cpu_allocator()
    t5_dtype = dtype if t5_device.type != "cpu" or dtype is torch.float32 else torch.bfloat16
    started = time.perf_counter()
    t5 = load_text_encoder(folders[StageKind.BASE], t5_dtype, t5_device)
    t5_embeds = encode_prompt(t5, args.prompt, "", clean_caption=settings.clean_caption)
    del t5  # the largest model of the cascade is needed once per prompt
    offload = torch.device("cpu")
    models = CascadeModels(t5=None, base=load_stage(folders[StageKind.BASE], dtype, offload))
    if last >= 1:
        models.interpolation = load_stage(folders[StageKind.INTERPOLATION], dtype, offload)
    if last >= 2:
        models.sr1 = load_stage(folders[StageKind.SR1], dtype, offload)
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


def size_multiple(folders: dict, kind: StageKind) -> int:
    return inspect_stage(folders[kind]).size_multiple if kind in folders else 1


def download(args) -> int:
    from .download import download_stages

    download_stages(args.dest, args.stages, token=args.token, variant=None if args.full_precision else "fp16")
    return 0


def verify_configs(args) -> int:
    from .verify import verify

    if not args.dir.is_dir():
        raise InputError(f"DIR: {args.dir} is not a folder; give the folder that holds the stage folders")
    reports = verify(args.dir, args.reference)
    for r in reports:
        print(r.line())
    failed = [r for r in reports if r.problems]
    total = sum(r.parameters for r in reports if "@" not in r.name)
    print(f"{len(reports) - len(failed)} of {len(reports)} ok ({total:,} parameters in all)"
          + (f"; {len(failed)} differ" if failed else ""))
    return 1 if failed else 0


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (not the usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m show1_core", description="Show-1 text-to-video, headless.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    g = sub.add_parser("generate", help="run the cascade and write an mp4")
    g.add_argument("--prompt", required=True)
    g.add_argument("--negative-prompt", default="low resolution, blur", help="used by sr2's CLIP guidance")
    g.add_argument("--models", type=Path, help="folder holding the stage folders (show-1-base, ...); without it the "
                                               "tiny demo weights run")
    g.add_argument("--out", type=Path, default=Path("show1.mp4"), help="the .mp4 to write (written whole or not at all)")
    g.add_argument("--seed", type=int, default=345)
    g.add_argument("--last-stage", choices=STAGE_ORDER, default="sr2")
    g.add_argument("--save-stages", metavar="DIR", help="also write every stage's output as an mp4 here")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    g.add_argument("--dtype", choices=sorted(DTYPES), help="default: fp16 on a GPU, fp32 on the CPU")
    g.add_argument("--offload", choices=[o.value for o in Offload], default="stage",
                   help="keep models on the GPU, or offload them between stages / windows")
    g.add_argument("--t5-device", help="run the T5 text encoder here (e.g. cpu) to spare GPU memory")
    g.add_argument("--clean-caption", action="store_true", help="apply DeepFloyd IF's caption cleaning")
    g.add_argument("--demo", action="store_true", help="use the random demo weights even if real ones exist")
    g.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    for flag, (_, kind) in SETTING_FLAGS.items():
        g.add_argument(flag, type=kind)
    g.set_defaults(func=generate)
    d = sub.add_parser("download", help="download the official stage folders from the Hugging Face hub")
    d.add_argument("--dest", type=Path, required=True, help="e.g. ComfyUI/models/show1")
    d.add_argument("--stages", nargs="+", choices=[k.value for k in StageKind], default=[k.value for k in StageKind])
    d.add_argument("--token", help="hub token (IF-II is gated); default: HF_TOKEN or the saved login")
    d.add_argument("--full-precision", action="store_true",
                   help="fetch the default (full-precision) weight files instead of the fp16 variants")
    d.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    d.set_defaults(func=download)
    v = sub.add_parser("verify-configs", help="build every model of hub-layout stage folders from its config on the "
                                              "meta device (no weights) and compare with a reference")
    v.add_argument("dir", type=Path, help="folder holding the stage folders (configs are enough)")
    v.add_argument("--reference", type=Path, help="reference_state_dicts.json: key -> shape and parameter counts of "
                                                  "what the published code builds")
    v.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    v.set_defaults(func=verify_configs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The one error boundary of the CLI: a message line and an exit status for every failure."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return 130
    except Show1Error as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        if is_out_of_memory(e):
            print(f"error: out of memory ({str(e).splitlines()[0][:200]}); {OOM_LEVERS}", file=sys.stderr)
            return 3
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else 'no message'} (an internal "
              "error; run again with --debug for the traceback and report it)", file=sys.stderr)
        return 1
