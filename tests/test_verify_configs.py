"""`python -m show1_core verify-configs`: the real hub configs build the published models, key for key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

HUB = ROOT.parent / "shared" / "fixtures" / "hub_configs"
REFERENCE = HUB / "reference_state_dicts.json"
needs_hub = pytest.mark.skipif(not REFERENCE.is_file(), reason=f"hub configs not found at {HUB}")

# parameter counts of the published models, as the hub_configs README lists them
PUBLISHED = {"show-1-base/unet": 1_726_848_390, "show-1-interpolation/unet": 1_726_859_910,
             "show-1-sr1/unet": 796_343_046, "show-1-sr2/unet": 1_411_233_860, "IF-II-L-v1.0/unet": 1_243_277_190,
             "show-1-sr2/vae": 83_653_863}


def run(*args):
    return subprocess.run([sys.executable, "-m", "show1_core", "verify-configs", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@needs_hub
def test_every_real_config_builds_the_published_model_key_for_key():
    result = run(HUB, "--reference", REFERENCE)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if "/" in line.split()[0]}
    for name, count in PUBLISHED.items():
        assert f"{count:,} parameters" in lines[name] and lines[name].rstrip().endswith("ok"), lines[name]
    assert "latent super-resolution (show-1-sr2)" in lines["show-1-sr2/unet@use_linear_projection"]
    assert lines["show-1-sr2/unet@use_linear_projection"].rstrip().endswith("ok")
    assert "final_sigmas_type sigma_min" in lines["show-1-base/scheduler"]
    assert result.stdout.strip().splitlines()[-1].startswith("9 of 9 ok")


@needs_hub
def test_a_difference_from_the_reference_fails(tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(HUB, hub)
    config_path = hub / "show-1-sr2" / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["transfromer_in_opt"] = False  # without the temporal transformer after conv_in
    config_path.write_text(json.dumps(config))
    result = run(hub, "--reference", REFERENCE)
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("show-1-sr2/unet "))
    assert "missing: transformer_in." in line and "parameters != reference 1,411,233,860" in line


def test_without_a_reference_it_builds_and_recognises_each_stage(demo_root):
    result = run(demo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for what in ("keyframes (show-1-base)", "pixel interpolation", "pixel super-resolution", "IF-II",
                 "latent super-resolution (show-1-sr2)", "text encoder (T5EncoderModel)", "text encoder (CLIPTextModel)",
                 "VAE (AutoencoderKL)"):
        assert what in out, what
