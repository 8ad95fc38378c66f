"""Storyboards: with the UNet's text input recorded, every frame of every stage is conditioned on the
text the rules of `show1_core.storyboard` give it, for 2, 3 and 8 keyframes and for windows that
straddle shots; a mismatch is a named error before any work; one prompt is no storyboard."""

from __future__ import annotations

import pytest
import torch

from show1_core.errors import InputError
from show1_core.sampling import windows
from show1_core.settings import (
    InterpolationSettings,
    KeyframeSettings,
    LatentInterpolationSettings,
    LatentSRSettings,
    SR1Settings,
)
from show1_core.stage import StageKind
from show1_core.stages import (
    generate_keyframes,
    interpolate_keyframes,
    interpolate_latents,
    latent_video_to_video,
    super_resolve_pixels,
)
from show1_core.storyboard import nearest_shots, split_lines, transition_weights
from show1_core.text import PromptEmbeddings, encode_prompt

SHOTS = (2, 3, 8)


def prompts(k: int) -> list[str]:
    return [f"shot {i}: a {['cat', 'dog', 'boat', 'tree', 'car', 'bird', 'lamp', 'cup'][i]} at dawn" for i in range(k)]


class TextSpy:
    """Records what a UNet is conditioned on: the text given to `prepare_text` (per frame for a
    storyboard) and, per call, the context of every row and frame of the batch."""

    def __init__(self, unet):
        self.unet, self.prepared, self.calls = unet, [], []
        real_prepare, real_forward = unet.prepare_text, unet.forward

        def prepare(states):
            self.prepared.append(states.detach().clone())
            return real_prepare(states)

        def forward(sample, timestep, encoder_hidden_states=None, class_labels=None, text=None):
            self.calls.append((tuple(sample.shape), text.context.detach().clone() if text is not None else None))
            return real_forward(sample, timestep, encoder_hidden_states, class_labels, text)

        unet.prepare_text, unet.forward = prepare, forward

    @property
    def texts(self) -> list[torch.Tensor]:
        """The per-frame texts given to the UNet (not the flattened rows it works them out with)."""
        return [t for t in self.prepared if t.dim() == 4]

    def close(self):
        del self.unet.prepare_text, self.unet.forward


@pytest.fixture(scope="module")
def t5_boards(demo):
    return {k: encode_prompt(demo["t5"], prompts(k)) for k in SHOTS}


@pytest.fixture(scope="module")
def clip_boards(demo):
    return {k: encode_prompt(demo["clip"], prompts(k), "low resolution, blur") for k in SHOTS}


def spy(demo, kind):
    return TextSpy(demo[kind].unet)


def keyframe_video(k, h=16, w=24):
    return torch.rand(1, 3, k, h, w, generator=torch.Generator().manual_seed(k)) * 2 - 1


def test_a_storyboard_encodes_one_embedding_per_shot_and_one_negative(demo, t5_boards):
    single = encode_prompt(demo["t5"], prompts(3)[1])
    board = t5_boards[3]
    assert board.shots == 3 and board.negative.shape[0] == 1
    assert torch.allclose(board.positive[1], single.positive[0], atol=1e-5)


@pytest.mark.parametrize("k", SHOTS)
def test_keyframe_i_is_conditioned_on_prompt_i(demo, t5_boards, k):
    board = t5_boards[k]
    recorder = spy(demo, StageKind.BASE)
    try:
        generate_keyframes(demo[StageKind.BASE], board, KeyframeSettings(num_frames=k, height=16, width=16, steps=1))
    finally:
        recorder.close()
    text = recorder.texts[-1]
    assert text.shape[:2] == (2, k)
    for f in range(k):
        assert torch.equal(text[0, f], board.negative[0]) and torch.equal(text[1, f], board.positive[f])
    for shape, context in recorder.calls:  # every frame of the batch attends to its own text
        assert context.shape[:2] == (shape[0], k)


