"""Command line: `python -m show1_core generate ...` runs the cascade headless and writes an mp4;
`python -m show1_core download ...` fetches the official stage folders (only when asked);
`python -m show1_core verify-configs DIR` proves that hub configs build the published models.

Every input is checked before any weight is loaded (flags, sizes after every stage's resize, the
output paths, the devices), with the flag's own name in the message. Every failure ends in one
line on stderr and a non-zero exit; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from . import options
from .cascade import PUBLISHED_NEGATIVE, Prompt, run_cascade
from .context import RunContext, StepEvent
from .errors import DoesNotFit, InputError, Show1Error
from .headless import (
    find_folders,
    if_ii_note,
    load_cascade,
    require_cascade_fits,
    require_writable_file,
    require_writable_folder,
    write_video,
)
from .memory import Offload, default_placement, empty_cache, is_out_of_memory, parse_device
from .precision import COMPUTE_CHOICES, WEIGHT_CHOICES, parse_precision
from .process import pin_cpu_arithmetic, tune_cpu_allocator
from .registry import CASCADE, STAGES, StageKind
from .storyboard import validate_prompts
from .text import encode_prompt

FLAGS = ("--dtype", "--weight-dtype", "--text-weight-dtype")
OOM_LEVERS = ("use --offload window, fewer --frames, smaller sizes, --weight-dtype fp8_e4m3fn or --dtype bf16/fp16 on "
              "a GPU, or --t5-device cpu")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


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


def generate(args) -> int:
    # everything that needs no model first, then what the configs say; weights only after both
    device = parse_device("--device", args.device)
    t5_device = parse_device("--t5-device", args.t5_device) if args.t5_device is not None else device
    precision = parse_precision(args.dtype, args.weight_dtype, device, FLAGS, args.text_weight_dtype)
    require_writable_file("--out", args.out, ".mp4")
    save_dir = Path(args.save_stages) if args.save_stages else None
    if save_dir is not None:
        if save_dir.exists() and not save_dir.is_dir():
            raise InputError(f"--save-stages: {save_dir} is a file; give a folder for the stage videos")
        require_writable_folder("--save-stages", save_dir)
    given = {name: getattr(args, name) for name in options.OPTIONS if name not in ("clean_caption",)}
    given["clean_caption"] = args.clean_caption or None
    folders = find_folders(args.models, args.demo, given["last_stage"])
    settings = options.apply(options.base_settings(folders.demo), given, "flag")
    settings.validate(options.namer("flag"), folders.multiples(settings))
    folders.require_weights(settings)
    require_cascade_fits(folders, settings, precision, args.offload, device, t5_device)
    if note := if_ii_note(folders, settings):
        warn(note)
    prompt = Prompt(tuple(args.prompt) if len(args.prompt) > 1 else args.prompt[0], args.negative_prompt)
    if len(args.prompt) > 1:  # a storyboard: one prompt per keyframe
        validate_prompts(args.prompt, "--prompt")
        if len(args.prompt) != settings.keyframes.num_frames:
            raise InputError(f"--prompt: {len(args.prompt)} prompts for {settings.keyframes.num_frames} keyframes; give "
                             f"--frames {len(args.prompt)}, or one --prompt per keyframe")

    if device.type == "cpu":
        tune_cpu_allocator()
    started = time.perf_counter()
    ctx = RunContext(on_warning=warn)
    t5_embeds = None
    if settings.runs("keyframes"):
        t5 = load_cascade(folders, settings, precision, t5_device, steps=("text",), text_weights=precision.text).t5
        t5_embeds = encode_prompt(t5, prompt.shots, "", settings.clean_caption, ctx)
        del t5  # the largest model of the cascade is needed once per prompt: its memory goes back now
        empty_cache(t5_device)
    models = load_cascade(folders, settings, precision, torch.device("cpu"), with_t5=False,
                          text_weights=precision.text)
    fps_of = {spec.output: spec.fps for spec in STAGES if spec.output}

    def record(name: str, tensor: torch.Tensor) -> None:
        if save_dir is not None and name in fps_of:
            write_video(save_dir / f"{name}.mp4", tensor, fps_of[name])

    bars = ProgressBars()
    ctx = RunContext(default_placement(device, args.offload), bars, record=record, on_warning=warn)
    try:
        video = run_cascade(models, prompt, settings, ctx, t5_embeds)
    finally:
        bars.close()
    fps = settings.output_fps
    out = write_video(args.out, video, fps)
    _, _, frames, h, w = video.shape
    note = " (demo weights: the video is noise)" if folders.demo else ""
    print(f"wrote {out}: {frames} frames of {w}x{h} at {fps} fps in {time.perf_counter() - started:.1f} s{note}")
    return 0


def batch(args) -> int:
    """Every job of a JOBS file; bad lines are reported and the others run. Exit 1 if any failed."""
    from .batch import Summary, print_bad_lines, read_jobs, remove_leftovers, run_local

    device = parse_device("--device", args.device)
    precision = parse_precision(args.dtype, args.weight_dtype, device, FLAGS, args.text_weight_dtype)
    if args.pool and args.ray is None:
        raise InputError("--pool: sizes the actor pools of --ray, which is not given; add --ray (a local cluster, or "
                         "--ray ADDRESS) or leave --pool out")
    sizes = parse_pools(args.pool)
    if not args.jobs.is_file():
        raise InputError(f"JOBS: {args.jobs} is not a file; give a JSON-lines file of jobs")
    require_writable_folder("--out", args.out)
    jobs, _ = read_jobs(args.jobs, options.base_settings(True), lambda s: {})  # which stages the jobs reach
    last = max((j.settings.last_stage for j in jobs), key=CASCADE.index, default=CASCADE[-1])
    folders = find_folders(args.models, args.demo, last)
    jobs, bad = read_jobs(args.jobs, options.base_settings(folders.demo), folders.multiples)
    print_bad_lines(bad)
    args.out.mkdir(parents=True, exist_ok=True)
    remove_leftovers(jobs, args.out)
    summary = Summary(skipped=sum(j.finished(args.out) for j in jobs))
    todo = [j for j in jobs if not j.finished(args.out)]
    try:
        if todo:
            widest = max(todo, key=lambda j: CASCADE.index(j.settings.last_stage)).settings
            folders.require_weights(widest)
            require_cascade_fits(folders, widest, precision, args.offload, device, device)
            if device.type == "cpu":
                tune_cpu_allocator()
            if args.ray is not None:
                from .ray_batch import WorkerSetup, run_ray

                setup = WorkerSetup(folders, widest, precision, str(device), args.offload, torch.get_num_threads())
                run_ray(todo, setup, args.out, sizes, args.ray or None, summary)
            else:
                steps = tuple(dict.fromkeys(s for j in todo for s in j.steps))
                models = load_cascade(folders, widest, precision, torch.device("cpu"), steps=steps,
                                      text_weights=precision.text)
                ctx = RunContext(default_placement(device, args.offload), on_warning=warn)
                run_local(todo, models, args.out, ctx, folders.demo, summary)
    except KeyboardInterrupt:
        print(f"interrupted: the {summary.done} video(s) finished in this run are kept with their sidecars, nothing "
              "half-written; run the same command again to finish the rest", file=sys.stderr)
        return 130
    summary.failed = [b.message for b in bad] + summary.failed
    print(summary.table())
    return 1 if summary.failed else 0


def parse_pools(specs: list[str]) -> dict[str, int]:
    steps = ("text", *CASCADE)
    sizes = {}
    for spec in specs or []:
        step, _, count = spec.partition("=")
        if step not in steps or not count.isdigit() or int(count) < 1:
            raise InputError(f"--pool: {spec!r} is not STEP=N with STEP one of {', '.join(steps)} and N >= 1; e.g. "
                             "--pool sr1=2 sr2=2")
        sizes[step] = int(count)
    return sizes


def download(args) -> int:
    from .download import download_stages

    require_writable_folder("--dest", args.dest)
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


OPTION_TYPES = {int: int, float: float}


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per cascade option, its help from the settings (the default is the published one)."""
    for name in options.OPTIONS:
        if name in ("last_stage", "clean_caption"):
            continue
        field = options.describe(name)
        kind = float if isinstance(field.default, float) else int
        parser.add_argument(options.flag(name), type=kind, help=f"{field.metadata['help']} Default {field.default}.")


