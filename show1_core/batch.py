"""Batches of videos: `python -m show1_core batch JOBS.jsonl --out DIR`.

A JOBS file holds one JSON object per line: a `prompt` (or a storyboard: a list of prompts, one per
keyframe), optionally an `id`, a `negative_prompt`,
`keyframes` (image files that stand in for the keyframe stage) and any of `generate`'s settings by
their option names (`seed`, `frames`, `keyframe_steps`, `last_stage`, ...). Every line is checked
before any work; a bad line is reported with its number, field and fix, and the others still run.

Every finished video is written whole (a temporary file renamed into place) next to a sidecar JSON
(the job, the resolved settings, library versions, seconds per stage) that marks it finished, so
running the same file again skips what is done, and an interrupted run leaves no partial file.
Jobs run through the same steps as `generate`, so the same job gives the same video; on one device
(`run_local`) every stage's models load once for the whole batch; `ray_batch` runs the stages as
pools of Ray actors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import options
from .cascade import PUBLISHED_NEGATIVE, CascadeModels, CascadeState, Prompt, run_step
from .context import RunContext
from .errors import InputError, Show1Error
from .frames import fit, uint8_to_video
from .headless import write_video
from .memory import is_out_of_memory
from .options import CascadeSettings
from .storyboard import validate_prompts

JOB_FIELDS = {"id", "prompt", "negative_prompt", "keyframes"}
ID_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class Job:
    """One line of a JOBS file, checked."""

    line: int
    id: str
    prompt: Prompt
    settings: CascadeSettings
    raw: dict
    keyframes: tuple[str, ...] = ()

    def video(self, out: Path) -> Path:
        return out / f"{self.id}.mp4"

    def sidecar(self, out: Path) -> Path:
        return out / f"{self.id}.json"

    def finished(self, out: Path) -> bool:
        """A video and its sidecar, written for exactly this job."""
        try:
            record = json.loads(self.sidecar(out).read_text())
        except (OSError, ValueError):
            return False
        return self.video(out).is_file() and record.get("job") == self.raw

    @property
    def steps(self) -> tuple[str, ...]:
        steps = self.settings.steps()
        return tuple(s for s in steps if s != "keyframes") if self.keyframes else steps


@dataclass
class BadLine:
    line: int
    message: str


def read_jobs(path: Path, base: CascadeSettings, multiples: Callable[[CascadeSettings], dict[str, int]]
              ) -> tuple[list[Job], list[BadLine]]:
    """Every line of a JOBS file, checked before any work: good jobs, and bad lines with why."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"JOBS: cannot read {path} ({e.strerror}); give a JSON-lines file") from None
    except UnicodeDecodeError as e:
        raise InputError(f"JOBS: {path} is not UTF-8 text (byte {e.start} is {e.object[e.start:e.start + 1]!r}); save it "
                         "as UTF-8 JSON lines") from None
    jobs, bad, ids = [], [], {}
    for number, text in enumerate(lines, 1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            job = parse_job(number, text, base, multiples, path.parent)
            if job.id in ids:
                raise InputError(f"id: {job.id!r} is also the id of line {ids[job.id]}; give every job its own id")
            ids[job.id] = number
            jobs.append(job)
        except Show1Error as e:
            bad.append(BadLine(number, f"{path.name} line {number}: {e}"))
    return jobs, bad


def parse_job(number: int, text: str, base: CascadeSettings, multiples, folder: Path) -> Job:
    try:
        raw = json.loads(text)
    except ValueError as e:
        raise InputError(f"not a JSON object ({e.msg}); write one object per line, e.g. "
                         '{"prompt": "a panda eating bamboo", "seed": 1}') from None
    if not isinstance(raw, dict):
        raise InputError(f"a JSON {type(raw).__name__}, not an object; write one object per line")
    unknown = sorted(set(raw) - JOB_FIELDS - set(options.OPTIONS))
    if unknown:
        raise InputError(f"field {unknown[0]!r}: not a job field; use prompt, id, negative_prompt, keyframes or one "
                         f"of generate's settings ({', '.join(sorted(options.OPTIONS))})")
    prompt = raw.get("prompt")
    if isinstance(prompt, list) and len(prompt) > 1:  # a storyboard: a prompt per keyframe
        prompt = tuple(validate_prompts(prompt, "field 'prompt'"))
        if settings_frames(raw, base) != len(prompt) and not raw.get("keyframes"):
            raise InputError(f"field 'prompt': {len(prompt)} prompts for {settings_frames(raw, base)} keyframes; give "
                             f"\"frames\": {len(prompt)}, or one prompt per keyframe")
    elif isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, (str, tuple)) or (isinstance(prompt, str) and not prompt.strip()):
        raise InputError("field 'prompt': missing or not text; give the prompt as a string, or a storyboard as a "
                         "list of strings (one per keyframe)")
    negative = raw.get("negative_prompt", PUBLISHED_NEGATIVE)
    if not isinstance(negative, str):
        raise InputError("field 'negative_prompt': not text; give it as a string")
    job_id = raw.get("id", f"job{number:05d}")
    if not isinstance(job_id, str) or not job_id or not set(job_id) <= ID_CHARACTERS or job_id.startswith("."):
        raise InputError(f"field 'id': {job_id!r} is not a file name of letters, digits, '-', '_' and '.'")
    keyframes = raw.get("keyframes", [])
    if not isinstance(keyframes, list) or not all(isinstance(k, str) for k in keyframes):
        raise InputError("field 'keyframes': give a list of image files")
    paths = tuple(str(Path(k) if Path(k).is_absolute() else folder / k) for k in keyframes)
    for k in paths:
        if not Path(k).is_file():
            raise InputError(f"field 'keyframes': {k} is not a file; give image files (paths relative to the JOBS "
                             "file's folder)")
        require_image(k)
    values = {k: v for k, v in raw.items() if k in options.OPTIONS}
    settings = options.apply(base, values, "field")
    if paths:
        settings = settings.replace(keyframes=settings.keyframes.replace(num_frames=len(paths)))
        if settings.last_stage == "keyframes":
            raise InputError("field 'last_stage': keyframes, but the job gives its keyframes; stop at interpolation "
                             "or later")
    settings.validate(options.namer("field"), multiples(settings))
    return Job(number, job_id, Prompt(prompt, negative), settings, raw, paths)


