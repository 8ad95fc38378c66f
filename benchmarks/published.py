"""The published Show-1 implementation on the same workload, for side-by-side figures.

Runs the published pipelines (the `showone` package of showlab/Show-1, on diffusers 0.19.3 and
transformers 4.29.1, in their own virtual environment) exactly as run_inference.py chains them,
with the spec's sizes, steps, seeds and warm-up; prints one JSON object like bench.py's, with the
fingerprint of every stage's output (`fingerprint.py`), which bench.py --published compares.

    PYTHONPATH=<Show-1 checkout> <venv>/bin/python benchmarks/published.py SPEC MODELS REPEAT
"""
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from diffusers import IFSuperResolutionPipeline, VideoToVideoSDPipeline
from diffusers.utils import randn_tensor
from fingerprint import fingerprint
from PIL import Image
from showone.pipelines import TextToVideoIFInterpPipeline, TextToVideoIFPipeline
from showone.pipelines.pipeline_t2v_base_pixel import tensor2vid
from showone.pipelines.pipeline_t2v_sr_pixel_cond import (
    TextToVideoIFSuperResolutionPipeline_Cond,
)

spec = json.load(open(sys.argv[1]))
root = sys.argv[2]
repeat = int(sys.argv[3])
M = {k: f"{root}/{v['folder']}" for k, v in spec["models"].items() if isinstance(v, dict)}
f32 = torch.float32
base = TextToVideoIFPipeline.from_pretrained(M["text_encoder_and_keyframes"], torch_dtype=f32, variant="fp16")
interp = TextToVideoIFInterpPipeline.from_pretrained(M["interpolation"], torch_dtype=f32, variant="fp16")
ifii = IFSuperResolutionPipeline.from_pretrained(M["if_ii"], text_encoder=None, torch_dtype=f32, variant="fp16")
sr1 = TextToVideoIFSuperResolutionPipeline_Cond.from_pretrained(M["sr1"], torch_dtype=f32)
sr2 = VideoToVideoSDPipeline.from_pretrained(M["sr2"], torch_dtype=f32)
sr2.enable_vae_slicing()
for p in (base, interp, ifii, sr1, sr2):
    p.set_progress_bar_config(disable=True)
calls = {"n": 0}
for p in (base, interp, ifii, sr1, sr2):
    p.unet.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
S = spec["stages"]
seed = spec["seed"]
prompt = spec["prompt"]
prints = {}
def run(steps):
    t = {}
    t0 = time.perf_counter()
    pe, ne = base.encode_prompt(prompt)
    t["text_encode"] = time.perf_counter() - t0
    prints["text_encode"] = fingerprint(pe)
    k = S["keyframes"]
    t0 = time.perf_counter()
    v = base(prompt_embeds=pe, negative_prompt_embeds=ne, num_frames=k["num_frames"], height=k["height"], width=k["width"],
             num_inference_steps=steps["keyframes"], guidance_scale=k["guidance_scale"], generator=torch.manual_seed(seed), output_type="pt").frames
    t["keyframes"] = time.perf_counter() - t0
    prints["keyframes"] = fingerprint(v)
    t0 = time.perf_counter()
    b, c, n, h, w = v.shape
    nn = 3 * (n - 1) + n
    new = torch.zeros((b, c, nn, h, w))
    new[:, :, torch.arange(0, nn, 4)] = v
    init = randn_tensor((b, c, 5, h, w), generator=torch.manual_seed(seed))
    for i in range(n - 1):
        bi = torch.zeros((b, c, 5, h, w))
        bi[:, :, 0] = v[:, :, i]
        bi[:, :, -1] = v[:, :, i + 1]
        bi = interp(pixel_values=bi, prompt_embeds=pe, negative_prompt_embeds=ne, num_frames=5, height=h, width=w,
                    num_inference_steps=steps["interpolation"], guidance_scale=S["interpolation"]["guidance_scale"],
                    generator=torch.manual_seed(seed), output_type="pt", init_noise=init, cond_interpolation=True).frames
        new[:, :, i * 4:i * 4 + 5] = bi
    v = new
    t["interpolation"] = time.perf_counter() - t0
    prints["interpolation"] = fingerprint(v)
    s = S["if_ii_first_frame"]
    t0 = time.perf_counter()
    ff = ifii(image=v[:, :, 0], prompt_embeds=pe, negative_prompt_embeds=ne, height=s["height"], width=s["width"],
              num_inference_steps=steps["if_ii_first_frame"], guidance_scale=s["guidance_scale"], noise_level=s["noise_level"],
              generator=torch.manual_seed(seed), output_type="pt").images.unsqueeze(2)
    t["if_ii_first_frame"] = time.perf_counter() - t0
    prints["if_ii_first_frame"] = fingerprint(ff[:, :, 0])
    s = S["sr1"]
    t0 = time.perf_counter()
    b, c, n, h, w = v.shape
    new = torch.zeros((b, c, n, s["height"], s["width"]))
    for i in range(0, n - s["window_size"] + 1, s["stride"]):
        cond = ff if i == 0 else new[:, :, i:i + 1]
        new[:, :, i:i + s["window_size"]] = sr1(image=v[:, :, i:i + s["window_size"]], prompt_embeds=pe, negative_prompt_embeds=ne,
            first_frame_cond=cond, height=s["height"], width=s["width"], num_inference_steps=steps["sr1"], guidance_scale=s["guidance_scale"],
            noise_level=s["noise_level"], generator=torch.manual_seed(seed), output_type="pt").frames
    v = new
    t["sr1"] = time.perf_counter() - t0
    prints["sr1"] = fingerprint(v)
    s = S["sr2"]
    t0 = time.perf_counter()
    frames = [Image.fromarray(f).resize((s["width"], s["height"])) for f in tensor2vid(v.clone())]
    v = sr2(prompt, negative_prompt=spec["negative_prompt"], video=frames, strength=s["strength"], num_inference_steps=steps["sr2"],
            generator=torch.manual_seed(seed), output_type="pt").frames
    t["sr2"] = time.perf_counter() - t0
    prints["sr2"] = fingerprint(v)
    return t
run(spec["warmup"]["num_inference_steps"])
full = {k: S[k]["num_inference_steps"] for k in S if "num_inference_steps" in S[k]}
runs = [run(full) for _ in range(repeat)]
out = {"implementation": "published (showone + diffusers 0.19.3), measured here",
       "stages": {k: {"seconds": round(statistics.median(r[k] for r in runs), 3), "min": round(min(r[k] for r in runs), 3), "max": round(max(r[k] for r in runs), 3)} for k in runs[0]},
       "cascade_seconds": round(statistics.median(sum(r.values()) for r in runs), 3),
       "cascade_seconds_all": [round(sum(r.values()), 3) for r in runs],
       "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "fingerprints": prints}
print(json.dumps(out))
