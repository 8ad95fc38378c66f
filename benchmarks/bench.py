"""Run the benchmark workload of a spec (../shared/bench/spec.json) through show1_core.

    python benchmarks/bench.py --spec ../shared/bench/spec.json --models ../shared/fixtures/parity/models \
        [--repeat N] [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--stage NAME] [--keyframes K]

Whole-cascade mode runs one untimed warm-up (the spec's warm-up step counts), then `--repeat` timed
cascades, timing every stage with perf_counter around its call (glue included). `--stage` runs one
stage alone on random inputs of the spec's shapes (its own process gives its own peak memory);
`--keyframes` changes the interpolation input's keyframe count in that mode, and `--profile` adds
where that stage's CPU time goes, by kind of operation. The last line printed
is one JSON object: {"stages": {name: {"seconds", "unet_calls", ...}}, "cascade_seconds",
"peak_rss_mib", "peak_vram_mib", ...}.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fingerprint import difference, fingerprint  # noqa: E402

from show1_core.context import RunContext  # noqa: E402
from show1_core.loading import load_stage, load_text_encoder, load_vae  # noqa: E402
from show1_core.memory import Offload, default_placement  # noqa: E402
from show1_core.process import pin_cpu_arithmetic, tune_cpu_allocator  # noqa: E402
from show1_core.precision import COMPUTE_DTYPES as DTYPES  # noqa: E402
from show1_core.precision import Precision
from show1_core.settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    SR1Settings,
    SR2Settings,  # noqa: E402
)
from show1_core.stages import (
    generate_keyframes,
    interpolate_keyframes,
    latent_super_resolve,
    super_resolve_pixels,  # noqa: E402
    upscale_first_frame,
)
from show1_core.text import PromptEmbeddings, encode_prompt  # noqa: E402

PROFILE_KINDS = (  # first match wins; op names of torch's CPU kernels
    ("attention", ("scaled_dot_product", "flash_attention", "bmm", "softmax")),
    ("temporal convolution", ()),  # convolutions whose kernel is (3, 1): see op_kind
    ("convolution", ("convolution", "conv2d", "conv3d")),
    ("linear (feed-forward, projections)", ("addmm", "aten::mm", "linear", "matmul")),
    ("norms", ("group_norm", "layer_norm")),
    ("activations", ("gelu", "silu", "sigmoid")),
    ("copies and layout", ("copy_", "clone", "contiguous", "aten::cat", "permute", "empty", "zeros", "aten::to", "_to_copy")),
    ("elementwise", ("add", "mul", "div", "sub", "clamp", "quantile", "sort", "abs", "exp", "sqrt", "randn")),
)


def op_kind(name: str, shapes: list) -> str:
    if "conv" in name and len(shapes) > 1 and list(shapes[1][-2:]) == [3, 1]:
        return "temporal convolution"
    for kind, keys in PROFILE_KINDS:
        if any(k in name for k in keys):
            return kind
    return "other"


def profile_shares(run) -> dict[str, float]:
    """Self CPU time of the innermost operators of `run()`, grouped by kind, as shares of the total."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    totals: dict[str, float] = {}
    for event in prof.key_averages(group_by_input_shape=True):
        kind = op_kind(event.key, event.input_shapes or [])
        totals[kind] = totals.get(kind, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {k: round(v / whole, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CallCounter:
    """Counts forward calls of the UNets (one guided batch = one call)."""

    def __init__(self, modules):
        self.calls = 0
        for m in modules:
            m.register_forward_hook(self.hook)

    def hook(self, *_):
        self.calls += 1


class Workload:
    def __init__(self, spec: dict, models: Path, device: torch.device, dtype: torch.dtype):
        self.spec, self.device, self.dtype = spec, device, dtype
        folder = {role: models / entry["folder"] for role, entry in spec["models"].items() if isinstance(entry, dict)}
        precision = Precision(dtype)
        self.t5 = load_text_encoder(folder["text_encoder_and_keyframes"], None, device)
        self.base = load_stage(folder["text_encoder_and_keyframes"], precision, device)
        self.interp = load_stage(folder["interpolation"], precision, device)
        self.if_ii = load_stage(folder["if_ii"], precision, device)
        self.sr1 = load_stage(folder["sr1"], precision, device)
        self.sr2 = load_stage(folder["sr2"], precision, device)
        self.vae = load_vae(folder["sr2"], precision, device)
        self.clip = load_text_encoder(folder["sr2"], None, device)
        self.ctx = RunContext(default_placement(device, Offload.KEEP))
        self.counters = {name: CallCounter([stage.unet]) for name, stage in
                         (("keyframes", self.base), ("interpolation", self.interp), ("if_ii_first_frame", self.if_ii),
                          ("sr1", self.sr1), ("sr2", self.sr2))}

    def steps(self, stage: str, warmup: bool) -> int:
        return self.spec["warmup"]["num_inference_steps"][stage] if warmup else \
            self.spec["stages"][stage]["num_inference_steps"]

    def run_stage(self, name: str, inputs: dict, warmup: bool = False):
        s, seed, ctx = self.spec["stages"].get(name, {}), self.spec["seed"], self.ctx
        steps = self.steps(name, warmup) if name != "text_encode" else 0
        if name == "text_encode":
            return {"t5": encode_prompt(self.t5, self.spec["prompt"], "")}
        if name == "keyframes":
            settings = KeyframeSettings(num_frames=s["num_frames"], height=s["height"], width=s["width"], steps=steps, guidance=s["guidance_scale"], seed=seed)
            return {"video": generate_keyframes(self.base, inputs["t5"], settings, ctx)}
        if name == "interpolation":
            settings = InterpolationSettings(steps=steps, guidance=s["guidance_scale"], seed=seed)
            return {"video": interpolate_keyframes(self.interp, inputs["t5"], inputs["video"], settings, ctx)}
        if name == "if_ii_first_frame":
            settings = IFIISettings(steps=steps, guidance=s["guidance_scale"], noise_level=s["noise_level"], seed=seed)
            first = upscale_first_frame(self.if_ii, inputs["t5"], inputs["video"][:, :, 0], settings, ctx)
            return {"first_frame": first, "video": inputs["video"]}
        if name == "sr1":
            settings = SR1Settings(scale=s["height"] // inputs["video"].shape[-2], steps=steps, guidance=s["guidance_scale"],
                                   noise_level=s["noise_level"], seed=seed, window=s["window_size"], stride=s["stride"])
            return {"video": super_resolve_pixels(self.sr1, inputs["t5"], inputs["video"], settings, ctx,
                                                  inputs["first_frame"])}
        if name == "sr2":
            clip = encode_prompt(self.clip, self.spec["prompt"], self.spec["negative_prompt"])
            settings = SR2Settings(strength=s["strength"], steps=steps, guidance=s["guidance_scale"], seed=seed, height=s["height"],
                                   width=s["width"])
            return {"video": latent_super_resolve(self.sr2, self.vae, clip, inputs["video"], settings, ctx)}
        raise ValueError(name)

    def cascade(self, warmup: bool = False) -> tuple[dict[str, float], dict[str, dict]]:
        """Seconds of every stage, and the fingerprint of what it made."""
        times, prints, state = {}, {}, {}
        for name in self.spec["stage_order"]:
            sync(self.device)
            start = time.perf_counter()
            out = self.run_stage(name, state, warmup)
            sync(self.device)
            times[name] = time.perf_counter() - start
            state.update(out)
            made = out.get("first_frame", out.get("video", out.get("t5")))
            prints[name] = fingerprint(made.positive if name == "text_encode" else made)
        return times, prints

    def alone_inputs(self, name: str, keyframes: int | None) -> dict:
        """Random inputs of the spec's shapes for one stage (stage_alone_inputs)."""
        g = torch.Generator().manual_seed(self.spec["stage_alone_inputs"]["input_seed"])
        d = self.t5.width
        t5 = PromptEmbeddings(torch.randn(1, 77, d, generator=g), torch.randn(1, 77, d, generator=g), "t5")

        def video(*shape):
            return torch.rand(shape, generator=g) * 2 - 1

        kf, interp, sr1 = self.spec["stages"]["keyframes"], self.spec["stages"]["interpolation"], self.spec["stages"]["sr1"]
        if name == "interpolation":
            return {"t5": t5, "video": video(1, 3, keyframes or interp["input_frames"], kf["height"], kf["width"])}
        if name in ("if_ii_first_frame", "sr1"):
            inputs = {"t5": t5, "video": video(*sr1["input"]["shape"])}
            if name == "sr1":
                inputs["first_frame"] = video(1, 3, sr1["height"], sr1["width"])
            return inputs
        if name == "sr2":
            return {"video": video(*self.spec["stages"]["sr2"]["input"]["shape"])}
        return {"t5": t5}


FINGERPRINT_TOLERANCE = 0.05  # rounding carried through the chained stages stays far below it


def same_work(ours: dict, published: dict) -> dict:
    """Per stage: the largest fingerprint difference from the published run, and whether it is the same
    work (same shape, differences within rounding)."""
    out = {}
    for name, mine in ours.items():
        theirs = published.get("fingerprints", {}).get(name)
        diff = difference(mine, theirs) if theirs else None
        out[name] = {"max_difference": diff, "same": diff is not None and diff <= FINGERPRINT_TOLERANCE}
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def summary(values: list[float]) -> dict:
    return {"seconds": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--models", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--stage", help="run this stage alone (random inputs) instead of the cascade")
    ap.add_argument("--keyframes", type=int, help="keyframe count of the interpolation input (with --stage)")
    ap.add_argument("--profile", action="store_true", help="with --stage: also profile one more run by kind of op")
    ap.add_argument("--published", type=Path, help="the last JSON line of published.py (same sitting): compare "
                                                    "every stage's output fingerprint with it")
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's malloc as it is (by default the CLI's CPU allocator tuning is applied)")
    args = ap.parse_args()
    pin_cpu_arithmetic()
    tuned = not args.default_allocator and args.device == "cpu" and tune_cpu_allocator()
    spec = json.loads(args.spec.read_text())
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    work = Workload(spec, args.models, device, DTYPES[args.dtype])
    result = {"device": str(device), "dtype": args.dtype, "torch_threads": torch.get_num_threads(),
              "torch": torch.__version__, "python": platform.python_version(), "repeat": args.repeat, "allocator_tuned": tuned,
              "rss_after_loading_mib": round(peak_rss_mib(), 1)}
    names = [args.stage] if args.stage else spec["stage_order"]
    per_stage = {n: [] for n in names}
    calls = {}
    if args.stage:
        inputs = work.alone_inputs(args.stage, args.keyframes)
        work.run_stage(args.stage, inputs, warmup=True)
        for _ in range(args.repeat):
            before = {n: c.calls for n, c in work.counters.items()}
            sync(device)
            start = time.perf_counter()
            out = work.run_stage(args.stage, inputs)
            sync(device)
            per_stage[args.stage].append(time.perf_counter() - start)
            calls = {n: c.calls - before[n] for n, c in work.counters.items()}
        result["output_shape"] = list(out["video"].shape) if "video" in out else None
        if args.keyframes:
            result["keyframes"] = args.keyframes
    else:
        work.cascade(warmup=True)
        totals = []
        for _ in range(args.repeat):
            before = {n: c.calls for n, c in work.counters.items()}
            times, prints = work.cascade()
            totals.append(sum(times.values()))
            for n, t in times.items():
                per_stage[n].append(t)
            calls = {n: c.calls - before[n] for n, c in work.counters.items()}
        result["cascade_seconds"] = round(statistics.median(totals), 3)
        result["cascade_seconds_all"] = [round(t, 3) for t in totals]
        result["fingerprints"] = prints
        if args.published:
            result["same_work_as_published"] = same_work(prints, json.loads(args.published.read_text()))
    result["stages"] = {n: {**summary(v), "unet_calls": calls.get(n, 0)} for n, v in per_stage.items()}
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)
    result["peak_vram_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1) if device.type == "cuda" else None
    if args.stage and args.profile:  # after the peaks: the profiler's own records take memory
        result["profile_self_cpu_share"] = profile_shares(lambda: work.run_stage(args.stage, inputs))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
