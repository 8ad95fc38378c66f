"""Classes of bad input across batches, clusters, files, types, options and messages: each is named
(the input, the value, the fix) before any work, and no UNet runs for it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from conftest import ROOT

from show1_core import cli, headless
from show1_core.errors import InputError
from show1_core.options import CascadeSettings
from show1_core.precision import Precision
from show1_core.rules import validate_size
from show1_core.settings import KeyframeSettings, SR1Settings
from show1_core.stage import StageKind
from show1_core.stages import generate_keyframes, super_resolve_pixels
from show1_core.text import PromptEmbeddings, encode_prompt
from show1_core.weights import find_weights, stored_dtype


class UNetCalls:
    def __enter__(self):
        self.count = 0
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(self.hit)
        return self

    def hit(self, module, args):
        if type(module).__name__ == "Show1UNet":
            self.count += 1

    def __exit__(self, *exc):
        self.handle.remove()


@pytest.fixture
def env(demo_root, tmp_path):
    cache = tmp_path / "cache"
    (cache / "show1").mkdir(parents=True)
    (cache / "show1" / "demo-weights").symlink_to(demo_root)
    return {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONUNBUFFERED": "1"}


def run(args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "show1_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def jobs_file(path, lines):
    path.write_text("".join((j if isinstance(j, str) else json.dumps(j)) + "\n" for j in lines))
    return path


TINY = {"frames": 2, "keyframe_steps": 1, "last_stage": "keyframes"}


def test_a_batch_names_every_bad_field_of_every_line_and_runs_the_good_ones(tmp_path, env):
    jobs = jobs_file(tmp_path / "jobs.jsonl", [
        {"prompt": "a cat", "last_stage": "sr9"},
        {"prompt": "a dog", "clean_caption": "no", **TINY},
        {"prompt": "a hen", "sr1_scale": 2.5, **TINY},
        {"prompt": "a cow", **TINY},
    ])
    done = run(["batch", str(jobs), "--out", str(tmp_path / "out")], env)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    for expected in ("jobs.jsonl line 1: field 'last_stage': 'sr9' is not one of keyframes, interpolation, sr1, sr2",
                     "jobs.jsonl line 2: field 'clean_caption': 'no' is not a boolean; give true or false",
                     "jobs.jsonl line 3: field 'sr1_scale': 2.5 is not an integer"):
        assert any(expected in e for e in errors), (expected, errors)
    assert "internal error" not in done.stderr
    assert "jobs: 1 done, 3 failed" in done.stdout
    assert [p.name for p in (tmp_path / "out").glob("*.mp4")] == ["job00004.mp4"]


def test_files_that_cannot_be_read_are_named(tmp_path, env):
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_bytes(b'{"prompt": "caf\xe9"}\n')
    done = run(["batch", str(jobs), "--out", str(tmp_path / "out")], env)
    assert done.returncode == 2 and "JOBS: " in done.stderr and "is not UTF-8 text" in done.stderr
    assert "save it as UTF-8" in done.stderr and not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    reference = tmp_path / "reference.json"
    reference.write_text('{"show-1-base/unet": {"parameters": 1, "state_di')
    done = run(["verify-configs", str(ROOT.parent / "shared" / "fixtures" / "hub_configs"), "--reference",
                str(reference)], env)
    assert done.returncode == 2 and "--reference:" in done.stderr and "not valid JSON" in done.stderr
    assert "truncated" in done.stderr and "internal error" not in done.stderr


def test_verify_configs_on_a_folder_without_stages_is_an_error(tmp_path, env):
    (tmp_path / "empty").mkdir()
    done = run(["verify-configs", str(tmp_path / "empty")], env)
    assert done.returncode == 2 and "DIR:" in done.stderr and "holds no stage folder" in done.stderr
    assert "0 of 0 ok" not in done.stdout


needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed: `pip install .[ray]` (the CI setup installs it)")


@needs_ray
@pytest.mark.parametrize("address, why", [("127.0.0.1:1", "nothing answers at 127.0.0.1:1"),
                                          ("no-such-host.invalid:6379", "does not resolve"),
                                          ("headnode", "is not HOST:PORT")])
def test_an_unreachable_ray_cluster_is_named_within_seconds(tmp_path, env, address, why):
    jobs = jobs_file(tmp_path / "jobs.jsonl", [{"prompt": "a cat", **TINY}])
    started = time.monotonic()
    done = run(["batch", str(jobs), "--out", str(tmp_path / "out"), "--ray", address], env, timeout=120)
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr[-2000:]
    assert "--ray: " in done.stderr and why in done.stderr and "internal error" not in done.stderr
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_pools_are_checked_against_the_clusters_cpus_and_memory():
    from show1_core.ray_batch import start_pools

    started = []
    setup = SimpleNamespace(device="cpu", threads=2)

    def cluster(resources):
        return SimpleNamespace(cluster_resources=lambda: resources, remote=lambda worker: started.append(worker))

    with pytest.raises(InputError, match=r"^--pool: sr1=24 actors, but the Ray cluster has 2 CPU\(s\).*--pool sr1=2"):
        start_pools(cluster({"CPU": 2.0}), setup, {"sr1": 24}, {"text", "sr1"})
    with pytest.raises(InputError, match=r"^--pool: the pools \(text 1, sr1 2\) hold about 5.0 GiB of weights .* "
                                         r"has 4.0 GiB of memory"):
        start_pools(cluster({"CPU": 8.0, "memory": 4 * 2 ** 30}), setup, {"sr1": 2}, {"text", "sr1"},
                    memory={"text": 2 ** 30, "sr1": 2 * 2 ** 30})
    assert not started


def test_options_that_would_do_nothing_are_refused_by_name(capsys):
    assert cli.main(["batch", "jobs.jsonl", "--out", "x", "--pool", "sr1=2"]) == 2
    err = capsys.readouterr().err
    assert "--pool: sizes the actor pools of --ray, which is not given; add --ray" in err


def test_loose_types_are_refused(tmp_path, env):
    done = run(["generate", "--prompt", "a cat", "--t5-device", "", "--out", str(tmp_path / "a.mp4")], env)
    assert done.returncode == 2 and "--t5-device: '' is not a device" in done.stderr


def test_the_unet_weight_dtype_leaves_the_text_encoders_as_their_files_store_them(demo_root):
    folders = headless.Folders({k: demo_root / k.folder for k in StageKind}, True)
    settings = CascadeSettings(last_stage="keyframes")
    fp8 = Precision(torch.float32, torch.float8_e4m3fn)
    models = headless.load_cascade(folders, settings, fp8, torch.device("cpu"), text_weights=fp8.text)
    assert models.stage("keyframes").unet.conv_in.weight.dtype == torch.float8_e4m3fn
    stored = stored_dtype(find_weights(demo_root / "show-1-base" / "text_encoder", "transformers")[0])
    assert {p.dtype for p in models.t5.model.parameters()} == {stored}  # as its files hold them
    text_fp8 = headless.load_cascade(folders, settings, fp8, torch.device("cpu"), steps=("text",),
                                     text_weights=torch.float8_e4m3fn)
    assert torch.float8_e4m3fn in {p.dtype for p in text_fp8.t5.model.parameters()}
    helps = {a.dest: a.help for p in cli.build_parser()._subparsers._group_actions[0].choices.values()
             for a in p._actions}
    assert "the UNets (not the text encoders)" in helps["weight_dtype"] and "saturated" in helps["text_weight_dtype"]


def test_weight_files_of_every_stage_that_will_run_are_checked_before_the_first_loads(tmp_path, demo_root,
                                                                                       monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(demo_root, models)
    unet = next((models / "show-1-sr2" / "unet").glob("diffusion_pytorch_model*"))
    unet.write_bytes(unet.read_bytes()[:100])
    loaded = []
    monkeypatch.setattr(headless, "load_stage", lambda *a, **k: loaded.append(a) or pytest.fail("a model loaded"))
    monkeypatch.setattr(headless, "load_text_encoder", lambda *a, **k: pytest.fail("a text encoder loaded"))
    with UNetCalls() as calls:
        status = cli.main(["generate", "--prompt", "a cat", "--models", str(models), "--out", str(tmp_path / "a.mp4")])
    assert status == 2 and not loaded and calls.count == 0
    assert not (tmp_path / "a.mp4").exists()


def test_embeddings_of_the_wrong_encoder_are_refused_by_their_encoder_not_their_width(demo):
    t5_width = demo[StageKind.BASE].unet.text_dim
    clip_shaped_like_t5 = PromptEmbeddings(torch.zeros(1, 77, t5_width), torch.zeros(1, 77, t5_width), "clip")
    with UNetCalls() as calls, pytest.raises(InputError, match=r"^embeds: CLIP embeddings, but keyframes \(show-1-base"
                                                               r"\) takes T5 .*encode the prompt with that text encoder"):
        generate_keyframes(demo[StageKind.BASE], clip_shaped_like_t5, KeyframeSettings(steps=1, num_frames=2,
                                                                                         height=16, width=16))
    assert calls.count == 0


def test_a_missing_prompt_is_named_before_the_caption_cleaner(demo):
    with pytest.raises(InputError, match=r"^prompt: NoneType given; a prompt is text"):
        encode_prompt(demo["t5"], None, clean_caption=True)


def test_messages_say_what_happened_and_what_the_caller_can_change(demo):
    with pytest.raises(InputError, match=r"use 8$"):
        validate_size("width", 4, 8, "the VAE")
    t5 = encode_prompt(demo["t5"], "a cat")
    sr1 = demo[StageKind.SR1]
    m = sr1.unet.size_multiple
    odd = torch.rand(1, 3, 2, 2 * m + 1, 3 * m + 1) * 2 - 1
    with UNetCalls() as calls, pytest.raises(InputError) as e:
        super_resolve_pixels(sr1, t5, odd, SR1Settings(scale=1, steps=1))
    assert calls.count == 0
    assert str(e.value).startswith(f"frames: {3 * m + 1}x{2 * m + 1} frames x scale 1") and "resize the frames" in str(
        e.value) and "height x scale" not in str(e.value)


def test_vae_encode_names_its_own_size_inputs_and_rgba_frames_are_told(nodes, loaded, pack, monkeypatch):
    told = []
    monkeypatch.setattr(pack.nodes.comfy, "warn", told.append)
    encode = nodes["Show1VAEEncode"]
    frames = torch.rand(2, 64, 96, 3)
    with pytest.raises(Exception, match=r"Show1VAEEncode: width: 100 is not a multiple of 8, which the show-1-sr2 VAE "
                                         r"needs; use 96 or 104"):
        encode.run(vae=loaded["vae"], images=frames, width=100, height=64, resize="crop", posterior="mean", seed=1,
                   tile=False)
    rgba = torch.rand(2, 64, 96, 4)
    out = encode.run(vae=loaded["vae"], images=rgba, width=96, height=64, resize="crop", posterior="mean", seed=1,
                     tile=False)[0]
    assert out["samples"].shape[2] == 2
    assert any("RGBA" in t and "alpha channel is dropped" in t for t in told)


def test_ctrl_c_during_a_batch_says_what_is_kept(tmp_path, env):
    jobs = jobs_file(tmp_path / "jobs.jsonl", [{"prompt": f"a cat {i}", **TINY, "keyframe_steps": 1 if i == 0 else 400}
                                               for i in range(3)])
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "show1_core", "batch", str(jobs), "--out", str(out)], cwd=ROOT,
                               env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (out / "job00001.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-2000:]
    assert "interrupted: the 1 video(s) finished in this run are kept with their sidecars" in err
    assert "no output written" not in err
    assert sorted(p.name for p in out.iterdir()) == ["job00001.json", "job00001.mp4"]


def test_inputs_that_used_to_end_in_an_internal_error_are_named(tmp_path, env):
    (tmp_path / "notes.png").write_text("not an image")
    jobs = jobs_file(tmp_path / "jobs.jsonl", [{"prompt": "a cat", "keyframes": ["notes.png", "notes.png"],
                                                "last_stage": "interpolation"}])
    done = run(["batch", str(jobs), "--out", str(tmp_path / "out")], env)
    assert done.returncode == 1 and "line 1: field 'keyframes':" in done.stderr
    assert "notes.png is not an image that can be read" in done.stderr and "internal error" not in done.stderr
    (tmp_path / "afile").write_text("x")
    done = run(["download", "--dest", str(tmp_path / "afile" / "models")], env)
    assert done.returncode == 2 and "--dest:" in done.stderr and "is a file" in done.stderr
