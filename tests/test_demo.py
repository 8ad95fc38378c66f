"""The tiny demo stage folders: the hub's layout and formats, loadable by the real loaders, seeded."""

from __future__ import annotations

import hashlib
import json

import torch

from show1_core.demo import is_demo_folder, write_demo_models
from show1_core.folders import inspect_stage
from show1_core.stage import StageKind
from show1_core.weights import iter_tensors


def test_all_five_stages_in_hub_layout(demo_root):
    for kind in StageKind:
        folder = demo_root / kind.folder
        info = inspect_stage(folder)
        assert info.kind is kind and is_demo_folder(folder)
        assert (folder / "model_index.json").is_file() and (folder / "scheduler" / "scheduler_config.json").is_file()
    base, sr2 = demo_root / "show-1-base", demo_root / "show-1-sr2"
    assert (base / "tokenizer" / "spiece.model").is_file()
    index = json.loads((base / "text_encoder" / "pytorch_model.bin.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == ["pytorch_model-00001-of-00002.bin",
                                                          "pytorch_model-00002-of-00002.bin"]
    for folder in ("show-1-base", "show-1-interpolation", "show-1-sr1", "show-1-sr2"):
        assert (demo_root / folder / "unet" / "diffusion_pytorch_model.bin").is_file()
        config = json.loads((demo_root / folder / "scheduler" / "scheduler_config.json").read_text())
        assert config["_class_name"] == "DPMSolverMultistepScheduler" and "final_sigmas_type" not in config
    assert (demo_root / "IF-II-L-v1.0" / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (sr2 / "text_encoder" / "pytorch_model.bin").is_file() and (sr2 / "vae" / "diffusion_pytorch_model.bin").is_file()
    assert json.loads((sr2 / "model_index.json").read_text())["unet"] == ["showone.models.unet_3d_condition",
                                                                           "UNet3DConditionModel"]
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(inspect_stage(sr2).components)


def test_demo_weights_are_seeded(tmp_path, demo_root):
    write_demo_models(tmp_path, stages=[StageKind.BASE, StageKind.INTERPOLATION])
    path = "show-1-interpolation/unet/diffusion_pytorch_model.bin"
    again, first = dict(iter_tensors(tmp_path / path)), dict(iter_tensors(demo_root / path))
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    spiece = "show-1-base/tokenizer/spiece.model"
    assert hashlib.sha256((tmp_path / spiece).read_bytes()).digest() == hashlib.sha256(
        (demo_root / spiece).read_bytes()).digest()