def require_image(path: str) -> None:
    """A keyframe file that is an image Pillow can read, checked before any work."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(f"field 'keyframes': {path} is not an image that can be read ({type(e).__name__}); give PNG "
                         "or JPEG files") from None


def settings_frames(raw: dict, base: CascadeSettings) -> int:
    frames = raw.get("frames", base.keyframes.num_frames)
    return frames if isinstance(frames, int) else base.keyframes.num_frames


def given_keyframes(job: Job) -> torch.Tensor:
    """The job's keyframe images, fitted to the keyframe size: (1, 3, K, H, W) in [-1, 1]."""
    import numpy as np
    from PIL import Image

    kf = job.settings.keyframes
    frames = []
    for path in job.keyframes:
        with Image.open(path) as image:
            frames.append(fit(uint8_to_video(np.asarray(image.convert("RGB"))[None]), kf.height, kf.width, "crop"))
    return torch.cat(frames, dim=2)


def start_state(job: Job) -> CascadeState:
    state = CascadeState(job.prompt)
    if job.keyframes:
        state = state.after("keyframes", video=given_keyframes(job))
    return state


def versions() -> dict:
    import diffusers
    import transformers

    return {"show1": pack_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def pack_version() -> str:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    for line in pyproject.read_text().splitlines() if pyproject.is_file() else []:
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "unknown"


def write_result(job: Job, video: torch.Tensor, seconds: dict[str, float], out: Path, demo: bool) -> Path:
    """The video, then its sidecar, each written whole: the sidecar says the job is finished."""
    path = write_video(job.video(out), video, job.settings.output_fps)
    _, _, frames, h, w = video.shape
    record = {"job": job.raw, "line": job.line, "id": job.id, "video": path.name,
              "settings": dataclasses.asdict(job.settings), "seed": job.settings.seed,
              "prompt": job.prompt.text, "negative_prompt": job.prompt.negative,
              "frames": frames, "width": w, "height": h, "fps": job.settings.output_fps,
              "seconds": {k: round(v, 3) for k, v in seconds.items()}, "versions": versions(), "demo_weights": demo,
              "video_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    tmp = job.sidecar(out).with_name(f".{job.id}.json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, job.sidecar(out))
    return path


@dataclass
class Summary:
    """What a batch did: jobs done, failed (with why) and skipped, and how busy each stage was."""

    done: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    busy: dict[str, float] = field(default_factory=dict)  # stage -> seconds its workers computed
    workers: dict[str, int] = field(default_factory=dict)  # stage -> workers in its pool
    seconds: float = 0.0

    def table(self) -> str:
        hours = self.seconds / 3600 or 1e-9
        rows = [f"jobs: {self.done} done, {len(self.failed)} failed, {self.skipped} skipped in {self.seconds:.1f} s "
                f"({self.done / hours:.1f} videos per hour)"]
        for stage, busy in self.busy.items():
            workers = self.workers.get(stage, 1)
            share = busy / (self.seconds * workers) if self.seconds else 0.0
            rows.append(f"  {stage:<14} {workers} worker(s), busy {busy:8.1f} s ({share:5.1%} of their time)")
        rows += [f"  failed: {f}" for f in self.failed]
        return "\n".join(rows)


class Progress:
    """One bar over the jobs, its text showing each stage's throughput so far."""

    def __init__(self, total: int, summary: Summary):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="videos", unit="video", dynamic_ncols=True)
        self.summary, self.counts = summary, {}

    def stage_done(self, stage: str, seconds: float) -> None:
        self.summary.busy[stage] = self.summary.busy.get(stage, 0.0) + seconds
        self.counts[stage] = self.counts.get(stage, 0) + 1
        self.bar.set_postfix_str(" ".join(f"{s} {self.counts[s] / max(self.summary.busy[s], 1e-9) * 3600:.0f}/h"
                                          for s in self.counts), refresh=True)

    def job_done(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def failure(job: Job, error: BaseException) -> str:
    if isinstance(error, Show1Error):
        why = str(error)
    elif is_out_of_memory(error):
        why = f"out of memory ({str(error).splitlines()[0][:160]})"
    else:
        why = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else 'no message'}"
    return f"line {job.line} ({job.id}): {why}"


