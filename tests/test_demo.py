"""The tiny demo stage folders: real layout, loadable by the real loaders, seeded."""

from __future__ import annotations

import hashlib

from show1_core.demo import is_demo_folder, write_demo_models
from show1_core.loading import STAGE_FOLDERS, StageKind, inspect_stage


def test_all_five_stages_in_hub_layout(demo_root):
    for kind, name in STAGE_FOLDERS.items():
        folder = demo_root / name
        info = inspect_stage(folder)
        assert info.kind is kind and is_demo_folder(folder)
        assert (folder / "model_index.json").is_file() and (folder / "scheduler" / "scheduler_config.json").is_file()
    assert (demo_root / "show-1-base" / "tokenizer" / "spiece.model").is_file()
    assert (demo_root / "show-1-base" / "text_encoder" / "model.fp16.safetensors").is_file()
    assert (demo_root / "show-1-base" / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (demo_root / "show-1-sr1" / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(inspect_stage(demo_root / "show-1-sr2").components)


def test_demo_weights_are_seeded(tmp_path, demo_root):
    write_demo_models(tmp_path, stages=[StageKind.BASE, StageKind.INTERPOLATION])

    def digest(root, path):
        return hashlib.sha256((root / path).read_bytes()).hexdigest()

    for path in ("show-1-interpolation/unet/diffusion_pytorch_model.fp16.safetensors",
                 "show-1-base/tokenizer/spiece.model"):
        assert digest(tmp_path, path) == digest(demo_root, path)
