"""What decides memory and batch shapes on a GPU, checked on the CPU: the split of a stage's UNet
calls follows the device, never what happens to be free; free memory is counted as ComfyUI counts
it; per-step constants are made once; a stage's tensors are gone when its placement scope ends;
the models route never collects while a prompt runs."""

from __future__ import annotations

import gc
import weakref
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from show1_core import budget, sampling
from show1_core.context import RunContext
from show1_core.memory import DevicePlacement, Offload
from show1_core.settings import KeyframeSettings, LatentSRSettings
from show1_core.stage import StageKind
from show1_core.stages import generate_keyframes, latent_video_to_video
from show1_core.text import encode_prompt

GIB = 2 ** 30


def fake_cuda(monkeypatch, free: int, total: int = 24 * GIB, reserved: int = 0, active: int = 0) -> list:
    reads = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: reads.append("free") or (free, total))
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device=None: SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda device=None: {
        "reserved_bytes.all.current": reserved, "active_bytes.all.current": active})
    return reads


def test_a_gpu_call_budget_depends_on_the_card_not_on_what_is_free(demo, monkeypatch):
    unet = demo[StageKind.SR1].unet
    cuda = torch.device("cuda")
    budgets = []
    for free in (1 * GIB, 20 * GIB):
        reads = fake_cuda(monkeypatch, free)
        budgets.append(budget.activation_budget(cuda, unet))
        assert not reads
    assert budgets[0] == budgets[1] > budget.CPU_ACTIVATION_ELEMENTS
    fake_cuda(monkeypatch, 1 * GIB, total=48 * GIB)
    assert abs(budget.activation_budget(cuda, unet) - 2 * budgets[0]) <= 1


def test_free_gpu_memory_counts_the_allocators_reserved_but_unused_blocks(monkeypatch):
    fake_cuda(monkeypatch, free=3 * GIB, reserved=5 * GIB, active=2 * GIB)
    assert budget.free_bytes(torch.device("cuda")) == 6 * GIB


@pytest.fixture(scope="module")
def clip(demo):
    return encode_prompt(demo["clip"], "a panda eating bamboo", "low resolution, blur")


def test_a_stage_gives_the_same_result_under_two_free_memory_figures_and_plans_its_calls_once(
        demo, clip, monkeypatch):
    latents = torch.randn(1, 4, 5, 8, 12, generator=torch.Generator().manual_seed(1))
    settings = LatentSRSettings(steps=3, seed=2)
    plans = []
    real = sampling.videos_per_call
    monkeypatch.setattr(sampling, "videos_per_call", lambda *a: plans.append(a) or real(*a))
    outs = []
    for free in (GIB, 64 * GIB):
        monkeypatch.setattr(budget, "free_bytes", lambda device, free=free: free)
        outs.append(latent_video_to_video(demo[StageKind.SR2], clip, latents, settings))
    assert torch.equal(outs[0], outs[1])
    assert len(plans) == 2  # once per stage call, not once per UNet call (3 steps each)


def test_guidance_rows_and_the_timestep_are_made_once_per_step_whatever_the_windows(demo, clip):
    from show1_core.sampling import Denoiser, WindowedDenoiser

    unet = demo[StageKind.SR2].unet
    denoiser = Denoiser(unet, clip.pair(), 7.0, RunContext(), torch.device("cpu"))
    made = []
    real = sampling.guidance_rows
    sampling.guidance_rows = lambda *a: made.append(a) or real(*a)
    try:
        windowed = WindowedDenoiser(denoiser, window=4, overlap=2)
        x = torch.randn(1, 4, 10, 8, 12)
        with torch.inference_mode():
            windowed(x, 900)
            first = denoiser.timestep[1]
            windowed(x, 900)
            assert denoiser.timestep[1] is first
            windowed(x, 800)
    finally:
        sampling.guidance_rows = real
    assert len(made) == 1 and denoiser.timestep[0] == 800


class ScopeSpy(DevicePlacement):
    """A CPU placement that, when a stage's scope ends, reports the bytes of the tensors made inside
    it that are still alive."""

    def __init__(self):
        super().__init__("cpu", "cpu", Offload.STAGE)
        self.left = []

    @contextmanager
    def use(self, module, scope=Offload.STAGE):
        made = []

        class Track(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                made.extend(weakref.ref(t) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
                return out

        with Track():
            yield self.device
        gc.collect()
        alive = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for r in made if (t := r()) is not None}
        self.left.append(sum(alive.values()))


def test_a_stage_leaves_nothing_but_its_result_on_the_device_when_its_scope_ends(demo):
    t5 = encode_prompt(demo["t5"], "a red car")
    spy = ScopeSpy()
    video = generate_keyframes(demo[StageKind.BASE], t5, KeyframeSettings(steps=2, num_frames=3, height=16, width=24),
                               RunContext(spy))
    result = video.numel() * video.element_size()
    assert spy.left and spy.left[-1] <= result + 1024, (spy.left, result)  # the result, and scalars at most


def test_the_models_route_collects_only_when_no_prompt_runs(pack):
    import importlib

    prompt_running = importlib.import_module(f"{pack.__name__}.nodes.routes").prompt_running

    assert prompt_running(SimpleNamespace(prompt_queue=SimpleNamespace(currently_running={1: "p"})))
    assert not prompt_running(SimpleNamespace(prompt_queue=SimpleNamespace(currently_running={})))
    assert prompt_running(SimpleNamespace())  # unknown: never collect
