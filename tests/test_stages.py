"""Stage behaviour on the demo weights: noise reproduction, window coverage, progress and cancel."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from show1_core.cascade import CascadeModels, Prompt, run_cascade
from show1_core.context import RunContext
from show1_core.memory import DevicePlacement, Offload
from show1_core.sampling import windows
from show1_core.options import CascadeSettings
from show1_core.settings import (
    IFIISettings,
    InterpolationSettings,
    KeyframeSettings,
    SR1Settings,
    VAEDecodeSettings,
    VAEEncodeSettings,
)
from show1_core.stage import StageKind
from show1_core.stages import (
    IFIIUpscale,
    generate_keyframes,
    interpolate_keyframes,
    super_resolve_pixels,
    vae_decode,
    vae_encode,
)
from show1_core.text import PromptEmbeddings, encode_prompt


@pytest.fixture(scope="module")
def t5(demo):
    return encode_prompt(demo["t5"], "a red car on a road")


def keyframes(k, h=8, w=12, seed=0):
    return torch.rand(1, 3, k, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def starts(frames):
    return [w.start for w in windows(frames, 8, 7)]


def test_sr1_windows_cover_every_frame_and_keep_the_published_ones():
    assert starts(29) == [0, 7, 14, 21]
    assert starts(30) == [0, 7, 14, 21, 22]
    assert starts(5) == [0]
    for frames in range(1, 70):
        covered = set()
        for w in windows(frames, 8, 7):
            covered.update(range(w.start, min(w.stop, frames)))
        assert covered == set(range(frames)), frames


def test_sr1_leaves_no_black_frames_where_the_published_loop_would(demo, t5):
    video = keyframes(10)
    out = super_resolve_pixels(demo[StageKind.SR1], t5, video, SR1Settings(steps=2, seed=1))
    assert out.shape == (1, 3, 10, 32, 48)
    assert all(out[:, :, f].abs().amax() > 0.01 for f in range(10))


def in_float64(stage, prompt):
    """A double-precision copy, so that batched and per-window runs agree to rounding, not to float32 noise."""
    unet = copy.deepcopy(stage.unet).to(torch.float64)
    text = PromptEmbeddings(prompt.positive.double(), prompt.negative.double(), prompt.encoder)
    unet.compute_dtype = torch.float64
    return dataclasses.replace(stage, unet=unet), text


def test_batched_windows_reproduce_one_call_per_window(demo, t5):
    """Every window of the batch sees the noise the published per-window calls draw."""
    interp, text = in_float64(demo[StageKind.INTERPOLATION], t5)
    kf = keyframes(3).double()
    s = InterpolationSettings(steps=3, seed=7)
    together = interpolate_keyframes(interp, text, kf, s)
    first = interpolate_keyframes(interp, text, kf[:, :, 0:2], s)
    second = interpolate_keyframes(interp, text, kf[:, :, 1:3], s)
    assert together.shape == (1, 3, 9, 8, 12)
    assert torch.allclose(together[:, :, 0:4], first[:, :, 0:4], atol=1e-6)
    assert torch.allclose(together[:, :, 4:9], second, atol=1e-6)
    chunked = interpolate_keyframes(interp, text, kf, s.replace(max_windows=1))
    assert torch.allclose(together, chunked, atol=1e-6)
    other_seed = interpolate_keyframes(interp, text, kf[:, :, 0:2], s.replace(seed=8))
    assert not torch.allclose(other_seed, first, atol=1e-3)


def test_interpolation_batch_is_set_by_the_budget_not_the_keyframe_count(demo, t5, monkeypatch):
    """More keyframes mean more UNet calls, never larger ones: memory stays flat."""
    import show1_core.sampling as sampling

    interp = demo[StageKind.INTERPOLATION]
    per_video = 5 * 8 * 12 * interp.unet.config.block_out_channels[0]
    monkeypatch.setattr(sampling, "activation_budget", lambda device, unet: 4 * per_video)
    batches = []
    hook = interp.unet.register_forward_hook(lambda module, args, kwargs, out: batches.append(args[0].shape[0]),
                                             with_kwargs=True)
    try:
        few = interpolate_keyframes(interp, t5, keyframes(3), InterpolationSettings(steps=1, seed=7))
        few_batches, batches[:] = list(batches), []
        many = interpolate_keyframes(interp, t5, keyframes(9), InterpolationSettings(steps=1, seed=7))
    finally:
        hook.remove()
    assert max(few_batches) == max(batches) == 4  # two windows, guided
    assert sum(few_batches) == 2 * 2 and sum(batches) == 2 * 8  # every window, guided pair, once per step
    assert few.shape[2] == 9 and many.shape[2] == 33
    monkeypatch.undo()
    unbounded = interpolate_keyframes(interp, t5, keyframes(9), InterpolationSettings(steps=1, seed=7))
    # DPM-Solver's first step divides by alpha_t (~0.005 at t = 995), so the UNet's batch-size-dependent
    # rounding (~1e-7) grows to ~1e-4 there
    assert torch.allclose(many, unbounded, atol=1e-3)


def test_keyframes_are_seeded_and_in_range(demo, t5):
    base = demo[StageKind.BASE]
    s = KeyframeSettings(num_frames=3, height=16, width=24, steps=3, seed=5)
    a = generate_keyframes(base, t5, s)
    b = generate_keyframes(base, t5, s)
    c = generate_keyframes(base, t5, s.replace(seed=6))
    assert a.shape == (1, 3, 3, 16, 24) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # dynamic thresholding bounds x0 by 1; DPM-Solver's last step lands on timestep 0, not on x0
    assert 1.0 < a.abs().max() < 1.05


def test_progress_reports_every_step(demo, t5):
    events = []
    generate_keyframes(demo[StageKind.BASE], t5, KeyframeSettings(num_frames=2, height=16, width=16, steps=4), RunContext(on_step=events.append))
    assert [(e.stage, e.step, e.total) for e in events] == [("keyframes", i, 4) for i in range(1, 5)]
    assert events[-1].preview.shape == (1, 3, 2, 16, 16) and events[-1].fraction == 1.0


def test_sr1_progress_spans_if_ii_and_windows(demo, t5):
    events = []
    super_resolve_pixels(demo[StageKind.SR1], t5, keyframes(9), SR1Settings(steps=2), RunContext(on_step=events.append),
                         IFIIUpscale(demo[StageKind.IF_II], IFIISettings(steps=3)))
    assert [e.step for e in events] == list(range(1, 3 + 2 * 2 + 1)) and events[0].total == 7


class Cancelled(Exception):
    pass


def test_cancel_stops_within_one_step(demo, t5):
    unet = demo[StageKind.BASE].unet
    calls = []
    handle = unet.register_forward_hook(lambda *a: calls.append(1))
    done = []

    def check_cancel():
        if len(done) >= 2:
            raise Cancelled

    try:
        with pytest.raises(Cancelled):
            generate_keyframes(demo[StageKind.BASE], t5, KeyframeSettings(num_frames=2, height=16, width=16, steps=10),
                               RunContext(on_step=done.append, cancel=check_cancel))
    finally:
        handle.remove()
    assert len(calls) == 2


def test_offload_policies_move_models_as_promised():
    class Spy(torch.nn.Linear):
        def __init__(self):
            super().__init__(1, 1)
            self.moves = []

        def to(self, device, *args, **kwargs):
            self.moves.append(str(device))
            return self

    expected = {Offload.KEEP: ["cpu", "cpu", "cpu"], Offload.STAGE: ["cpu", "cpu", "cpu", "meta"],
                Offload.WINDOW: ["cpu", "cpu", "meta", "cpu", "meta", "meta"]}
    for policy, moves in expected.items():
        spy = Spy()
        place = DevicePlacement("cpu", "meta", policy)
        with place.use(spy):  # a stage with two windows
            for _ in range(2):
                with place.use(spy, scope=Offload.WINDOW):
                    pass
        assert spy.moves == moves, policy


def test_a_finished_stage_gives_the_cpu_heap_back():
    """With the CLI's allocator tuning, freed buffers stay in the heap; the end of a stage returns
    them, so one stage's leftovers do not add to the next stage's peak."""
    script = """
