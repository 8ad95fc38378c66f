"""Shared fixtures: the reference-parity set in ../shared and tiny demo stage folders."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from show1_core.process import pin_cpu_arithmetic  # noqa: E402

pin_cpu_arithmetic()  # before any matrix product of the session, as every application of the pack does

PARITY_DIR = ROOT.parent / "shared" / "fixtures" / "parity"
CHECKER = ROOT.parent / "shared" / "tools" / "check_parity.py"


def parity_manifest() -> dict | None:
    path = PARITY_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else None


needs_parity = pytest.mark.skipif(parity_manifest() is None, reason=f"parity fixtures not found at {PARITY_DIR}")


def fixture_model(key: str) -> Path:
    return PARITY_DIR / parity_manifest()["models"][key]["path"]


@pytest.fixture(scope="session")
def checker():
    spec = importlib.util.spec_from_file_location("check_parity", CHECKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    from show1_core.demo import write_demo_models

    root = tmp_path_factory.mktemp("show1_models")
    write_demo_models(root)
    return root


@pytest.fixture(scope="session")
def demo(demo_root):
    """Loaded demo stages and text encoders, shared by the tests that only read them."""
    from show1_core.loading import load_stage, load_text_encoder, load_vae
    from show1_core.stage import StageKind

    stages = {kind: load_stage(demo_root / kind.folder) for kind in StageKind}
    return {
        **stages,
        "vae": load_vae(demo_root / StageKind.SR2.folder),
        "t5": load_text_encoder(demo_root / StageKind.BASE.folder),
        "clip": load_text_encoder(demo_root / StageKind.SR2.folder),
    }


@pytest.fixture(scope="session")
def pack(demo_root, tmp_path_factory):
    """The pack imported as ComfyUI imports it (a package from its folder), without ComfyUI, with the
    demo stage folders as its models/show1."""
    import os

    os.environ["SHOW1_MODELS_DIR"] = str(demo_root)
    os.environ["SHOW1_OUTPUT_DIR"] = str(tmp_path_factory.mktemp("comfy_output"))
    spec = importlib.util.spec_from_file_location("comfyui_show1", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["comfyui_show1"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def nodes(pack):
    return pack.NODES


def node(nodes, name):
    return nodes[name]


@pytest.fixture(scope="session")
def loaded(nodes):
    """Every model loaded through the loader nodes."""
    def load(choice):
        return node(nodes, "Show1ModelLoader").run(model=choice, dtype="auto", offload="stage")[0]

    encoders = node(nodes, "Show1TextEncoderLoader").run(t5_model="show-1-base (base)",
                                                        clip_model="show-1-sr2 (sr2)", device="cpu", dtype="auto",
                                                        offload_after_encoding=True)[0]
    cond = node(nodes, "Show1TextEncode").run(text_encoder=encoders, prompt="a lighthouse in a storm",
                                              negative_prompt="low resolution, blur", pixel_negative_prompt="",
                                              clean_caption=False)[0]
    return {
        "base": load("show-1-base (base)"), "interp": load("show-1-interpolation (interpolation)"),
        "sr1": load("show-1-sr1 (sr1)"), "if_ii": load("IF-II-L-v1.0 (if_ii)"), "sr2": load("show-1-sr2 (sr2)"),
        "vae": node(nodes, "Show1VAELoader").run(model="show-1-sr2 (sr2)", dtype="fp32")[0], "cond": cond,
        "encoders": encoders,
    }
