"""Integration with real ComfyUI releases on the CPU, with the tiny demo weights.

Runs against every ComfyUI snapshot in ../shared/comfyui (0.3.64, the oldest release the pack
supports, and 0.33.0), each in the venv `comfyui_env` prepares for it as users prepare theirs, or
against the one ComfyUI that COMFYUI_DIR (and COMFYUI_PYTHON) name. The pack is linked into a
temporary custom_nodes folder given to ComfyUI through --extra-model-paths-config, next to a
`show1:` models entry for the demo stage folders, so the ComfyUI folder itself is not touched.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from comfyui_env import ComfyUI, canonical, installed, prepare, targets, why_none
from conftest import ROOT
from test_workflows import PREVIOUS_RELEASE, without_user_files
from workflows import declared_object_info, load, problems, to_api, workflow_files

TARGETS = targets()
pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(not TARGETS, reason=why_none())]

# Example workflows that need only Show-1 weights; on the newest release each runs at its own sizes
# with every steps-like input capped at STEP_CAP (the fourth also needs an SD checkpoint).
RUNNABLE = ["show1_published_cascade", "show1_hybrid_latent_interpolation", "show1_interpolate_your_images"]
STEP_CAP = 1
STEP_INPUTS = ("steps", "if_ii_steps")
WORKFLOW_LIMIT_S = 600
# Small sizes and step counts for the quick tests: (widget, value) per node type
SMALL = {
    "Show1KeyframeSampler": {"num_frames": 3, "width": 24, "height": 16, "steps": 2},
    "Show1PixelInterpolate": {"width": 24, "height": 16, "steps": 2},
    "Show1PixelUpscale": {"scale": 4, "steps": 2, "if_ii_steps": 2},
    "Show1VAEEncode": {"width": 96, "height": 64},
    "Show1LatentUpscale": {"steps": 3},
    "Show1LatentInterpolator": {"frames_between": 2, "steps": 2, "window": 4, "overlap": 1},
}
STOCK = {  # a stock ComfyUI workflow that needs no weights
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 255}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "stock/stock"}},
}


@pytest.fixture(scope="session", params=TARGETS or [None], ids=lambda t: f"comfyui-{t}")
def comfyui(request) -> ComfyUI:
    """One ComfyUI release, extracted and given its venv on first use."""
    return prepare(request.param)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, demo_root: Path, comfyui: ComfyUI, extra_args: tuple[str, ...] = ()):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for d in ("custom_nodes", "output", "input", "user", "temp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "custom_nodes" / "ComfyUI-Show1").symlink_to(ROOT)
        (root / "extra_model_paths.yaml").write_text(
            f"show1_test:\n  base_path: {root}\n  custom_nodes: custom_nodes\n  show1: {demo_root}\n")
        self.log = open(root / "server.log", "w")
        self.process = subprocess.Popen(
            [comfyui.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--output-directory", str(root / "output"), "--input-directory", str(root / "input"),
             "--user-directory", str(root / "user"),
             "--temp-directory", str(root / "temp"), "--database-url", "sqlite:///:memory:", "--disable-auto-launch",
             "--disable-api-nodes", "--extra-model-paths-config", str(root / "extra_model_paths.yaml"), *extra_args],
            cwd=comfyui.dir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ComfyUI exited:\n" + self.log_text()[-4000:])
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError("ComfyUI did not answer within 180 s:\n" + self.log_text()[-4000:])

    def log_text(self) -> str:
        self.log.flush()
        return (self.root / "server.log").read_text(errors="replace")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict):
        request = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                text = r.read()
                return json.loads(text) if text else {}
        except urllib.error.HTTPError as e:
            raise AssertionError(f"POST {path} -> {e.code}: {e.read().decode()[:3000]}") from None

    def queue(self, prompt: dict, workflow: dict | None = None) -> str:
        answer = self.post("/prompt", {"prompt": prompt, "client_id": "show1-tests",
                                       "extra_data": {"extra_pnginfo": {"workflow": workflow or {}}}})
        assert not answer.get("node_errors"), answer["node_errors"]
        return answer["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 900) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"]["status_str"] in ("success", "error"):
                    return entry
            time.sleep(0.3)
        self.post("/interrupt", {"prompt_id": prompt_id})  # so that the next test does not wait for it
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root, comfyui):
    s = Server(tmp_path_factory.mktemp(f"comfyui-{comfyui.version}"), demo_root, comfyui)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def small_prompt(name: str, object_info: dict, **overrides) -> tuple[dict, dict]:
    workflow = load(next(p for p in workflow_files() if p.stem == name))
    prompt = to_api(workflow, object_info)
    for node in prompt.values():
        node["inputs"].update({**SMALL.get(node["class_type"], {}), **overrides.get(node["class_type"], {})})
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = f"video/{name}"
    return prompt, workflow


def video_files(server: Server, entry: dict) -> list[Path]:
    paths = []
    for output in entry["outputs"].values():
        for item in output.get("images", []) + output.get("videos", []):
            paths.append(server.root / "output" / item.get("subfolder", "") / item["filename"])
    return paths


def test_installing_the_pack_changes_none_of_comfyuis_packages(comfyui):
    """`pip install -r requirements.txt` (what ComfyUI-Manager runs) over ComfyUI's packages alone adds
    what ComfyUI lacks and changes none of its packages: pip's --dry-run report, from the venv's own
    pip and from the newest pip, lists no installed package at another version, and the venv ComfyUI
    runs in still holds ComfyUI's versions."""
    if comfyui.venv is None:
        pytest.skip("COMFYUI_DIR names a ComfyUI whose own packages were not recorded")
    base = comfyui.base_packages
    for report in comfyui.pack_reports:
        planned = {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]}
        print(f"pip {report['pip_version']} would add:", " ".join(f"{n} {v}" for n, v in sorted(planned.items())))
        assert {n: f"{base[n]} -> {v}" for n, v in planned.items() if base.get(n, v) != v} == {}, report["pip_version"]
        assert "diffusers" in planned or "diffusers" in base
    now = installed(comfyui.python)
    assert {n: now.get(n) for n in base} == base