@pytest.mark.parametrize("k", SHOTS)
def test_interpolated_frames_move_from_one_shots_prompt_to_the_next(demo, t5_boards, k):
    board = t5_boards[k]
    recorder = spy(demo, StageKind.INTERPOLATION)
    try:
        interpolate_keyframes(demo[StageKind.INTERPOLATION], board, keyframe_video(k),
                              InterpolationSettings(steps=1, max_windows=2))  # windows in chunks of two
    finally:
        recorder.close()
    text = recorder.texts[-1]
    assert text.shape[:2] == (k, 5)  # the negative, then one row per window
    for i in range(k - 1):
        for j, (a, w) in enumerate(transition_weights(5, [0.0, 4.0])):
            expected = board.positive[i] * (1 - w) + board.positive[i + 1] * w if w else board.positive[i + a]
            assert torch.allclose(text[1 + i, j], expected, atol=1e-6), (i, j)
    prepared = demo[StageKind.INTERPOLATION].unet.prepare_text(text).context
    seen = []
    for shape, context in recorder.calls:  # guided: the negative rows, then each window's own rows
        positives = context[shape[0] // 2:]
        seen += [next(i for i in range(k - 1) if torch.equal(c, prepared[1 + i])) for c in positives]
    assert seen == list(range(k - 1))


def sr1_frames(k):
    return 4 * k - 3  # what pixel interpolation makes of k keyframes


@pytest.mark.parametrize("k", SHOTS)
def test_sr1_gives_every_frame_its_shots_prompt_across_window_boundaries(demo, t5_boards, k):
    board, frames = t5_boards[k], sr1_frames(k)
    video = torch.rand(1, 3, frames, 8, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    recorder = spy(demo, StageKind.SR1)
    settings = SR1Settings(scale=2, steps=1, window=4, stride=3)
    try:
        super_resolve_pixels(demo[StageKind.SR1], board, video, settings)
    finally:
        recorder.close()
    shots, parts = nearest_shots(frames, k), windows(frames, 4, 3)
    assert len(recorder.texts) == len(parts)
    assert any(len({shots[f] for f in range(p.start, p.stop)}) > 1 for p in parts), "a window straddles two shots"
    for part, text in zip(parts, recorder.texts):
        for j, f in enumerate(range(part.start, part.stop)):
            assert torch.equal(text[1, j], board.positive[shots[f]]), (part, f)


@pytest.mark.parametrize("k", SHOTS)
def test_sr2_gives_every_frame_its_shots_prompt(demo, clip_boards, k):
    board, frames = clip_boards[k], sr1_frames(k)
    latents = torch.randn(1, 4, frames, 8, 12, generator=torch.Generator().manual_seed(1))
    recorder = spy(demo, StageKind.SR2)
    try:
        latent_video_to_video(demo[StageKind.SR2], board, latents, LatentSRSettings(steps=2, strength=0.5))
    finally:
        recorder.close()
    text, shots = recorder.texts[-1], nearest_shots(frames, k)
    assert text.shape[:2] == (2, frames)
    assert all(torch.equal(text[1, f], board.positive[shots[f]]) for f in range(frames))
    assert shots[0] == 0 and shots[-1] == k - 1 and shots[4] == 1 and shots[2] == 0  # halfway: the earlier shot


@pytest.mark.parametrize("k", SHOTS)
def test_the_latent_interpolator_blends_between_shots_in_every_window(demo, clip_boards, k):
    board = clip_boards[k]
    keyframes = torch.randn(1, 4, k, 8, 12, generator=torch.Generator().manual_seed(2))
    settings = LatentInterpolationSettings(frames_between=3, steps=1, window=6, overlap=2)
    recorder = spy(demo, StageKind.SR2)
    try:
        interpolate_latents(demo[StageKind.SR2], board, keyframes, settings)
    finally:
        recorder.close()
    frames = 4 * k - 3
    text = recorder.texts[-1]
    weights = transition_weights(frames, [4.0 * i for i in range(k)])
    for f, (i, w) in enumerate(weights):
        expected = board.positive[i] * (1 - w) + board.positive[i + 1] * w if w else board.positive[i]
        assert torch.allclose(text[1, f], expected, atol=1e-6), f
    prepared = demo[StageKind.SR2].unet.prepare_text(text).context
    for (shape, context), part in zip(recorder.calls, windows(frames, 6, 4)):  # each window: its frames' text
        assert torch.equal(context[1], prepared[1, part]), part


def test_a_prompt_count_that_does_not_match_the_keyframes_is_named_before_any_work(demo, t5_boards):
    calls = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda m, a: calls.append(1) if type(m).__name__ == "Show1UNet" else None)
    try:
        with pytest.raises(InputError, match=r"^prompt: 3 prompts for 8 keyframes; give one prompt per keyframe"):
            generate_keyframes(demo[StageKind.BASE], t5_boards[3], KeyframeSettings(num_frames=8, height=16,
                                                                                     width=16, steps=1))
        with pytest.raises(InputError, match=r"^prompt: 3 prompts for 2 keyframes"):
            interpolate_keyframes(demo[StageKind.INTERPOLATION], t5_boards[3], keyframe_video(2),
                                  InterpolationSettings(steps=1))
    finally:
        hook.remove()
    assert not calls
    with pytest.raises(InputError, match=r"^prompt: shot 2 of 3 is empty; describe every shot"):
        split_lines("a cat\n\na dog")
    with pytest.raises(InputError, match=r"^prompt: shot 2 of 2 is empty"):
        encode_prompt(demo["t5"], ["a cat", "  "])


def test_one_prompt_is_no_storyboard(demo):
    """A list of one prompt and the prompt itself give the same keyframes, bit for bit."""
    one = encode_prompt(demo["t5"], ["a red car"])
    text = encode_prompt(demo["t5"], "a red car")
    assert isinstance(one, PromptEmbeddings) and one.shots == 1 and torch.equal(one.positive, text.positive)
    settings = KeyframeSettings(num_frames=3, height=16, width=16, steps=1)
    assert torch.equal(generate_keyframes(demo[StageKind.BASE], one, settings),
                       generate_keyframes(demo[StageKind.BASE], text, settings))


@pytest.fixture
def demo_cache(demo_root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "show1").mkdir(parents=True)
    (cache / "show1" / "demo-weights").symlink_to(demo_root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def test_the_cli_takes_a_prompt_per_keyframe(tmp_path, demo_cache, capsys):
    from show1_core import cli

    tiny = ["--keyframe-steps", "1", "--last-stage", "keyframes"]
    out = tmp_path / "board.mp4"
    assert cli.main(["generate", "--prompt", "a cat", "--prompt", "a dog", "--frames", "2", *tiny, "--out",
                     str(out)]) == 0
    assert out.is_file()
    assert cli.main(["generate", "--prompt", "a cat", "--prompt", "a dog", "--frames", "3", *tiny, "--out",
                     str(tmp_path / "no.mp4")]) == 2
    assert "--prompt: 2 prompts for 3 keyframes; give --frames 2" in capsys.readouterr().err
    assert not (tmp_path / "no.mp4").exists()


def test_a_job_takes_a_storyboard(tmp_path, demo_cache, capsys):
    import json

    from show1_core import cli

    jobs = tmp_path / "jobs.jsonl"
    tiny = {"keyframe_steps": 1, "last_stage": "keyframes"}
    jobs.write_text("\n".join(json.dumps(j) for j in (
        {"prompt": ["a cat", "a dog"], "frames": 2, **tiny},
        {"prompt": ["a cat", "a dog", "a cow"], "frames": 2, **tiny},
        {"prompt": ["a cat", ""], "frames": 2, **tiny})) + "\n")
    assert cli.main(["batch", str(jobs), "--out", str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "line 2: field 'prompt': 3 prompts for 2 keyframes" in captured.err
    assert "line 3: field 'prompt': shot 2 of 2 is empty" in captured.err
    record = json.loads((tmp_path / "out" / "job00001.json").read_text())
    assert record["prompt"] == ["a cat", "a dog"] and "jobs: 1 done, 2 failed" in captured.out


def test_the_text_node_makes_a_storyboard_of_its_lines(nodes, loaded):
    encode = nodes["Show1TextEncode"]
    common = dict(text_encoder=loaded["encoders"], negative_prompt="low resolution, blur", pixel_negative_prompt="",
                  clean_caption=False)
    board = encode.run(prompt="a cat\na dog\na cow\n", storyboard=True, **common)[0]
    assert board.prompt == ("a cat", "a dog", "a cow") and board.t5.shots == 3 and board.clip.shots == 3
    single = encode.run(prompt="a cat\na dog", **common)[0]
    assert single.t5.shots == 1 and single.prompt == "a cat\na dog"
    assert "shot 2 of 3 is empty" in encode.validate_inputs(prompt="a cat\n\na cow", storyboard=True, **common)
