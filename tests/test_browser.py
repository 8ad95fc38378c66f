"""The example workflows in a real browser: Debian's chromium driven by playwright-core (npm), against
the ComfyUI server of the integration tests. Needs COMFYUI_DIR, chromium and `npm install` in
tests/browser; skipped, saying which is missing, otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from test_comfyui_integration import COMFYUI_DIR, Server
from workflows import load, to_api, workflow_files

BROWSER_DIR = Path(__file__).parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR is not set: no ComfyUI to load the workflows into"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"),
    pytest.mark.skipif(not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir() or not shutil.which("node"),
                       reason="playwright-core is not installed: run `npm install` in tests/browser"),
]


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory, demo_root):
    root = tmp_path_factory.mktemp("comfyui_browser")
    settings = root / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    server = Server(root, demo_root)
    out = root / "browser"
    try:
        done = subprocess.run(["node", str(BROWSER_DIR / "check_workflows.mjs"), server.url, str(out),
                               *[p.stem for p in workflow_files()]], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "CHROMIUM": CHROMIUM})
        assert done.returncode == 0, done.stderr[-3000:]
        yield json.loads(done.stdout.strip().splitlines()[-1]), out, server.get("/object_info")
    finally:
        server.stop()


def test_every_workflow_loads_without_missing_nodes(browser_run):
    result, _, _ = browser_run
    assert "show1.readout" in result["extensions"]
    assert result["controlMissingDialog"] is True, "the check must see the dialog for an unknown node"
    for name, info in result["workflows"].items():
        assert info["missing"] == [] and not info["missingDialog"], name
    ours = [e for e in result["consoleErrors"] if "show1" in e.lower()]
    assert ours == [], ours


def test_readout_appears_and_follows_widgets(browser_run):
    result, _, _ = browser_run
    cascade = result["workflows"]["show1_published_cascade"]
    assert cascade["readouts"]["9:Show1KeyframeSampler"] == "8 frames · 4.00 s at 2 fps · 64x40"
    assert cascade["readouts"]["10:Show1PixelInterpolate"] == "29 frames · 3.87 s at 7.5 fps · 64x40"
    assert cascade["readouts"]["11:Show1PixelUpscale"] == "29 frames · 256x160"
    after = cascade["afterChange"]["readouts"]
    assert after["9:Show1KeyframeSampler"].startswith("10 frames · 5.00 s")
    assert after["10:Show1PixelInterpolate"].startswith("37 frames")
    hybrid = result["workflows"]["show1_hybrid_latent_interpolation"]
    assert hybrid["readouts"]["10:Show1LatentInterpolator"] == "57 frames · 7.13 s at 8 fps"
    assert hybrid["flagged"]["warning"] == "true" and "overlap must be smaller than window" in hybrid["flagged"]["text"]


def test_frontend_conversion_matches_ours(browser_run):
    _, out, object_info = browser_run
    for path in workflow_files():
        frontend = json.loads((out / f"{path.stem}.api.json").read_text())
        ours = to_api(load(path), object_info)
        assert {k: (v["class_type"], v["inputs"]) for k, v in frontend.items()} == \
               {k: (v["class_type"], v["inputs"]) for k, v in ours.items()}, path.stem


def test_screenshot_of_the_published_cascade(browser_run):
    _, out, _ = browser_run
    shot = out / "screenshot.png"
    assert shot.is_file() and shot.stat().st_size > 20_000
