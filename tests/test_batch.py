"""Batches: bad lines named and skipped, every video written once with its sidecar, resumable after a
kill, and the same bytes from `generate`, `batch` on one device and `batch --ray` (a local Ray
cluster on the CPU, one actor killed mid-run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from show1_core import cli
from show1_core.registry import CASCADE

TINY = {"frames": 2, "keyframe_steps": 1, "interp_steps": 1, "if_ii_steps": 1, "sr1_steps": 1, "sr2_steps": 2}
JOBS = [{"prompt": f"a panda number {i}", "seed": i, **TINY} for i in range(8)] + [
    {"prompt": "a red car", "seed": 40, "last_stage": "interpolation", "frames": 3, "keyframe_steps": 2,
     "interp_steps": 1, "id": "red-car"},
    {"prompt": "a boat", "negative_prompt": "fog", "seed": 41, **TINY, "sr2_height": 32, "sr2_width": 48},
]


@pytest.fixture(scope="module")
def env(demo_root, tmp_path_factory):
    """The CLI's demo weights are the session's demo folders."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "show1").mkdir()
    (cache / "show1" / "demo-weights").symlink_to(demo_root)
    return {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONUNBUFFERED": "1"}


def write_jobs(path: Path, jobs: list) -> Path:
    path.write_text("".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in jobs))
    return path


def flags_of(job: dict) -> list[str]:
    args = ["--prompt", job["prompt"]]
    if "negative_prompt" in job:
        args += ["--negative-prompt", job["negative_prompt"]]
    for key, value in job.items():
        if key not in ("prompt", "negative_prompt", "id"):
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def cli_run(args: list[str], env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "show1_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def generated(env, tmp_path_factory) -> dict[str, bytes]:
    """Each job's video as `generate` writes it (in this process: the same code, without a start-up)."""
    out = tmp_path_factory.mktemp("generate")
    videos = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
        for line, job in enumerate(JOBS, 1):
            path = out / f"{line}.mp4"
            assert cli.main(["generate", *flags_of(job), "--out", str(path)]) == 0
            videos[job.get("id", f"job{line:05d}")] = path.read_bytes()
    return videos


def sidecars(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def assert_complete(out: Path, generated: dict[str, bytes]) -> None:
    """Every job finished once: its video, byte for byte what generate wrote, and its sidecar; no
    partial file."""
    assert sorted(p.stem for p in out.glob("*.mp4")) == sorted(generated)
    records = sidecars(out)
    assert sorted(records) == sorted(generated)
    for job_id, video in generated.items():
        assert (out / f"{job_id}.mp4").read_bytes() == video, job_id
        assert records[job_id]["video"] == f"{job_id}.mp4"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "a temporary file was left behind"


def test_a_batch_killed_half_way_and_run_again_ends_with_every_video_once(tmp_path, env, generated):
    jobs = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "show1_core", "batch", str(jobs), "--out", str(out)], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while len(list(out.glob("*.json"))) < 4 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(list(out.glob("*.json")))
    assert 4 <= finished < len(JOBS), "the kill came half-way"
    again = cli_run(["batch", str(jobs), "--out", str(out)], env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"jobs: {len(JOBS) - finished} done, 0 failed, {finished} skipped" in again.stdout
    assert_complete(out, generated)
    record = sidecars(out)["red-car"]
    assert record["job"] == JOBS[8] and record["seed"] == 40 and record["settings"]["last_stage"] == "interpolation"
    assert set(record["seconds"]) == {"text", "keyframes", "interpolation"} and record["versions"]["torch"]
    assert record["frames"] == 9 and (record["width"], record["height"]) == (24, 16)
    third = cli_run(["batch", str(jobs), "--out", str(out)], env)
    assert f"jobs: 0 done, 0 failed, {len(JOBS)} skipped" in third.stdout


def test_bad_lines_are_named_before_any_work_and_the_others_run(tmp_path, env):
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"prompt": "a cat", **TINY, "last_stage": "keyframes"},
        "{not json",
        {"prompt": "a dog", "frames": 0},
        {"prompt": "a fish", "colour": "red"},
        {"seed": 3},
        {"prompt": "a cow", "strength": 0.1, "sr2_steps": 5},
        {"prompt": "a hen", "keyframes": ["missing.png"]},
        {"prompt": "a cat again", "id": "../escape"},
    ])
    done = cli_run(["batch", str(jobs), "--out", str(tmp_path / "out")], env)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    for expected in ("line 2: not a JSON object", "line 3: field 'frames': 0 is outside [1, 64]",
                     "line 4: field 'colour': not a job field", "line 5: field 'prompt': missing",
                     "line 6: field 'strength': 0.1 x field 'sr2_steps' 5 leaves no denoising step",
                     "line 7: field 'keyframes':", "line 8: field 'id': '../escape' is not a file name"):
        assert any(expected in e for e in errors), (expected, errors)
    assert "jobs: 1 done, 7 failed, 0 skipped" in done.stdout
    assert [p.name for p in (tmp_path / "out").glob("*.mp4")] == ["job00001.mp4"]