def test_every_node_registers_without_import_errors(server, object_info):
    from test_nodes import EXPECTED_NODES

    assert EXPECTED_NODES <= set(object_info)
    ours = [line for line in server.log_text().splitlines() if "ComfyUI-Show1" in line]
    assert ours and not any("IMPORT FAILED" in line or "Cannot import" in line for line in ours), ours
    for name in EXPECTED_NODES:
        assert object_info[name]["category"].startswith("Show-1/") and object_info[name]["description"]
    choices = object_info["Show1ModelLoader"]["input"]["required"]["model"][1]["options"]
    assert "show-1-base (base)" in choices and "IF-II-L-v1.0 (if_ii)" in choices
    templates = server.get("/workflow_templates")
    assert set(templates.get("ComfyUI-Show1", [])) >= set(RUNNABLE)


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_workflows_are_valid_against_the_live_server(path, object_info):
    assert without_user_files(path, problems(load(path), object_info)) == []


def test_the_v3_nodes_are_served_as_declared(object_info, pack):
    """What ComfyUI serves for the pack's V3 nodes is what the declarations say (the offline
    validation of the workflows reads the same). A combo that lists a folder (saved embeddings in
    the output folder, which is the server's own) is compared but for its listing; the model
    folders' listing is checked in test_every_node_registers_without_import_errors."""
    def without_listings(node, info: dict) -> dict:
        info = json.loads(json.dumps(info))
        for declared in node.inputs():
            if declared.dynamic:
                section = info["input"]["optional" if declared.optional else "required"]
                for key in ("options", "default"):
                    section[declared.name][1].pop(key, None)
        return info

    for name, declared in declared_object_info(pack.NODES).items():
        live = without_listings(pack.NODES[name], object_info[name])
        declared = without_listings(pack.NODES[name], declared)
        for key in ("input", "input_order", "output", "output_name", "output_node", "category"):
            assert live[key] == declared[key], (name, key)


