"""Loading stage folders: strict keys, stage recognition, variants, dtypes and every error message."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import fixture_model, needs_parity
from show1_core.errors import ModelLoadError
from show1_core.loading import StageKind, inspect_stage, load_stage, load_vae
from show1_core.text import load_text_encoder

pytestmark = needs_parity

EXPECTED_KIND = {"base": StageKind.BASE, "interp": StageKind.INTERPOLATION, "sr1": StageKind.SR1,
                 "if_ii": StageKind.IF_II, "sr2": StageKind.SR2}


def weight_keys(path) -> set[str]:
    with safe_open(str(path), "pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("key", sorted(EXPECTED_KIND))
def test_fixture_unet_loads_strictly_with_every_key(key):
    folder = fixture_model(key)
    stage = load_stage(folder)
    assert stage.kind is EXPECTED_KIND[key]
    files = list((folder / "unet").glob("*.safetensors"))
    assert len(files) == 1
    assert set(stage.unet.state_dict()) == weight_keys(files[0])
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in stage.unet.parameters())
    assert not any(m.training for m in stage.unet.modules()), "inference must run in eval mode"


def test_fixture_vae_and_text_encoders_load_strictly():
    vae = load_vae(fixture_model("sr2"))
    assert set(vae.state_dict()) == weight_keys(fixture_model("sr2") / "vae" / "diffusion_pytorch_model.safetensors")
    t5 = load_text_encoder(fixture_model("base"))
    clip = load_text_encoder(fixture_model("sr2"))
    assert (t5.kind, t5.width, clip.kind, clip.width) == ("t5", 32, "clip", 32)
    assert not t5.model.training and not clip.model.training


def test_stage_is_recognised_from_configs_not_the_folder_name(tmp_path):
    for key, kind in EXPECTED_KIND.items():
        copy = tmp_path / f"misleading-show-1-base-{key}"
        shutil.copytree(fixture_model(key), copy)
        assert inspect_stage(copy).kind is kind


def test_dtype_and_variant_are_the_callers_choice(tmp_path):
    folder = tmp_path / "interp"
    shutil.copytree(fixture_model("interp"), folder)
    fp16 = folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    state = load_file(str(fp16))
    full = {k: v.float() * 0 for k, v in state.items()}  # a distinguishable default-named file
    save_file(full, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    default = load_stage(folder, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in default.unet.parameters())
    assert all(float(p.abs().sum()) == 0 for p in default.unet.parameters())
    variant = load_stage(folder, variant="fp16")
    assert any(float(p.abs().sum()) > 0 for p in variant.unet.parameters())


def test_bin_weights_load_through_weights_only(tmp_path):
    folder = tmp_path / "interp"
    shutil.copytree(fixture_model("interp"), folder)
    fp16 = folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    torch.save(load_file(str(fp16)), folder / "unet" / "diffusion_pytorch_model.bin")
    fp16.unlink()
    reference = load_stage(fixture_model("interp"))
    loaded = load_stage(folder)
    for (k, a), (_, b) in zip(reference.unet.state_dict().items(), loaded.unet.state_dict().items()):
        assert torch.equal(a, b), k


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_bin_with_code_is_refused(tmp_path):
    folder = tmp_path / "interp"
    shutil.copytree(fixture_model("interp"), folder)
    (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").unlink()
    torch.save({"x": Payload()}, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"diffusion_pytorch_model\.bin cannot be read as a PyTorch state dict.*"
                                             r"re-download"):
        load_stage(folder)


@pytest.fixture
def interp_copy(tmp_path):
    folder = tmp_path / "show-1-interpolation"
    shutil.copytree(fixture_model("interp"), folder)
    return folder, folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"


def test_missing_key_names_the_file_and_the_key(interp_copy):
    folder, weights = interp_copy
    state = load_file(str(weights))
    del state["conv_in.weight"]
    save_file(state, str(weights))
    with pytest.raises(ModelLoadError) as e:
        load_stage(folder)
    message = str(e.value)
    assert str(weights) in message and "missing: conv_in.weight" in message and "re-download" in message


def test_unexpected_key_is_an_error(interp_copy):
    folder, weights = interp_copy
    state = load_file(str(weights))
    state["extra.weight"] = torch.zeros(1, dtype=torch.float16)
    save_file(state, str(weights))
    with pytest.raises(ModelLoadError, match=r"unexpected: extra\.weight"):
        load_stage(folder)


def test_wrong_shape_is_an_error(interp_copy):
    folder, weights = interp_copy
    state = load_file(str(weights))
    state["conv_in.bias"] = torch.zeros(3, dtype=torch.float16)
    save_file(state, str(weights))
    with pytest.raises(ModelLoadError, match=r"wrong shape: conv_in\.bias \(3,\) != \(32,\)"):
        load_stage(folder)


def test_truncated_safetensors(interp_copy):
    folder, weights = interp_copy
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"diffusion_pytorch_model\.fp16\.safetensors is truncated: \d+ bytes on "
                                             r"disk, \d+ expected; re-download"):
        load_stage(folder)


def test_git_lfs_pointer(interp_copy):
    folder, weights = interp_copy
    weights.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ModelLoadError, match=r"is a git-lfs pointer file .* run `git lfs pull`"):
        load_stage(folder)


def test_missing_weights_file(interp_copy):
    folder, weights = interp_copy
    weights.unlink()
    with pytest.raises(ModelLoadError, match=r"unet: no weight file found \(looked for "
                                             r"diffusion_pytorch_model\.safetensors.*re-download"):
        load_stage(folder)


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelLoadError, match=r"is not a Show-1 stage folder: it has no model_index\.json"):
        load_stage(tmp_path)


def test_folder_of_another_model(interp_copy):
    folder, _ = interp_copy
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["in_channels"] = 5
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"is not one of the Show-1 stages"):
        load_stage(folder)


def test_unsupported_block_in_a_pixel_config(interp_copy):
    folder, _ = interp_copy
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["up_block_types"][0] = "CrossAttnUpBlock3D"
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"up block 'CrossAttnUpBlock3D' is not used by any Show-1 pixel"):
        load_stage(folder)


def test_wrong_stage_for_the_caller():
    with pytest.raises(ModelLoadError, match=r"holds pixel interpolation .*but keyframes \(show-1-base\) is needed "
                                             r"here; select the show-1-base folder"):
        load_stage(fixture_model("interp"), expect=StageKind.BASE)


def test_text_encoder_from_a_stage_without_one():
    with pytest.raises(ModelLoadError, match=r"has no text encoder: T5 comes from the show-1-base folder"):
        load_text_encoder(fixture_model("sr1"))


def test_broken_text_encoder_weights(tmp_path):
    folder = tmp_path / "base"
    shutil.copytree(fixture_model("base"), folder)
    weights = folder / "text_encoder" / "model.fp16.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelLoadError, match=r"model\.fp16\.safetensors is truncated"):
        load_text_encoder(folder)