import resource, sys, torch
from show1_core.memory import DevicePlacement, Offload
from show1_core.process import tune_cpu_allocator
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
assert tune_cpu_allocator()
place, module = DevicePlacement("cpu", "cpu", Offload.KEEP), torch.nn.Linear(1, 1)
with place.use(module):
    x = torch.ones(64, 2**20)  # 256 MiB
    del x
    kept = rss()
    with place.use(module, scope=Offload.WINDOW):
        pass
    after_window = rss()
print(kept, after_window, rss())
"""
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux's /proc to read the resident set")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    kept, after_window, after_stage = map(float, done.stdout.split())
    assert after_window > kept - 16, "a window's end must not trim (the next window reuses the buffers)"
    assert after_stage < kept - 200


def test_vae_chunks_do_not_change_the_result(demo):
    video = keyframes(5, 32, 48)
    whole = vae_encode(demo["vae"], video, VAEEncodeSettings(frames_per_chunk=8))
    sliced = vae_encode(demo["vae"], video, VAEEncodeSettings(frames_per_chunk=2))
    assert whole.shape == (1, 4, 5, 4, 6) and torch.allclose(whole, sliced, atol=1e-5)
    sampled = vae_encode(demo["vae"], video, VAEEncodeSettings(posterior="sample", seed=3))
    assert torch.equal(sampled, vae_encode(demo["vae"], video, VAEEncodeSettings(posterior="sample", seed=3)))
    assert not torch.equal(sampled, whole)
    decoded = vae_decode(demo["vae"], whole, VAEDecodeSettings(frames_per_chunk=3))
    assert decoded.shape == (1, 3, 5, 32, 48) and torch.allclose(decoded, vae_decode(demo["vae"], whole), atol=1e-5)


def test_cascade_records_every_stage(demo):
    models = CascadeModels({key: demo[kind] for key, kind in (("keyframes", StageKind.BASE), ("interpolation",
                           StageKind.INTERPOLATION), ("sr1", StageKind.SR1), ("if_ii", StageKind.IF_II))}, t5=demo["t5"])
    settings = CascadeSettings(seed=1, last_stage="sr1", keyframes=KeyframeSettings(num_frames=3, height=8, width=12, steps=2),
                               interpolation=InterpolationSettings(steps=2), if_ii=IFIISettings(steps=2),
                               sr1=SR1Settings(steps=2))
    seen = {}
    video = run_cascade(models, Prompt("a boat"), settings,
                        RunContext(record=lambda name, t: seen.__setitem__(name, tuple(t.shape))))
    assert video.shape == (1, 3, 9, 32, 48)
    assert seen["base_video"] == (1, 3, 3, 8, 12) and seen["interp_video"] == (1, 3, 9, 8, 12)
    assert seen["sr1_video"] == (1, 3, 9, 32, 48) and seen["if_ii_first_frame"] == (1, 3, 32, 48)
    assert "sr2_video" not in seen
