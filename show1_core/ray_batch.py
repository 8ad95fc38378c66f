"""A batch on a Ray cluster: each step of the cascade is a pool of Ray actors that keep their
stage's weights resident on their own device, and jobs stream from pool to pool.

Ray Core actors, not Ray Data: a job is one video whose five steps differ by two orders of
magnitude in cost, and what matters is per-job isolation (a failing job is reported, the others go
on), exactly-once results that survive a restart (the driver writes each video and its sidecar
whole, after its last step), and per-pool accounting; each call carries one video, which already
fills a device with its windows and guidance batch. An actor whose process dies is restarted by
Ray (its weights reload) and its calls are retried, so every job still finishes, once.
Each actor computes as the driver does (its thread count and MKL's reproducible mode, set before
MKL starts in the actor's process), so every video is bitwise the one `generate` makes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .batch import Job, Progress, Summary, failure, start_state, write_result
from .context import RunContext
from .errors import InputError
from .headless import Folders, cascade_plan, load_cascade
from .memory import default_placement
from .options import CascadeSettings
from .precision import Precision
from .process import pin_cpu_arithmetic, worker_environment
from .registry import CASCADE, STAGES

PYTHON_PACKAGE = Path(__file__).resolve().parent


def require_ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray: Ray is not installed; install the pack's Ray extra (pip install .[ray]) or leave "
                         "--ray out to run on one device") from None
    return ray


@dataclass(frozen=True)
class WorkerSetup:
    """What every actor needs to load its stage's models and run like the driver."""

    folders: Folders
    settings: CascadeSettings
    precision: Precision
    device: str
    offload: str
    threads: int


class StageWorker:
    """One actor of one pool: the models of its step, resident on its device."""

    def __init__(self, step: str, setup: WorkerSetup):
        pin_cpu_arithmetic(setup.threads)
        self.step = step
        device = torch.device(setup.device if setup.device != "cuda" or torch.cuda.is_available() else "cpu")
        self.models = load_cascade(setup.folders, setup.settings, setup.precision, torch.device("cpu"),
                                   steps=(step,), text_weights=setup.precision.text)
        self.ctx = RunContext(default_placement(device, setup.offload))

    def run(self, job: Job, state):
        from .cascade import run_step

        start = time.perf_counter()
        state = run_step(self.step, self.models, state, job.settings, self.ctx)
        return state, time.perf_counter() - start

    def pid(self) -> int:
        import os

        return os.getpid()


def pool_memory(setup: WorkerSetup) -> dict[str, int]:
    """Bytes of weights one actor of each step holds (from the configs; every actor has its own)."""
    plan = cascade_plan(setup.folders, setup.settings, setup.precision, torch.device("cpu"), torch.device("cpu"),
                        setup.precision.text)
    weights = {need.name: need.weights for need in plan.needs}
    return {"text": weights.get("T5", 0), **{spec.step: weights.get(spec.name, 0) + (
        weights.get("IF-II", 0) if spec.key == "sr1" else 0) for spec in STAGES if spec.in_cascade}}


def start_pools(ray, setup: WorkerSetup, sizes: dict[str, int], steps: set[str], worker=StageWorker,
                memory: dict[str, int] | None = None) -> dict[str, list]:
    """One pool per step the jobs need, of `sizes[step]` actors (default one), after checking them
    against the cluster: a GPU per GPU actor, no CPU pool larger than the cluster's CPUs (its actors
    would only wait for each other), and the weights every actor holds within the cluster's memory."""
    gpu = setup.device.startswith("cuda")
    counts = {step: sizes.get(step, 1) for step in ("text", *CASCADE) if step in steps}
    resources = ray.cluster_resources()
    pools = ", ".join(f"{step} {n}" for step, n in counts.items())
    have = int(resources.get("GPU", 0))
    if gpu and sum(counts.values()) > have:
        raise InputError(f"--pool: the stage pools need {sum(counts.values())} GPUs ({pools}: one GPU per actor) but "
                         f"the Ray cluster has {have}; join more machines (ray start --address), use smaller "
                         "pools, or run batch without --ray on one GPU")
    cpus = int(resources.get("CPU", 0))
    if not gpu and cpus and max(counts.values()) > cpus:
        step = max(counts, key=counts.get)
        raise InputError(f"--pool: {step}={counts[step]} actors, but the Ray cluster has {cpus} CPU(s): more actors than "
                         f"CPUs only wait for each other; use --pool {step}={cpus} or fewer, or join more machines")
    if memory is not None and resources.get("memory"):
        need = sum(memory.get(step, 0) * n for step, n in counts.items())
        if need > resources["memory"]:
            gib = 2 ** 30
            raise InputError(f"--pool: the pools ({pools}) hold about {need / gib:.1f} GiB of weights (every actor its "
                             f"own copy) but the Ray cluster has {resources['memory'] / gib:.1f} GiB of memory; use "
                             "smaller pools, --weight-dtype bf16 or fp8_e4m3fn, or join more machines")
    # a GPU actor takes a GPU; CPU actors share the cores (their torch threads are set explicitly)
    actor = ray.remote(worker).options(max_restarts=-1, max_task_retries=-1, num_cpus=0.1, num_gpus=1 if gpu else 0,
                                       runtime_env={"env_vars": worker_environment(setup.threads)})
    return {step: [actor.remote(step, setup) for _ in range(n)] for step, n in counts.items()}


