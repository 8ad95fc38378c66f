"""The same job gives the same bytes whatever else a process holds or did before: the sr2 route
alone, after the whole cascade of another job, and in this test process; and every command that
runs stages computes with MKL pinned (explicit threads, CNR mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

# One script, two histories: "alone" loads only what sr2 needs; "after" loads every model, runs
# another job through the whole cascade, churns the heap with odd-sized buffers of garbage, then
# runs the same sr2 call. Both start as the CLI does (pinned arithmetic, tuned allocator).
SR2_ROUTE = """
import hashlib, json, sys
from pathlib import Path
import numpy as np, torch
from show1_core.process import pin_cpu_arithmetic, tune_cpu_allocator
pin_cpu_arithmetic(); tune_cpu_allocator()
from show1_core.cascade import Prompt, run_cascade
from show1_core.headless import Folders, load_cascade
from show1_core.options import base_settings
from show1_core.precision import Precision
from show1_core.settings import LatentSRSettings
from show1_core.stage import StageKind
from show1_core.stages import sr2_from_frames
from show1_core.text import encode_prompt

root, history = Path(sys.argv[1]), sys.argv[2]
folders = Folders({kind: root / kind.folder for kind in StageKind}, True)
settings = base_settings(True).replace(seed=3)
settings = settings.replace(sr2=settings.sr2.replace(steps=2))
steps = ("sr2",) if history == "alone" else None
models = load_cascade(folders, settings, Precision(), torch.device("cpu"), steps=steps)
if history == "after":
    other = settings.replace(seed=11, keyframes=settings.keyframes.replace(steps=1, num_frames=3))
    run_cascade(models, Prompt("a boat on a lake"), other)
    junk = [torch.full((n * 997 + 13,), float("nan")) for n in range(1, 400)]
    del junk
frames = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (5, 64, 96, 3), dtype=np.uint8))
clip = encode_prompt(models.clip, "a panda eating bamboo", "low resolution, blur")
out = sr2_from_frames(models.stage("sr2"), models.vae, clip, frames, settings.sr2)
print(json.dumps({"sha256": hashlib.sha256(out.numpy().tobytes()).hexdigest(), "shape": list(out.shape)}))
"""


def run_route(demo_root, history: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MKL_", "OMP_"))}
    done = subprocess.run([sys.executable, "-c", SR2_ROUTE, str(demo_root), history], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sr2_gives_the_same_bytes_alone_and_after_the_other_stages(demo_root):
    alone, after = run_route(demo_root, "alone"), run_route(demo_root, "after")
    assert alone["shape"] == [1, 3, 5, 64, 96]
    assert alone["sha256"] == after["sha256"], "sr2 depends on what the process held or did before"


MKL = pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="this torch build computes without Intel MKL")


def mkl_calls(args: list[str], env_extra: dict) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MKL_", "OMP_"))}
    done = subprocess.run([sys.executable, "-m", "show1_core", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**env, **env_extra, "MKL_VERBOSE": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return [line for line in done.stdout.splitlines() if line.startswith("MKL_VERBOSE") and "GEMM" in line]


@MKL
def test_every_command_runs_its_matrix_products_with_pinned_threads_and_cnr(tmp_path, demo_root):
    """MKL's dynamic threading and its alignment-dependent code paths are off in the CLI's commands,
    whatever the caller's environment held."""
    cache = tmp_path / "cache"
    (cache / "show1").mkdir(parents=True)
    (cache / "show1" / "demo-weights").symlink_to(demo_root)
    env = {"XDG_CACHE_HOME": str(cache)}
    tiny = ["--seed", "1", "--keyframe-steps", "1", "--frames", "2"]
    generate = mkl_calls(["generate", "--prompt", "a cat", *tiny, "--last-stage", "keyframes", "--out",
                          str(tmp_path / "a.mp4")], env)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "a cat", "seed": 1, "keyframe_steps": 1, "frames": 2,
                                "last_stage": "keyframes"}) + "\n")
    batch = mkl_calls(["batch", str(jobs), "--out", str(tmp_path / "out")], env)
    for calls in (generate, batch):
        assert calls, "no matrix product went through MKL"
        assert all("CNR:AUTO" in c and "Dyn:0" in c for c in calls), calls[0]


def test_ray_actors_start_with_the_drivers_arithmetic():
    """Each actor's process gets MKL's CNR mode and the driver's thread count before MKL starts."""
    from types import SimpleNamespace

    from show1_core.ray_batch import start_pools

    options = {}

    class Actor:
        def options(self, **kwargs):
            options.update(kwargs)
            return SimpleNamespace(remote=lambda *a: None)

    fake_ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 2.0}, remote=lambda worker: Actor())
    start_pools(fake_ray, SimpleNamespace(device="cpu", threads=3), {}, {"sr2"})
    assert options["runtime_env"]["env_vars"] == {"MKL_CBWR": "AUTO", "OMP_NUM_THREADS": "3",
                                                  "MKL_NUM_THREADS": "3"}