def test_keyframe_images_stand_in_for_the_keyframe_stage(tmp_path, env):
    import numpy as np
    from PIL import Image

    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((30, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    jobs = write_jobs(tmp_path / "jobs.jsonl", [{"prompt": "a hen", "keyframes": ["0.png", "1.png", "2.png"],
                                                 "last_stage": "interpolation", "interp_steps": 1}])
    done = cli_run(["batch", str(jobs), "--out", str(tmp_path / "out")], env)
    assert done.returncode == 0, done.stderr[-2000:]
    record = sidecars(tmp_path / "out")["job00001"]
    assert record["frames"] == 9 and set(record["seconds"]) == {"text", "interpolation"}


ray = pytest.importorskip("ray", reason="Ray is not installed: `pip install .[ray]` (the CI setup installs it)")


def test_on_a_ray_cluster_with_an_actor_killed_every_job_finishes_once(tmp_path, env, generated, monkeypatch):
    """Pools of actors on a local cluster (2 CPUs); the sr1 actor's process is killed after its first
    call: Ray restarts it (reloading its weights), retries its calls, and the videos are still
    byte for byte generate's."""
    from show1_core import options
    from show1_core.batch import Summary, read_jobs
    from show1_core.headless import find_folders
    from show1_core.precision import parse_precision
    from show1_core.ray_batch import WorkerSetup, init_ray, run_ray

    for key in ("XDG_CACHE_HOME",):
        monkeypatch.setenv(key, env[key])
    jobs_file = write_jobs(tmp_path / "jobs.jsonl", JOBS)
    folders = find_folders(None, False, "sr2")
    jobs, bad = read_jobs(jobs_file, options.base_settings(True), folders.multiples)
    assert not bad
    import torch

    setup = WorkerSetup(folders, max(jobs, key=lambda j: CASCADE.index(j.settings.last_stage)).settings, parse_precision("auto"),
                        "cpu", "stage", torch.get_num_threads())
    killed = []

    def kill_sr1_after_its_first_call(kind, pools, info):
        if info["step"] == "sr1" and not killed:
            actor = pools["sr1"][0]
            pid = ray.get(actor.pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    init_ray(num_cpus=2)
    try:
        summary = run_ray(jobs, setup, tmp_path / "out", {"sr1": 1, "sr2": 2}, None, Summary(),
                          kill_sr1_after_its_first_call)
    finally:
        ray.shutdown()
    assert killed and summary.done == len(JOBS) and not summary.failed, summary.table()
    assert summary.workers == {"text": 1, "keyframes": 1, "interpolation": 1, "sr1": 1, "sr2": 2}
    assert_complete(tmp_path / "out", generated)


def test_the_ray_cli_gives_the_same_videos(tmp_path, env, generated):
    jobs = write_jobs(tmp_path / "jobs.jsonl", JOBS[:3])
    done = cli_run(["batch", str(jobs), "--out", str(tmp_path / "out"), "--ray", "--pool", "sr1=2"], env, 900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "jobs: 3 done, 0 failed, 0 skipped" in done.stdout
    assert "sr1            2 worker(s)" in done.stdout
    assert_complete(tmp_path / "out", {k: generated[k] for k in ("job00001", "job00002", "job00003")})


def test_pool_sizes_are_checked(capsys):
    assert cli.main(["batch", "jobs.jsonl", "--out", "x", "--ray", "--pool", "sr3=2"]) == 2
    assert "--pool: 'sr3=2' is not STEP=N" in capsys.readouterr().err


def test_gpu_pools_larger_than_the_cluster_are_refused_before_any_actor_starts():
    """One GPU actor per GPU: five pools on a one-GPU cluster would wait for ever; say so instead."""
    from types import SimpleNamespace

    from show1_core.errors import InputError
    from show1_core.ray_batch import start_pools

    started = []
    fake_ray = SimpleNamespace(cluster_resources=lambda: {"CPU": 16.0, "GPU": 4.0},
                               remote=lambda worker: started.append(worker))
    with pytest.raises(InputError, match=r"^--pool: the stage pools need 6 GPUs \(text 1, keyframes 1, "
                                         r"interpolation 1, sr1 2, sr2 1: one GPU per actor\) but the Ray cluster "
                                         r"has 4; .*without --ray"):
        start_pools(fake_ray, SimpleNamespace(device="cuda"), {"sr1": 2},
                    {"text", "keyframes", "interpolation", "sr1", "sr2"})
    assert not started
