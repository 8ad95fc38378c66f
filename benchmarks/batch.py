"""The batch scenario: N jobs as N `generate` runs, as one `batch` on one device, and as one
`batch --ray` on this machine; from the per-stage seconds the cluster throughput of G GPUs with the
best pool sizes, checked against Ray runs whose pools only wait for each stage's measured time.

    python benchmarks/batch.py --jobs 6 --out /tmp/show1-batch [--models DIR]

Every video of the three runs must be byte for byte the same (printed as `same_videos`). The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ["a panda eating bamboo", "a red car on a road at sunset", "waves crashing on a beach",
           "an astronaut riding a horse", "two dogs playing in the snow", "a burning lamborghini on a rainbow"]


def jobs(n: int) -> list[dict]:
    return [{"prompt": PROMPTS[i % len(PROMPTS)], "seed": 100 + i} for i in range(n)]


def flags(job: dict) -> list[str]:
    return ["--prompt", job["prompt"], "--seed", str(job["seed"])]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - start


def best_pools(seconds: dict[str, float], gpus: int) -> dict[str, int]:
    """Actors per stage for `gpus` devices: one each, then every further one to the slowest pool
    (throughput of a pipeline = that of its slowest pool, actors / seconds per job)."""
    pools = {s: 1 for s in seconds}
    for _ in range(gpus - len(pools)):
        slowest = min(pools, key=lambda s: pools[s] / seconds[s])
        pools[slowest] += 1
    return pools


def throughput(seconds: dict[str, float], pools: dict[str, int]) -> float:
    """Videos per hour of a pipeline with these pools."""
    return 3600 * min(pools[s] / seconds[s] for s in seconds)


class Waiting:
    """A stand-in actor: it waits the stage's measured time per job (scaled), and computes nothing."""

    def __init__(self, step, setup):
        self.step, self.wait = step, WAIT[step]

    def run(self, job, state):
        import torch

        time.sleep(self.wait)
        return state.after(self.step, video=torch.zeros(1, 3, 1, 16, 16)), self.wait


WAIT: dict[str, float] = {}


def simulate(seconds: dict[str, float], pools: dict[str, int], n: int, scale: float, out: Path) -> float:
    """Videos per hour (in measured-time units) of a Ray run of `n` jobs through waiting pools."""
    from show1_core import options
    from show1_core.batch import Summary, read_jobs
    from show1_core.headless import find_folders
    from show1_core.precision import Precision
    from show1_core.ray_batch import WorkerSetup, init_ray, run_ray

    WAIT.clear()
    WAIT.update({s: t * scale for s, t in seconds.items()})
    path = out / "simulated.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs(n)))
    folders = find_folders(None, False, "sr2")
    todo, _ = read_jobs(path, options.base_settings(True), folders.multiples)
    init_ray(num_cpus=2)
    setup = WorkerSetup(folders, todo[0].settings, Precision(), "cpu", "keep", 1)
    finished = []  # when each job left the last pool: the steady rate is measured between the first and last

    def heard(kind, _pools, info):
        if info["step"] == todo[0].steps[-1]:
            finished.append(time.perf_counter())

    run_ray(todo, setup, out / f"simulated-{sum(pools.values())}", pools, None, Summary(), heard, worker=Waiting)
    return 3600 * (len(finished) - 1) / ((finished[-1] - finished[0]) / scale)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("/tmp/show1-batch"))
    ap.add_argument("--models", type=Path)
    ap.add_argument("--simulated-jobs", type=int, default=40)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    models = ["--models", str(args.models)] if args.models else []
    cli = [sys.executable, "-m", "show1_core"]
    job_list = jobs(args.jobs)
    (args.out / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in job_list))
    result = {"jobs": args.jobs}
    (args.out / "generate").mkdir()
    result["generate_seconds"] = round(sum(
        timed([*cli, "generate", *flags(job), *models, "--out", str(args.out / "generate" / f"job{i + 1:05d}.mp4")])
        for i, job in enumerate(job_list)), 1)
    result["batch_seconds"] = round(timed([*cli, "batch", str(args.out / "jobs.jsonl"), *models, "--out",
                                           str(args.out / "batch")]), 1)
    result["batch_ray_seconds"] = round(timed([*cli, "batch", str(args.out / "jobs.jsonl"), *models, "--out",
                                               str(args.out / "ray"), "--ray"]), 1)
    names = sorted(p.name for p in (args.out / "generate").glob("*.mp4"))
    result["same_videos"] = all((args.out / "generate" / n).read_bytes() == (args.out / run / n).read_bytes()
                                for n in names for run in ("batch", "ray"))
    records = [json.loads(p.read_text()) for p in (args.out / "batch").glob("*.json")]
    seconds = {s: statistics.median(r["seconds"][s] for r in records) for s in records[0]["seconds"]}
    result["stage_seconds_per_job"] = {s: round(t, 3) for s, t in seconds.items()}
    result["videos_per_hour"] = {k: round(3600 * args.jobs / result[f"{k}_seconds"], 1)
                                 for k in ("generate", "batch", "batch_ray")}
    result["cluster"] = {}
    for gpus in (5, 8, 16):
        pools = best_pools(seconds, gpus)
        predicted = throughput(seconds, pools)
        simulated = simulate(seconds, pools, args.simulated_jobs, 0.5 / max(seconds.values()), args.out)
        result["cluster"][gpus] = {"pools": pools, "predicted_videos_per_hour": round(predicted, 1),
                                   "simulated_videos_per_hour": round(simulated, 1)}
        print(gpus, json.dumps(result["cluster"][gpus]), file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