def add_weight_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weight-dtype", choices=WEIGHT_CHOICES, default="default",
                        help="how the UNets (not the text encoders) store their weights: default (as computed), fp16, "
                             "bf16, fp8_e4m3fn or fp8_e5m2 (half or a quarter of the fp32 memory; each layer casts its "
                             "weights as it runs; fp8 saturates at its largest value)")
    parser.add_argument("--text-weight-dtype", choices=WEIGHT_CHOICES, default="default",
                        help="how T5 and CLIP store their weights (they compute in float32): default (as their files "
                             "hold them, fp16 on the hub), fp16, bf16, fp8_e4m3fn or fp8_e5m2 (a quarter of fp32, "
                             "saturated; the embeddings move a little)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m show1_core", description="Show-1 text-to-video, headless.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    g = sub.add_parser("generate", help="run the cascade and write an mp4")
    g.add_argument("--prompt", required=True, action="append",
                   help="what the video shows; repeat it for a storyboard, one prompt per keyframe (see --frames)")
    g.add_argument("--negative-prompt", default=PUBLISHED_NEGATIVE, help="used by sr2's CLIP guidance")
    g.add_argument("--models", type=Path, help="folder holding the stage folders (show-1-base, ...); without it the "
                                               "tiny demo weights run")
    g.add_argument("--out", type=Path, default=Path("show1.mp4"), help="the .mp4 to write (written whole or not at all)")
    g.add_argument("--last-stage", choices=CASCADE, default=CASCADE[-1])
    g.add_argument("--save-stages", metavar="DIR", help="also write every stage's output as an mp4 here")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    g.add_argument("--dtype", choices=COMPUTE_CHOICES, default="auto",
                   help="the arithmetic; auto: bf16 (fp16 where the GPU lacks bf16) on a GPU, fp32 on the CPU")
    add_weight_flags(g)
    g.add_argument("--offload", choices=[o.value for o in Offload], default="stage",
                   help="keep models on the GPU, or offload them between stages / windows")
    g.add_argument("--t5-device", help="run the T5 text encoder here (e.g. cpu) to spare GPU memory")
    g.add_argument("--clean-caption", action="store_true", help="apply DeepFloyd IF's caption cleaning")
    g.add_argument("--demo", action="store_true", help="use the random demo weights even if real ones exist")
    g.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    add_setting_flags(g)
    g.set_defaults(func=generate)
    b = sub.add_parser("batch", help="run every job of a JSON-lines file, resumably (optionally on a Ray cluster)")
    b.add_argument("jobs", type=Path, metavar="JOBS.jsonl", help="one JSON object per line: prompt, and optionally id, "
                   "negative_prompt, keyframes (image files) and any of generate's settings by name (seed, frames, "
                   "keyframe_steps, last_stage, ...)")
    b.add_argument("--out", type=Path, required=True, help="folder of the videos and their sidecar JSON files")
    b.add_argument("--models", type=Path, help="folder holding the stage folders; without it the demo weights run")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (with --ray: each actor's)")
    b.add_argument("--dtype", choices=COMPUTE_CHOICES, default="auto", help="the arithmetic")
    add_weight_flags(b)
    b.add_argument("--offload", choices=[o.value for o in Offload], default="stage",
                   help="where models wait between uses (with --ray each actor keeps its own stage resident)")
    b.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the stages as pools of Ray actors: a local cluster, or the one at ADDRESS (ray start)")
    b.add_argument("--pool", nargs="+", metavar="STEP=N", help="actors per stage with --ray, e.g. sr1=2 sr2=2 "
                   "(steps: text, keyframes, interpolation, sr1, sr2; default one each)")
    b.add_argument("--demo", action="store_true", help="use the random demo weights even if real ones exist")
    b.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    b.set_defaults(func=batch)
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
    pin_cpu_arithmetic()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted: no output written", file=sys.stderr)
        return 130
    except DoesNotFit as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 3
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