def capped_prompt(name: str, object_info: dict) -> tuple[dict, dict]:
    """The workflow as shipped, every steps-like input capped at STEP_CAP, or at the fewest steps that
    leave one denoising step at the node's strength (sr2 at 0.8: 2)."""
    workflow = load(next(p for p in workflow_files() if p.stem == name))
    prompt = to_api(workflow, object_info)
    for node in prompt.values():
        cap = max(STEP_CAP, math.ceil(1 / node["inputs"].get("strength", 1.0)))
        for key in STEP_INPUTS:
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = min(node["inputs"][key], cap)
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = f"video/{name}"
    return prompt, workflow


@pytest.mark.parametrize("name", RUNNABLE)
def test_example_workflow_finishes_on_the_cpu_and_writes_its_mp4(comfyui, server, object_info, name, pack):
    """On the newest release, as shipped (published sizes, 576x320 and up to 57 frames), steps capped
    at 1, on 2 CPU cores with the tiny weights; on older releases at the quick sizes of the other
    tests (the shipped sizes cost minutes of CPU each, in the same nodes). The video has the frame
    count and size the readout predicts from the graph."""
    from show1_core.video import read_mp4

    shipped = comfyui.version == TARGETS[-1]
    prompt, workflow = capped_prompt(name, object_info) if shipped else small_prompt(name, object_info)
    graph = pack.nodes.readout.Graph(prompt, pack.NODES)
    creator = next(k for k, n in prompt.items() if n["class_type"] == "CreateVideo")
    source = pack.nodes.readout.View(graph, creator, 0).source("images")
    expected_frames, (width, height) = graph.frames(source), graph.size(source)
    started = time.time()
    entry = server.wait(server.queue(prompt, workflow), timeout=WORKFLOW_LIMIT_S)
    took = time.time() - started
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:]
    assert took < WORKFLOW_LIMIT_S
    files = video_files(server, entry)
    assert len(files) == 1 and files[0].suffix == ".mp4" and files[0].is_file()
    frames = read_mp4(files[0])
    assert frames.shape[:3] == (expected_frames, height, width)
    print(f"{name} ({'shipped' if shipped else 'quick'} sizes): {took:.0f} s, {frames.shape[0]} frames of "
          f"{frames.shape[2]}x{frames.shape[1]}")


def show1_models(server) -> dict:
    return server.get("/show1/models")


def test_show1_models_live_in_comfyuis_model_manager_and_free_with_it(server, object_info):
    prompt, workflow = small_prompt("show1_hybrid_latent_interpolation", object_info)
    assert server.wait(server.queue(prompt, workflow))["status"]["status_str"] == "success"
    held = show1_models(server)
    classes = sorted(m["class"] for m in held["models"])
    assert "Show1UNet" in classes and "AutoencoderKL" in classes, held
    before = held["resident_mib"]
    server.post("/free", {"unload_models": True, "free_memory": True})
    deadline = time.time() + 60
    while show1_models(server)["models"] and time.time() < deadline:
        time.sleep(0.5)
    after = show1_models(server)
    assert after["models"] == [], after
    model_mib = sum(m["bytes"] for m in held["models"]) / 2 ** 20
    # ComfyUI empties its model list first, then, in the same turn of its loop, drops its node
    # caches (which hold the loaders' outputs) and collects: the memory goes back a moment later
    while after["resident_mib"] >= before - 0.5 * model_mib and time.time() < deadline:
        time.sleep(0.5)
        after = show1_models(server)
    print(f"resident {before:.0f} MiB with {len(held['models'])} Show-1 models ({model_mib:.0f} MiB) loaded, "
          f"{after['resident_mib']:.0f} MiB after /free")
    assert after["resident_mib"] < before - 0.5 * model_mib


def test_a_stock_workflow_runs_after_a_show1_workflow(server, object_info):
    prompt, workflow = small_prompt("show1_interpolate_your_images", object_info)
    assert server.wait(server.queue(prompt, workflow))["status"]["status_str"] == "success"
    entry = server.wait(server.queue(STOCK))
    assert entry["status"]["status_str"] == "success", entry["status"]
    image = entry["outputs"]["2"]["images"][0]
    assert (server.root / "output" / image["subfolder"] / image["filename"]).is_file()


