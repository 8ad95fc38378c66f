"""Integration with a real ComfyUI (0.3.64) on the CPU, with the tiny demo weights.

Needs COMFYUI_DIR (a ComfyUI checkout) and, optionally, COMFYUI_PYTHON (a Python with ComfyUI's
requirements; default: this one). The pack is linked into a temporary custom_nodes folder given
to ComfyUI through --extra-model-paths-config, next to a `show1:` models entry for the demo stage
folders, so the checkout itself is not touched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT
from test_workflows import PREVIOUS_RELEASE, without_user_files
from workflows import declared_object_info, load, problems, to_api, workflow_files

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not COMFYUI_DIR, reason="COMFYUI_DIR is not set: no ComfyUI checkout to test against "
                                                          "(see README, 'Integration tests')")]
# Example workflows that need only Show-1 weights; each runs at its own sizes with every steps-like
# input capped at STEP_CAP (the fourth also needs an SD checkpoint).
RUNNABLE = ["show1_published_cascade", "show1_hybrid_latent_interpolation", "show1_interpolate_your_images"]
STEP_CAP = 3
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, demo_root: Path, extra_args: tuple[str, ...] = ()):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        for d in ("custom_nodes", "output", "input", "user", "temp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "custom_nodes" / "ComfyUI-Show1").symlink_to(ROOT)
        (root / "extra_model_paths.yaml").write_text(
            f"show1_test:\n  base_path: {root}\n  custom_nodes: custom_nodes\n  show1: {demo_root}\n")
        self.log = open(root / "server.log", "w")
        python = os.environ.get("COMFYUI_PYTHON", sys.executable)
        self.process = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port), "--output-directory",
             str(root / "output"), "--input-directory", str(root / "input"), "--user-directory", str(root / "user"),
             "--temp-directory", str(root / "temp"), "--database-url", "sqlite:///:memory:", "--disable-auto-launch",
             "--disable-api-nodes", "--extra-model-paths-config", str(root / "extra_model_paths.yaml"), *extra_args],
            cwd=COMFYUI_DIR, stdout=self.log, stderr=subprocess.STDOUT)
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
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_root):
    s = Server(tmp_path_factory.mktemp("comfyui"), demo_root)
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
    validation of the workflows reads the same)."""
    for name, declared in declared_object_info(pack.NODES).items():
        live = object_info[name]
        for key in ("input", "input_order", "output", "output_name", "output_node", "category"):
            assert json.loads(json.dumps(live[key])) == json.loads(json.dumps(declared[key])), (name, key)


def capped_prompt(name: str, object_info: dict) -> tuple[dict, dict]:
    """The workflow as shipped, every steps-like input capped at STEP_CAP."""
    workflow = load(next(p for p in workflow_files() if p.stem == name))
    prompt = to_api(workflow, object_info)
    for node in prompt.values():
        for key in STEP_INPUTS:
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = min(node["inputs"][key], STEP_CAP)
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = f"video/{name}"
    return prompt, workflow


@pytest.mark.parametrize("name", RUNNABLE)
def test_example_workflow_finishes_on_the_cpu_and_writes_its_mp4(server, object_info, name, pack):
    """As shipped (published sizes), steps capped at 3, on 2 CPU cores with the tiny weights; the
    video has the frame count and size the readout predicts from the graph."""
    from show1_core.video import read_mp4

    prompt, workflow = capped_prompt(name, object_info)
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
    print(f"{name}: {took:.0f} s, {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}")


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


def test_cancel_stops_within_a_step_and_leaves_nothing(server, object_info):
    import websocket  # websocket-client

    ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws?clientId=show1-tests", timeout=600)
    before = set((server.root / "output").rglob("*.mp4"))
    prompt, workflow = small_prompt("show1_published_cascade", object_info,
                                    Show1KeyframeSampler={"steps": 400, "width": 64, "height": 40})
    prompt_id = server.queue(prompt, workflow)
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "Show1KeyframeSampler")
    step_times, interrupted_at, interrupted = [], None, None
    while interrupted is None:
        message = ws.recv()
        if not isinstance(message, str):
            continue
        event = json.loads(message)
        data = event.get("data", {})
        if event["type"] == "progress" and data.get("node") == sampler and data.get("prompt_id") == prompt_id:
            step_times.append(time.time())
            if data["value"] == 3 and interrupted_at is None:
                interrupted_at = time.time()
                threading.Thread(target=server.post, args=("/interrupt", {})).start()
        elif event["type"] in ("execution_interrupted", "execution_error", "execution_success"):
            if data.get("prompt_id") == prompt_id:
                interrupted = event
    ws.close()
    step = (step_times[2] - step_times[0]) / 2
    assert interrupted["type"] == "execution_interrupted", interrupted
    assert time.time() - interrupted_at < max(2 * step, 5.0)
    assert len([t for t in step_times if t > interrupted_at]) <= 1, "more than one step ran after Cancel"
    assert server.get("/system_stats")["system"]
    assert set((server.root / "output").rglob("*.mp4")) == before, "a partial video was left behind"
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

def comfy_check(name: str, demo_root: Path) -> dict:
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, str(Path(__file__).parent / "comfy_checks.py"), str(demo_root), name],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "COMFYUI_DIR": COMFYUI_DIR})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_model_is_made_of_layers_comfyui_can_cast(demo_root):
    found = comfy_check("castable", demo_root)
    print("castable fraction of the parameter bytes:", found["fractions"])
    assert set(found["fractions"]) == {"base", "interpolation", "sr1", "if_ii", "sr2", "vae", "t5", "clip"}
    assert all(f >= 0.95 for f in found["fractions"].values()), found["fractions"]
    assert found["patched_models"] == ["Show1UNet"] * 5 + ["AutoencoderKL", "T5Encoder", "CLIPTextEncoder"]


def test_a_unet_loaded_in_part_computes_what_it_computes_whole(demo_root):
    found = comfy_check("partial_load", demo_root)
    print("partial load:", found)
    for weight_dtype, r in found.items():
        assert r["lowvram"] and r["cast_layers"] > r["layers"] // 2, (weight_dtype, r)
        assert r["loaded_bytes"] <= r["model_bytes"] // 4, (weight_dtype, r)
        assert r["max_abs_diff"] == 0.0, (weight_dtype, r)


def test_stages_ask_for_their_activation_estimate_and_never_force_a_full_load(demo_root):
    calls = comfy_check("load_requests", demo_root)["calls"]
    assert calls and not any(c["force_full_load"] for c in calls), calls
    assert all(c["memory_required"] > 0 for c in calls), calls
    assert {c["model"] for c in calls} == {"T5Encoder", "CLIPTextEncoder", "Show1UNet", "AutoencoderKL"}


def test_the_patcher_class_is_looked_up_when_a_model_is_wrapped(demo_root):
    found = comfy_check("dynamic_patcher", demo_root)
    assert found == {"patcher": "DynamicPatcher", "meta_at_wrap": [True], "weights_after": "cpu",
                     "size_matches": True}


def test_comfyuis_t5_gives_show1s_embeddings(demo_root):
    found = comfy_check("t5_equality", demo_root)
    print("T5:", found)
    assert found["missing"] == [] and found["unexpected"] == []
    assert found["module_max_abs_diff"] < 1e-5 < found["masked_positions_matter"]
    assert found["node_positive_diff"] < 1e-5 and found["node_negative_diff"] < 1e-5
    assert found["shape"] == [1, 77, 32]
    assert (found["negative_tokens"], found["end_token"]) == (1, 1)  # the empty negative: the end token alone
