"""The example workflows in a real browser: Debian's chromium driven by playwright-core (npm), against
the ComfyUI servers of the integration tests (each release), with the frontend that release pins and
the newest tested frontend, each installed from pip once (`comfyui_env.frontend_root`) and served
with --front-end-root, in the classic canvas and (where the frontend has it) the Vue node renderer.
Needs chromium (`bash .ci/setup comfyui` installs it) and npm for tests/browser's node modules;
skipped, saying which is missing, otherwise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from comfyui_env import BROWSER_DIR, frontend_root, prepare_browser, version_key
from conftest import ROOT
from test_comfyui_integration import TARGETS, Server, comfyui  # noqa: F401 (the fixture)
from workflows import load, to_api, workflow_files

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# (which frontend of the release, renderer): the one the release pins, the newest tested one
SETUPS = [("pinned", "classic"), ("newest", "classic"), ("newest", "vue")]

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not TARGETS, reason="no ComfyUI to load the workflows into (see the integration tests)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM} (bash .ci/setup comfyui)"),
    pytest.mark.skipif(not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir() and not shutil.which("npm")
                       or not shutil.which("node"), reason="node and npm are needed for playwright-core"),
]


def declared_minimum() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"comfyui-frontend-package>=([0-9.]+)"', text).group(1)


def test_every_release_pins_a_frontend_the_pack_declares(comfyui):
    assert version_key(comfyui.frontend_pin()) >= version_key(declared_minimum())


@pytest.fixture(scope="module", params=SETUPS, ids=lambda s: f"{s[0]}-{s[1]}")
def browser_run(request, tmp_path_factory, demo_root, comfyui):
    which, renderer = request.param
    version = comfyui.frontends()[0 if which == "pinned" else -1]
    prepare_browser()
    root = tmp_path_factory.mktemp(f"browser-{comfyui.version}-{version}-{renderer}")
    settings = root / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"Comfy.TutorialCompleted": True, "Comfy.VueNodes.Enabled": renderer == "vue"}))
    server = Server(root, demo_root, comfyui, ("--front-end-root", str(frontend_root(version))))
    out = root / "browser"
    try:
        done = subprocess.run(["node", str(BROWSER_DIR / "check_workflows.mjs"), server.url, str(out), renderer,
                               *[p.stem for p in workflow_files()]], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "CHROMIUM": CHROMIUM})
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["version"] in (version, None), result["version"]
        yield result, out, server
    finally:
        server.stop()


def test_every_workflow_loads_without_missing_nodes(browser_run):
    result, _, _ = browser_run
    assert "show1.readout" in result["extensions"]
    assert result["controlMissingWarning"] is True, "the check must see the warning for an unknown node"
    for name, info in result["workflows"].items():
        assert info["missing"] == [] and not info["missingWarning"], name
        assert info["readoutsInNodes"] >= 1, f"{name}: no readout is on screen"
        assert (info["vueNodes"] > 0) == (result["renderer"] == "vue"), f"{name}: not the renderer asked for"
    # ComfyUI 0.33 sends a Content-Security-Policy with --disable-api-nodes: the frontend's registry
    # look-up of the control's unknown node is refused, which says nothing about the pack
    ours = [e for e in result["consoleErrors"] if "show1" in e.lower() and "Content Security Policy" not in e]
    assert ours == [], ours


def test_readout_appears_and_follows_a_users_edit(browser_run):
    result, _, _ = browser_run
    cascade = result["workflows"]["show1_published_cascade"]
    assert cascade["readouts"]["9:Show1KeyframeSampler"] == "8 frames · 4.00 s at 2 fps · 64x40"
    assert cascade["readouts"]["10:Show1PixelInterpolate"] == "29 frames · 3.87 s at 7.5 fps · 64x40"
    assert cascade["readouts"]["11:Show1PixelUpscale"] == "29 frames · 256x160"
    after = cascade["afterChange"]
    assert after["value"] == 9
    assert after["readouts"]["9:Show1KeyframeSampler"].startswith("9 frames · 4.50 s")
    assert after["readouts"]["10:Show1PixelInterpolate"].startswith("33 frames")
    hybrid = result["workflows"]["show1_hybrid_latent_interpolation"]
    assert hybrid["readouts"]["10:Show1LatentInterpolator"] == f"57 frames · {57 / 8:.2f} s at 8 fps · 576x320"
    flagged = hybrid["flagged"]
    assert flagged["warning"] == "true" and "overlap: 16 must be smaller than window (16)" in flagged["text"]


def test_the_readout_is_the_packs_own_computation(browser_run):
    """What the browser shows is what the pack's route computes from the frontend's own graph."""
    import urllib.request

    result, out, server = browser_run
    for path in workflow_files():
        prompt = json.loads((out / f"{path.stem}.api.json").read_text())
        request = urllib.request.Request(server.url + "/show1/readout", json.dumps({"prompt": prompt}).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            computed = json.loads(r.read())
        shown = result["workflows"][path.stem]["readouts"]
        for key, text in shown.items():
            node_id = key.split(":")[0]
            assert text == computed[node_id]["text"] + (
                "  ⚠ " + "; ".join(computed[node_id]["warnings"]) if computed[node_id]["warnings"] else ""), key


def test_frontend_conversion_matches_ours(browser_run):
    _, out, server = browser_run
    object_info = server.get("/object_info")
    for path in workflow_files():
        frontend = json.loads((out / f"{path.stem}.api.json").read_text())
        ours = to_api(load(path), object_info)
        assert {k: (v["class_type"], v["inputs"]) for k, v in frontend.items()} == \
               {k: (v["class_type"], v["inputs"]) for k, v in ours.items()}, path.stem


def test_screenshot_of_the_published_cascade(browser_run):
    _, out, _ = browser_run
    shot = out / "screenshot.png"
    assert shot.is_file() and shot.stat().st_size > 20_000