def test_twenty_prompts_in_a_row_do_not_grow_the_resident_memory(server, object_info):
    prompt, workflow = small_prompt("show1_hybrid_latent_interpolation", object_info)
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "Show1LatentInterpolator")
    resident = []
    for seed in range(20):
        prompt[sampler]["inputs"]["seed"] = seed  # a new video each time, the loaders cached
        assert server.wait(server.queue(prompt, workflow))["status"]["status_str"] == "success"
        resident.append(show1_models(server)["resident_mib"])
    print("resident MiB after each of 20 prompts:", " ".join(f"{r:.0f}" for r in resident))
    assert max(resident[1:]) <= resident[0] * 1.05 + 32, resident


PREVIEW_IMAGE = (1, 4)  # the websocket's binary event types of a preview (plain, with metadata)
PREVIEW_SEED = 424242


@pytest.fixture(scope="module")
def preview_server(tmp_path_factory, demo_root, comfyui):
    """A second server with previews on (ComfyUI's default is --preview-method none)."""
    s = Server(tmp_path_factory.mktemp(f"comfyui-{comfyui.version}-previews"), demo_root, comfyui,
               ("--preview-method", "auto"))
    yield s
    s.stop()


def watch(server: Server, prompt: dict, workflow: dict) -> tuple[dict, dict, dict]:
    """Runs a prompt with a websocket open as the frontend does: its history entry, the progress
    events and the preview images per (node id, value of its bar), each preview counted under the
    progress event just before it."""
    import io

    import websocket  # websocket-client
    from PIL import Image

    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId=show1-tests", timeout=900)
    try:
        prompt_id = server.queue(prompt, workflow)
        bar, progress, previews = None, {}, {}
        while True:
            message = ws.recv()
            if isinstance(message, bytes):
                if int.from_bytes(message[:4], "big") in PREVIEW_IMAGE and bar is not None:
                    image = Image.open(io.BytesIO(message[message.index(b"\xff\xd8"):]))  # the JPEG
                    assert min(image.size) > 0
                    previews[bar] = previews.get(bar, 0) + 1
                continue
            event = json.loads(message)
            data = event.get("data", {})
            if data.get("prompt_id", prompt_id) != prompt_id:
                continue
            if event["type"] == "progress":
                bar = (data["node"], data["value"])
                progress[bar] = progress.get(bar, 0) + 1
            elif event["type"] in ("execution_success", "execution_error", "execution_interrupted"):
                break
    finally:
        ws.close()
    return server.wait(prompt_id), progress, previews


def stage_counts(counts: dict, prompt: dict) -> dict:
    """(node id, value of its bar) -> count, summed per stage of the cascade. Show1PixelUpscale
    counts IF-II's first frame and sr1 on one bar, IF-II's steps first."""
    stage_of = {"Show1KeyframeSampler": "keyframes", "Show1PixelInterpolate": "interpolation",
                "Show1LatentUpscale": "sr2", "Show1LatentInterpolator": "latent interpolation"}
    found = {}
    for (node, value), n in counts.items():
        kind, inputs = prompt[node]["class_type"], prompt[node]["inputs"]
        if kind == "Show1PixelUpscale":
            stage = "if_ii" if "if_ii" in inputs and value <= inputs["if_ii_steps"] else "sr1"
        else:
            stage = stage_of.get(kind, kind)
        found[stage] = found.get(stage, 0) + n
    return found


def test_every_stage_of_the_published_cascade_sends_previews_and_none_when_they_are_off(
        server, preview_server, object_info):
    """Previews as ComfyUI sends them over the websocket: with --preview-method auto, each stage
    (keyframes, interpolation, IF-II, sr1 in pixels; sr2 in latents through ComfyUI's latent2rgb
    previewer) sends at least one while it steps; with previews off (ComfyUI's default), none,
    while the progress events still arrive."""
    prompt, workflow = small_prompt("show1_published_cascade", object_info)
    for node in prompt.values():  # a seed no other test queues: ComfyUI would answer a repeat from its cache
        if "seed" in node["inputs"]:
            node["inputs"]["seed"] = PREVIEW_SEED
    stages = {"keyframes", "interpolation", "if_ii", "sr1", "sr2"}
    entry, progress, previews = watch(preview_server, prompt, workflow)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:]
    shown, stepped = stage_counts(previews, prompt), stage_counts(progress, prompt)
    print("previews per stage:", shown, "progress events:", stepped)
    assert set(stepped) >= stages
    assert all(shown.get(s, 0) >= 1 for s in stages), shown

    entry, progress, previews = watch(server, prompt, workflow)
    assert entry["status"]["status_str"] == "success"
    assert set(stage_counts(progress, prompt)) >= stages - {"if_ii"}  # 0.33 throttles plain progress events
    assert previews == {}, previews


