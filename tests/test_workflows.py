"""Every example workflow against the registered nodes: node types exist, widget values are valid,
links connect matching types; each has a thumbnail. Built-in ComfyUI nodes are checked against the
node definitions ComfyUI 0.3.64 serves (recorded in tests/data); the integration test re-checks
against a live server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflows import (
    WORKFLOW_DIR,
    declared_object_info,
    load,
    problems,
    to_api,
    workflow_files,
)

BUILTIN = Path(__file__).parent / "data" / "comfyui_0.3.64_object_info.json"


def pack_object_info(pack) -> dict:
    return declared_object_info(pack.NODES)


@pytest.fixture(scope="module")
def object_info(pack):
    return {**json.loads(BUILTIN.read_text()), **pack_object_info(pack)}


def test_the_example_workflows_are_there():
    names = {p.stem for p in workflow_files()}
    assert names == {"show1_published_cascade", "show1_hybrid_latent_interpolation",
                     "show1_interpolate_your_images", "show1_sd_keyframes_to_video", "show1_comfy_t5_keyframes",
                     "show1_storyboard", "show1_storyboard_keyframes"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_workflow_is_valid(path, object_info):
    workflow = load(path)
    assert workflow.get("version") == 0.4 and "nodes" in workflow and "links" in workflow
    assert without_user_files(path, problems(workflow, object_info)) == []
    assert path.with_suffix(".jpg").is_file(), "ComfyUI shows <name>.jpg as the template's thumbnail"
    prompt = to_api(workflow, object_info)
    assert any(n["class_type"] == "SaveVideo" for n in prompt.values())


def test_comfy_t5_workflow_feeds_comfyuis_t5xxl_to_the_pixel_stages(object_info):
    prompt = to_api(load(WORKFLOW_DIR / "show1_comfy_t5_keyframes.json"), object_info)
    loader = next(k for k, n in prompt.items() if n["class_type"] == "CLIPLoader")
    assert prompt[loader]["inputs"]["type"] == "pixart" and prompt[loader]["inputs"]["clip_name"].startswith("t5xxl")
    encode = next(n for n in prompt.values() if n["class_type"] == "Show1TextEncode")
    assert encode["inputs"]["t5"] == [loader, 0] and "text_encoder" not in encode["inputs"]


def test_published_cascade_is_the_published_chain(object_info):
    workflow = load(Path(workflow_files()[0]).parent / "show1_published_cascade.json")
    prompt = to_api(workflow, object_info)
    by_type = {n["class_type"]: n["inputs"] for n in prompt.values() if n["class_type"] != "Show1ModelLoader"}
    kf = by_type["Show1KeyframeSampler"]
    assert {k: kf[k] for k in ("num_frames", "width", "height", "steps", "guidance", "seed")} == {
        "num_frames": 8, "width": 64, "height": 40, "steps": 75, "guidance": 9.0, "seed": 345}
    assert (by_type["Show1PixelInterpolate"]["steps"], by_type["Show1PixelInterpolate"]["guidance"]) == (75, 4.0)
    assert (by_type["Show1PixelUpscale"]["steps"], by_type["Show1PixelUpscale"]["noise_level"]) == (125, 250)
    assert by_type["Show1PixelUpscale"]["if_ii"][0] in prompt
    assert by_type["Show1VAEEncode"]["resize"] == "published"
    assert (by_type["Show1VAEEncode"]["width"], by_type["Show1VAEEncode"]["height"]) == (576, 320)
    assert (by_type["Show1LatentUpscale"]["strength"], by_type["Show1LatentUpscale"]["steps"]) == (0.8, 50)
    models = sorted(n["inputs"]["model"] for n in prompt.values() if n["class_type"] == "Show1ModelLoader")
    assert models == ["IF-II-L-v1.0 (if_ii)", "show-1-base (base)", "show-1-interpolation (interpolation)",
                      "show-1-sr1 (sr1)", "show-1-sr2 (sr2)"]


def test_a_wrong_workflow_is_caught(object_info):
    workflow = load(workflow_files()[0])
    broken = json.loads(json.dumps(workflow))
    sampler = next(n for n in broken["nodes"] if n["type"] == "Show1KeyframeSampler")
    sampler["widgets_values"][0] = 1000  # num_frames above its maximum
    broken["links"][0][5] = "IMAGE"
    found = problems(broken, object_info)
    assert any("num_frames: 1000 outside" in p for p in found) and any("is not IMAGE" in p for p in found)


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.stem)
def test_every_show1_node_passes_its_own_validation(path, object_info, pack):
    """What ComfyUI runs at queue time (validate_inputs, with links as None) accepts the shipped values."""
    prompt = to_api(load(path), object_info)
    for node_id, node in prompt.items():
        declaration = pack.NODES.get(node["class_type"])
        if declaration is None:
            continue
        values = {k: None if isinstance(v, list) else v for k, v in node["inputs"].items()}
        assert declaration.validate_inputs(**values) is True, (node_id, node["class_type"])


def without_user_files(path, found: list[str]) -> list[str]:
    """Problems of a workflow, less the combo values that name the user's own files (an SD checkpoint,
    a t5xxl file), which no test machine has."""
    user_files = {"show1_sd_keyframes_to_video": "ckpt_name", "show1_comfy_t5_keyframes": "clip_name"}
    return [p for p in found if user_files.get(path.stem, "\0") not in p]


PREVIOUS_RELEASE = sorted((Path(__file__).parent / "data" / "previous_release").glob("*.json"))


@pytest.mark.parametrize("path", PREVIOUS_RELEASE, ids=lambda p: p.stem)
def test_a_workflow_saved_by_the_previous_release_loads_unchanged(path, object_info, pack):
    """Workflows saved before the nodes were declared in V3 (and before the loaders had weight_dtype):
    same node ids, same input names, the same widget values in the same places; the new optional
    widgets take their defaults."""
    workflow = load(path)
    assert without_user_files(path, problems(workflow, object_info)) == []
    old = to_api(workflow, object_info)
    current = to_api(load(WORKFLOW_DIR / path.name), object_info)
    assert old.keys() == current.keys()
    for node_id, node in old.items():
        assert node["class_type"] == current[node_id]["class_type"]
        assert node["inputs"] == {k: v for k, v in current[node_id]["inputs"].items() if k in node["inputs"]}
        missing = set(current[node_id]["inputs"]) - set(node["inputs"])
        assert missing <= {"weight_dtype"}, missing
        declaration = pack.NODES.get(node["class_type"])
        if declaration is not None:
            values = {k: None if isinstance(v, list) else v for k, v in node["inputs"].items()}
            assert declaration.validate_inputs(**values) is True
