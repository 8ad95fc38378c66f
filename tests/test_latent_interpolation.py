"""The latent interpolator: exact anchors, seeds, any keyframe count and gap, seamless windows,
memory set by the window."""

from __future__ import annotations

import pytest
import torch

from show1_core.sampling import WindowedDenoiser, blend_weights, windows
from show1_core.settings import LatentInterpolationSettings as Settings
from show1_core.stage import StageKind
from show1_core.stages import Anchors, interpolate_latents
from show1_core.text import encode_prompt


def frame_windows(frames, window, overlap):
    return windows(frames, window, window - overlap)


@pytest.fixture(scope="module")
def clip(demo):
    return encode_prompt(demo["clip"], "a sailing boat", "blur")


def latent_keyframes(k, seed=0):
    return torch.randn(1, 4, k, 4, 6, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("k,between,anchors,strength", [
    (2, 1, None, 1.0), (3, 4, None, 1.0), (5, 2, None, 0.6), (3, None, [0, 1, 7], 1.0), (4, None, [2, 3, 9, 10], 0.5),
])
def test_anchors_equal_the_keyframes_exactly(demo, clip, k, between, anchors, strength):
    kf = latent_keyframes(k)
    settings = Settings(frames_between=between if between is not None else 7, steps=4, strength=strength, seed=1)
    layout = None if anchors is None else Anchors(tuple(anchors), anchors[-1] + 3)
    out = interpolate_latents(demo[StageKind.SR2], clip, kf, settings, anchors=layout)
    idx = anchors if anchors is not None else list(Anchors.even(k, between).indices)
    frames = (idx[-1] + 1) if anchors is None else anchors[-1] + 3
    assert out.shape == (1, 4, frames, 4, 6)
    assert torch.equal(out[:, :, idx], kf)
    others = [f for f in range(frames) if f not in idx]
    assert all(not torch.allclose(out[:, :, f], kf[:, :, 0]) for f in others)


def test_seeded(demo, clip):
    kf = latent_keyframes(3)
    run = lambda seed: interpolate_latents(demo[StageKind.SR2], clip, kf, Settings(frames_between=3, steps=3,  # noqa
                                                                                  seed=seed))
    a, b, c = run(4), run(4), run(5)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_strength_starts_from_the_time_blend(demo, clip):
    """With a small strength the in-between frames stay close to the linear blend of the anchors."""
    kf = torch.stack([torch.full((4, 4, 6), -1.0), torch.full((4, 4, 6), 1.0)], dim=1)[None]
    gentle = interpolate_latents(demo[StageKind.SR2], clip, kf, Settings(frames_between=3, steps=20, strength=0.05,
                                                                         seed=0, guidance=1.0))
    middle = gentle[:, :, 2].mean()
    assert abs(float(middle)) < 0.3 and float(gentle[:, :, 1].mean()) < float(gentle[:, :, 3].mean())


def test_windows_cover_and_blend_weights_are_positive():
    for frames in range(1, 50):
        parts = frame_windows(frames, 8, 3)
        covered = set()
        for w in parts:
            assert w.stop - w.start <= 8
            covered.update(range(w.start, w.stop))
        assert covered == set(range(frames))
    w = blend_weights(8, 3, 3)
    assert torch.all(w > 0) and w.max() == 1 and torch.all(w[:3].diff() > 0) and torch.all(w[-3:].diff() < 0)


def test_windowed_prediction_is_seamless():
    """Frame-local predictions are unchanged by windowing; window-level disagreements are ramped, not cut."""
    x = torch.randn(1, 4, 30, 2, 2)
    local = WindowedDenoiser(lambda v, t, frames: v * 2 + 1, window=8, overlap=3)
    assert torch.allclose(local(x, 10), x * 2 + 1, atol=1e-6)
    calls = []

    def per_window(v, t, frames):  # each window predicts one constant: its call index
        calls.append(v.shape[2])
        return torch.full_like(v, float(len(calls)))

    blended = WindowedDenoiser(per_window, window=8, overlap=3)(torch.zeros(1, 1, 30, 1, 1), 10)[0, 0, :, 0, 0]
    jumps = blended.diff()
    assert torch.all(jumps >= -1e-6), "the blend must move monotonically from window to window"
    assert jumps.max() <= 0.5 + 1e-6, f"a seam: the prediction jumps by {float(jumps.max())} between frames"
    assert max(calls) == 8


def test_memory_is_set_by_the_window(demo, clip):
    """A long video goes through the UNet in windows: no UNet call sees more than `window` frames."""
    unet = demo[StageKind.SR2].unet
    seen = []
    handle = unet.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    try:
        out = interpolate_latents(demo[StageKind.SR2], clip, latent_keyframes(6),
                                  Settings(frames_between=9, steps=2, window=8, overlap=2))
    finally:
        handle.remove()
    assert out.shape[2] == 51
    assert max(s[2] for s in seen) == 8 and max(s[0] for s in seen) == 2  # frames per call, guidance pair
    assert len(seen) == 2 * len(frame_windows(51, 8, 2))