def test_the_storyboard_from_four_keyframe_images_previews_its_latent_steps(preview_server, object_info):
    """The CPU-runnable storyboard example (four LoadImage keyframes, four prompts, the latent
    interpolator) at small sizes: it runs, its video has every frame, and the latent interpolator
    sends previews."""
    from show1_core.video import read_mp4

    prompt, workflow = small_prompt("show1_storyboard_keyframes", object_info)
    entry, _, previews = watch(preview_server, prompt, workflow)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:]
    files = video_files(preview_server, entry)
    frames_between = SMALL["Show1LatentInterpolator"]["frames_between"]
    assert len(files) == 1 and read_mp4(files[0]).shape[0] == 4 + 3 * frames_between
    print("storyboard keyframes previews:", stage_counts(previews, prompt))
    assert stage_counts(previews, prompt).get("latent interpolation", 0) >= 1, previews


def output_files(server: Server) -> set[Path]:
    return {p for p in (server.root / "output").rglob("*") if p.is_file()}


def test_cancel_stops_within_a_step_and_leaves_nothing(server, object_info):
    """What the user sees: from POST /interrupt to the end of the prompt takes at most a step or a few
    seconds, and no output file is left. Progress events only measure a step: ComfyUI 0.33 sends at
    most one per 0.1 s and 0.5 %, so they are not counted."""
    import websocket  # websocket-client

    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId=show1-tests", timeout=600)
    before = output_files(server)
    prompt, workflow = small_prompt("show1_published_cascade", object_info,
                                    Show1KeyframeSampler={"steps": 400, "width": 64, "height": 40})
    prompt_id = server.queue(prompt, workflow)
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "Show1KeyframeSampler")
    progress, interrupted_at, end = [], None, None
    while end is None:
        message = ws.recv()
        if not isinstance(message, str):
            continue
        event = json.loads(message)
        data = event.get("data", {})
        if event["type"] == "progress" and data.get("node") == sampler and data.get("prompt_id") == prompt_id:
            progress.append((time.time(), data["value"]))
            if interrupted_at is None and data["value"] >= 3 and data["value"] > progress[0][1]:
                interrupted_at = time.time()
                server.post("/interrupt", {})
        elif event["type"] in ("execution_interrupted", "execution_error", "execution_success"):
            if data.get("prompt_id") == prompt_id:
                end = event, time.time()
    ws.close()
    (first_time, first_step), (last_time, last_step) = progress[0], progress[-1]
    step = (last_time - first_time) / (last_step - first_step)
    took = end[1] - interrupted_at
    print(f"Cancel: the prompt ended {took:.2f} s after POST /interrupt (a step takes {step:.2f} s)")
    assert end[0]["type"] == "execution_interrupted", end[0]
    assert took < max(2 * step, 5.0)
    assert server.get("/system_stats")["system"]
    assert output_files(server) == before, "a partial file was left behind"
    after, _ = small_prompt("show1_interpolate_your_images", object_info)
    assert server.wait(server.queue(after))["status"]["status_str"] == "success"
    assert server.wait(server.queue(STOCK))["status"]["status_str"] == "success"


def test_a_workflow_saved_by_the_previous_release_runs(server, object_info):
    previous = next(p for p in PREVIOUS_RELEASE if p.stem == "show1_interpolate_your_images")
    workflow = load(previous)
    prompt = to_api(workflow, object_info)
    for node in prompt.values():
        node["inputs"].update(SMALL.get(node["class_type"], {}))
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = "video/previous_release"
    entry = server.wait(server.queue(prompt, workflow))
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:]
    assert len(video_files(server, entry)) == 1