def run_job(models: CascadeModels, job: Job, ctx: RunContext) -> tuple[torch.Tensor, dict[str, float]]:
    """The job through the cascade's steps, as `generate` runs them; seconds per step."""
    state, seconds = start_state(job), {}
    for step in job.steps:
        start = time.perf_counter()
        state = run_step(step, models, state, job.settings, ctx)
        seconds[step] = time.perf_counter() - start
    return state.video, seconds


def run_local(jobs: list[Job], models: CascadeModels, out: Path, ctx: RunContext, demo: bool,
              summary: Summary) -> Summary:
    """Every job on one device, one after the other, with models loaded once."""
    progress = Progress(len(jobs), summary)
    started = time.perf_counter()
    try:
        for job in jobs:
            try:
                video, seconds = run_job(models, job, ctx)
                write_result(job, video, seconds, out, demo)
                for step, s in seconds.items():
                    progress.stage_done(step, s)
                summary.done += 1
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # one job's failure is reported; the others still run
                summary.failed.append(failure(job, e))
            progress.job_done()
    finally:
        progress.close()
        summary.seconds = time.perf_counter() - started
    summary.workers = {s: 1 for s in summary.busy}
    return summary


def print_bad_lines(bad: list[BadLine]) -> None:
    for b in bad:
        print(f"error: {b.message}", file=sys.stderr)


def remove_leftovers(jobs: list[Job], out: Path) -> None:
    """Temporary files a killed run left behind (a video or sidecar being written)."""
    for job in jobs:
        for leftover in out.glob(f".{job.id}.*"):
            leftover.unlink(missing_ok=True)