def require_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail within seconds, naming `--ray` and the address, where Ray would retry for many minutes: a
    host that does not resolve, or a port nobody listens on."""
    import socket

    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray: {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, the address `ray start --head` "
                         "prints); leave the address out for a local cluster")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except socket.gaierror:
        raise InputError(f"--ray: the host of {address} does not resolve; check the name, or use the head node's IP "
                         "address") from None
    except OSError as e:
        raise InputError(f"--ray: nothing answers at {address} ({e.strerror or 'timed out'}); start the cluster there "
                         "(ray start --head) or check the address and port") from None


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """Connect to the cluster at `address` (or start a local one) with the pack's library shipped to
    every worker."""
    ray = require_ray()
    if address and not ray.is_initialized():
        require_reachable(address)
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"py_modules": [str(PYTHON_PACKAGE)]}, log_to_driver=False,
                 include_dashboard=False, **({"num_cpus": num_cpus} if num_cpus and not address else {}))
    return ray


def run_ray(jobs: list[Job], setup: WorkerSetup, out: Path, sizes: dict[str, int], address: str | None,
            summary: Summary, on_event=None, worker=StageWorker) -> Summary:
    """Stream the jobs through the pools; write each finished video and its sidecar here, once.
    `on_event(kind, pools, info)` hears of every finished step (tests use it to kill an actor);
    `worker` is the actor class (the benchmark simulates pools with one that only waits)."""
    ray = init_ray(address)
    steps = {s for j in jobs for s in j.steps}
    pools = start_pools(ray, setup, sizes, steps, worker, pool_memory(setup) if worker is StageWorker else None)
    load = {id(a): 0 for pool in pools.values() for a in pool}
    pending = {}  # seconds ref -> (job, step index, state ref, actor)
    seconds_of = {j.id: {} for j in jobs}
    progress = Progress(len(jobs), summary)
    started = time.perf_counter()

    def submit(job: Job, index: int, state) -> None:
        step = job.steps[index]
        actor = min(pools[step], key=lambda a: load[id(a)])
        load[id(actor)] += 1
        state_ref, seconds_ref = actor.run.options(num_returns=2).remote(job, state)
        pending[seconds_ref] = (job, index, state_ref, actor)

    try:
        for job in jobs:
            submit(job, 0, start_state(job))
        while pending:
            [ready], _ = ray.wait(list(pending), num_returns=1)
            job, index, state_ref, actor = pending.pop(ready)
            load[id(actor)] -= 1
            step = job.steps[index]
            try:
                seconds = ray.get(ready)
            except Exception as e:  # the job's own error, raised in the actor
                summary.failed.append(failure(job, getattr(e, "cause", None) or e))
                progress.job_done()
                continue
            seconds_of[job.id][step] = seconds
            progress.stage_done(step, seconds)
            if on_event is not None:
                on_event("step", pools, {"job": job.id, "step": step})
            if index + 1 < len(job.steps):
                submit(job, index + 1, state_ref)
                continue
            try:
                write_result(job, ray.get(state_ref).video, seconds_of[job.id], out, setup.folders.demo)
                summary.done += 1
            except Exception as e:
                summary.failed.append(failure(job, e))
            progress.job_done()
    finally:
        progress.close()
        summary.seconds = time.perf_counter() - started
        summary.workers = {step: len(pool) for step, pool in pools.items()}
        for pool in pools.values():
            for a in pool:
                ray.kill(a, no_restart=True)
    return summary
