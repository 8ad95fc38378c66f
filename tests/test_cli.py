"""The README's main job: `python -m show1_core generate` on a fresh machine (demo weights), and the
video writer it uses."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from show1_core.video import read_mp4, write_mp4


def test_generate_without_weights_runs_the_demo_and_writes_a_playable_mp4(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = tmp_path / "out" / "video.mp4"
    cmd = [sys.executable, "-m", "show1_core", "generate", "--prompt", "a panda eating bamboo",
           "--out", str(out), "--save-stages", str(tmp_path / "stages"),
           "--keyframe-steps", "2", "--interp-steps", "2", "--if-ii-steps", "2", "--sr1-steps", "2",
           "--sr2-steps", "3"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "DEMO weights" in done.stderr and "the video is noise" in done.stderr
    assert "wrote" in done.stdout and "demo weights" in done.stdout
    frames = read_mp4(out)
    assert frames.shape == (29, 64, 96, 3)  # 8 keyframes -> 29 frames; demo size 96x64
    assert frames.std() > 1, "the decoded frames should not be blank"
    for name, count in (("base_video", 8), ("interp_video", 29), ("sr1_video", 29), ("sr2_video", 29)):
        assert read_mp4(tmp_path / "stages" / f"{name}.mp4").shape[0] == count
    assert (tmp_path / "cache" / "show1" / "demo-weights" / "show-1-base" / "model_index.json").is_file()


def test_missing_stage_folders_are_named(tmp_path, demo_root):
    models = tmp_path / "models"
    models.mkdir()
    os.symlink(demo_root / "show-1-base", models / "show-1-base")
    done = subprocess.run([sys.executable, "-m", "show1_core", "generate", "--prompt", "x", "--models", str(models),
                           "--out", str(tmp_path / "v.mp4")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "no folder for show-1-interpolation, show-1-sr1, show-1-sr2" in done.stderr
    assert "python -m show1_core download" in done.stderr
    assert not (tmp_path / "v.mp4").exists()


def test_writer_leaves_nothing_behind_on_failure(tmp_path):
    good = np.zeros((2, 16, 16, 3), np.uint8)
    write_mp4(tmp_path / "ok.mp4", good, 8)
    assert read_mp4(tmp_path / "ok.mp4").shape == (2, 16, 16, 3)

    class Broken(np.ndarray):
        def __iter__(self):
            yield self.view(np.ndarray)[0]
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_mp4(tmp_path / "broken.mp4", good.view(Broken), 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.mp4"]


def test_odd_sizes_are_padded_for_h264(tmp_path):
    write_mp4(tmp_path / "odd.mp4", np.full((3, 15, 21, 3), 128, np.uint8), 7.5)
    assert read_mp4(tmp_path / "odd.mp4").shape == (3, 16, 22, 3)