# --- checks inside a ComfyUI process (tests/comfy_checks.py, run with ComfyUI's Python) -----------

def comfy_check(name: str, comfyui: ComfyUI, demo_root: Path) -> dict:
    done = subprocess.run([comfyui.python, str(Path(__file__).parent / "comfy_checks.py"), str(demo_root), name],
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COMFYUI_DIR": str(comfyui.dir)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_model_is_made_of_layers_comfyui_can_cast(comfyui, demo_root):
    found = comfy_check("castable", comfyui, demo_root)
    print("castable fraction of the parameter bytes:", found["fractions"])
    assert set(found["fractions"]) == {"base", "interpolation", "sr1", "if_ii", "sr2", "vae", "t5", "clip"}
    assert all(f >= 0.95 for f in found["fractions"].values()), found["fractions"]
    assert found["patched_models"] == ["Show1UNet"] * 5 + ["AutoencoderKL", "T5Encoder", "CLIPTextEncoder"]


def test_a_unet_loaded_in_part_computes_what_it_computes_whole(comfyui, demo_root):
    """What ComfyUI keeps resident within the budget is its own choice (0.3.64 keeps a few MB, 0.33
    none); that the layers are cast and the output is the same holds on every release."""
    found = comfy_check("partial_load", comfyui, demo_root)
    print("partial load:", found)
    for weight_dtype, r in found.items():
        assert r["lowvram"] and r["cast_layers"] > r["layers"] // 2, (weight_dtype, r)
        assert r["loaded_bytes"] <= r["model_bytes"] // 4, (weight_dtype, r)
        assert r["max_abs_diff"] == 0.0, (weight_dtype, r)


def test_functional_casts_take_the_offloadable_path_where_comfyui_has_it_and_the_legacy_one_else(comfyui, demo_root):
    found = comfy_check("cast_paths", comfyui, demo_root)
    print("functional casts:", found)
    paths = found["paths"]
    assert set(paths) == ({"legacy", "offloadable"} if found["has_uncast"] else {"legacy"})
    for name, r in paths.items():
        assert r["functional_casts"] > 0 and r["max_abs_diff"] == 0.0, (name, r)
        assert r["open_after_release"] == 0, (name, r)
    assert paths["legacy"]["offloadable_casts"] == paths["legacy"]["uncasts"] == 0
    if found["has_uncast"]:
        r = paths["offloadable"]
        assert r["offloadable_casts"] == r["functional_casts"] == r["uncasts"], r
        assert r["open_after_forward"] <= 1, r  # the last one waits for the end of the model's scope


def test_stages_ask_for_their_activation_estimate_and_never_force_a_full_load(comfyui, demo_root):
    calls = comfy_check("load_requests", comfyui, demo_root)["calls"]
    assert calls and not any(c["force_full_load"] for c in calls), calls
    assert all(c["memory_required"] > 0 for c in calls), calls
    assert {c["model"] for c in calls} == {"T5Encoder", "CLIPTextEncoder", "Show1UNet", "AutoencoderKL"}


def test_the_patcher_class_is_looked_up_when_a_model_is_wrapped(comfyui, demo_root):
    found = comfy_check("dynamic_patcher", comfyui, demo_root)
    assert found == {"patcher": "DynamicPatcher", "meta_at_wrap": [True], "weights_after": "cpu",
                     "size_matches": True}


def test_comfyuis_t5_gives_show1s_embeddings(comfyui, demo_root):
    found = comfy_check("t5_equality", comfyui, demo_root)
    print("T5:", found)
    assert found["missing"] == [] and found["unexpected"] == []
    assert found["module_max_abs_diff"] < 1e-5 < found["masked_positions_matter"]
    assert found["node_positive_diff"] < 1e-5 and found["node_negative_diff"] < 1e-5
    assert found["shape"] == [1, 77, 32]
    assert (found["negative_tokens"], found["end_token"]) == (1, 1)  # the empty negative: the end token alone
