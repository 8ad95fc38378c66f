"""Loading stage folders: every weight layout save_pretrained writes, strict keys, stage recognition,
schedulers from the folder's config, and every error message."""

from __future__ import annotations

import inspect
import json
import shutil

import pytest
import torch
from conftest import fixture_model, needs_parity

from show1_core.errors import ModelLoadError
from show1_core.folders import inspect_stage
from show1_core.loading import load_stage, load_text_encoder, load_vae
from show1_core.precision import Precision
from show1_core.settings import SR1Settings
from show1_core.stage import StageKind
from show1_core.weights import choose_files, iter_tensors

pytestmark = needs_parity

EXPECTED_KIND = {"base": StageKind.BASE, "interp": StageKind.INTERPOLATION, "sr1": StageKind.SR1,
                 "if_ii": StageKind.IF_II, "sr2": StageKind.SR2}


def file_keys(directory, library="diffusers") -> set[str]:
    ws, files = choose_files([p.name for p in directory.iterdir()], library)
    return set(dict(iter_tensors(directory / files[0])))


@pytest.mark.parametrize("key", sorted(EXPECTED_KIND))
def test_fixture_unet_loads_strictly_with_every_key(key):
    folder = fixture_model(key)
    stage = load_stage(folder)
    assert stage.kind is EXPECTED_KIND[key]
    assert set(stage.unet.state_dict()) == file_keys(folder / "unet")
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in stage.unet.parameters())
    assert not any(m.training for m in stage.unet.modules()), "inference must run in eval mode"


def test_fixture_vae_and_text_encoders_load_strictly():
    vae = load_vae(fixture_model("sr2"))
    assert set(vae.state_dict()) == file_keys(fixture_model("sr2") / "vae")
    t5 = load_text_encoder(fixture_model("base"))
    clip = load_text_encoder(fixture_model("sr2"))
    assert (t5.kind, t5.width, clip.kind, clip.width) == ("t5", 32, "clip", 32)
    assert not t5.model.training and not clip.model.training


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def diffusers_vae(ours: torch.nn.Module):
    """diffusers' own AutoencoderKL holding our weights (it writes the layouts users have)."""
    from diffusers import AutoencoderKL

    model = AutoencoderKL.from_config(json.loads((fixture_model("sr2") / "vae" / "config.json").read_text()))
    model.load_state_dict(ours.state_dict(), strict=True)
    return model


def transformers_t5(ours: torch.nn.Module):
    """transformers' own T5EncoderModel holding our weights (its embed_tokens is tied to shared)."""
    from transformers import T5Config, T5EncoderModel

    model = T5EncoderModel(T5Config.from_pretrained(str(fixture_model("base") / "text_encoder")))
    missing, unexpected = model.load_state_dict(ours.state_dict(), strict=False)
    assert set(missing) <= {"encoder.embed_tokens.weight"} and not unexpected
    return model


LAYOUTS = [(safe, variant, shards) for safe in (True, False) for variant in (None, "fp16") for shards in (False, True)]


@pytest.mark.parametrize("safe,variant,sharded", LAYOUTS)
def test_every_diffusers_layout_loads(tmp_path, safe, variant, sharded):
    """What diffusers' own save_pretrained writes (the VAE goes through the same reader as the UNets)."""
    reference = load_vae(fixture_model("sr2"))
    folder = tmp_path / "show-1-sr2"
    shutil.copytree(fixture_model("sr2"), folder, ignore=shutil.ignore_patterns("vae"))
    diffusers_vae(reference).save_pretrained(str(folder / "vae"), safe_serialization=safe, variant=variant,
                              max_shard_size="200KB" if sharded else "10GB")
    names = sorted(p.name for p in (folder / "vae").iterdir())
    assert any("-of-" in n for n in names) == sharded
    assert same_weights(load_vae(folder, variant=variant), reference)


@pytest.mark.parametrize("safe,variant,sharded", LAYOUTS)
def test_every_transformers_layout_loads(tmp_path, safe, variant, sharded):
    """What transformers' save_pretrained writes for the T5 encoder (pickles as transformers 4 wrote
    them, where the installed release no longer writes .bin)."""
    reference = load_text_encoder(fixture_model("base")).model
    folder = tmp_path / "show-1-base"
    shutil.copytree(fixture_model("base"), folder, ignore=shutil.ignore_patterns("text_encoder"))
    target = folder / "text_encoder"
    size = "40KB" if sharded else "10GB"
    writer = transformers_t5(reference)
    if safe or "safe_serialization" not in inspect.signature(writer.save_pretrained).parameters:
        if not safe:
            pytest.skip("this transformers release writes only safetensors; .bin layouts are covered by the "
                        "parity fixtures and test_every_bin_layout_of_transformers_loads")
        writer.save_pretrained(str(target), variant=variant, max_shard_size=size)
    else:
        writer.save_pretrained(str(target), variant=variant, max_shard_size=size, safe_serialization=False)
    assert any("-of-" in p.name for p in target.iterdir()) == sharded
    assert same_weights(load_text_encoder(folder, variant=variant).model, reference)


@pytest.mark.parametrize("variant,sharded", [(None, False), (None, True), ("fp16", False), ("fp16", True)])
def test_every_bin_layout_of_transformers_loads(tmp_path, variant, sharded):
    """pytorch_model[.fp16].bin and pytorch_model[.fp16]-0000x-of-0000N.bin + index, as transformers 4
    names them, written here by hand."""
    reference = load_text_encoder(fixture_model("base")).model
    folder = tmp_path / "show-1-base"
    shutil.copytree(fixture_model("base"), folder, ignore=shutil.ignore_patterns("text_encoder"))
    target = folder / "text_encoder"
    target.mkdir()
    shutil.copy(fixture_model("base") / "text_encoder" / "config.json", target)
    state = {k: v.half() for k, v in reference.state_dict().items()}
    v = f".{variant}" if variant else ""
    if not sharded:
        torch.save(state, target / f"pytorch_model{v}.bin")
    else:
        keys, weight_map = list(state), {}
        for i in range(2):
            name = f"pytorch_model{v}-0000{i + 1}-of-00002.bin"
            torch.save({k: state[k] for k in keys[i::2]}, target / name)
            weight_map.update(dict.fromkeys(keys[i::2], name))
        (target / f"pytorch_model.bin.index{v}.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    assert same_weights(load_text_encoder(folder, variant=variant).model, reference)


@pytest.fixture
def sr1_copy(tmp_path):
    folder = tmp_path / "show-1-sr1"
    shutil.copytree(fixture_model("sr1"), folder)
    return folder, folder / "unet" / "diffusion_pytorch_model.bin"


def test_safetensors_are_preferred_and_the_default_names_before_a_variant(sr1_copy):
    from safetensors.torch import save_file

    folder, weights = sr1_copy
    state = {k: t.clone() for k, t in iter_tensors(weights)}
    zeros = {k: torch.zeros_like(t) for k, t in state.items()}
    save_file({k: t.contiguous() for k, t in state.items()}, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    torch.save(zeros, weights)  # a distinguishable .bin beside it
    save_file(zeros, str(folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"))
    default = load_stage(folder, Precision(torch.bfloat16))
    assert all(p.dtype == torch.bfloat16 for p in default.unet.parameters())
    assert any(float(p.abs().sum()) > 0 for p in default.unet.parameters())
    variant = load_stage(folder, variant="fp16")
    assert all(float(p.abs().sum()) == 0 for p in variant.unet.parameters())


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_bin_with_code_is_refused(sr1_copy, capsys):
    folder, weights = sr1_copy
    torch.save({"x": Payload()}, weights)
    with pytest.raises(ModelLoadError, match=r"diffusion_pytorch_model\.bin cannot be read as a PyTorch state dict "
                                             r"with weights_only loading.*re-download"):
        load_stage(folder)
    assert "code ran" not in capsys.readouterr().out


def test_missing_key_names_the_file_and_the_key(sr1_copy):
    folder, weights = sr1_copy
    state = {k: t.clone() for k, t in iter_tensors(weights)}
    del state["conv_in.weight"]
    torch.save(state, weights)
    with pytest.raises(ModelLoadError) as e:
        load_stage(folder)
    message = str(e.value)
    assert str(weights) in message and "missing: conv_in.weight" in message and "re-download" in message


def test_unexpected_key_is_an_error(sr1_copy):
    folder, weights = sr1_copy
    state = {k: t.clone() for k, t in iter_tensors(weights)}
    state["extra.weight"] = torch.zeros(1, dtype=torch.float16)
    torch.save(state, weights)
    with pytest.raises(ModelLoadError, match=r"unexpected: extra\.weight"):
        load_stage(folder)


def test_wrong_shape_is_an_error(sr1_copy):
    folder, weights = sr1_copy
    state = {k: t.clone() for k, t in iter_tensors(weights)}
    state["conv_in.bias"] = torch.zeros(3, dtype=torch.float16)
    torch.save(state, weights)
    with pytest.raises(ModelLoadError, match=r"wrong shape: conv_in\.bias \(3,\) != \(32,\)"):
        load_stage(folder)


def test_truncated_files(tmp_path):
    folder = tmp_path / "IF-II-L-v1.0"
    shutil.copytree(fixture_model("if_ii"), folder)
    weights = folder / "unet" / "diffusion_pytorch_model.fp16.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=r"diffusion_pytorch_model\.fp16\.safetensors is truncated: \d+ bytes on "
                                             r"disk, \d+ expected; re-download"):
        load_stage(folder)


def test_truncated_bin(sr1_copy):
    folder, weights = sr1_copy
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match=r"diffusion_pytorch_model\.bin is truncated or damaged \(its zip directory "
                                             r"is missing"):
        load_stage(folder)


def test_git_lfs_pointer(sr1_copy):
    folder, weights = sr1_copy
    weights.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    with pytest.raises(ModelLoadError, match=r"is a git-lfs pointer file .* run `git lfs pull`"):
        load_stage(folder)


def test_missing_weights_file_lists_the_names_of_the_shared_table(sr1_copy):
    folder, weights = sr1_copy
    weights.unlink()
    with pytest.raises(ModelLoadError, match=r"unet: no weight file found \(looked for "
                                             r"diffusion_pytorch_model\.safetensors, diffusion_pytorch_model\.fp16\."
                                             r"safetensors, diffusion_pytorch_model\.bin, diffusion_pytorch_model\.fp16"
                                             r"\.bin, single or sharded with an index\); re-download"):
        load_stage(folder)


def test_missing_shard_and_broken_index(tmp_path):
    folder = tmp_path / "show-1-base"
    shutil.copytree(fixture_model("base"), folder)
    encoder = folder / "text_encoder"
    (encoder / "pytorch_model-00002-of-00002.bin").unlink()
    with pytest.raises(ModelLoadError, match=r"pytorch_model-00002-of-00002\.bin: shard listed in "
                                             r"pytorch_model\.bin\.index\.json is missing; re-download"):
        load_text_encoder(folder)
    (encoder / "pytorch_model.bin.index.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin\.index\.json: not a valid shard index"):
        load_text_encoder(folder)


def test_broken_text_encoder_weights(tmp_path):
    folder = tmp_path / "show-1-sr2"
    shutil.copytree(fixture_model("sr2"), folder)
    weights = folder / "text_encoder" / "pytorch_model.bin"
    weights.write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ModelLoadError, match=r"text_encoder/pytorch_model\.bin is a git-lfs pointer"):
        load_text_encoder(folder)


def test_folder_without_model_index(tmp_path):
    with pytest.raises(ModelLoadError, match=r"is not a Show-1 stage folder: it has no model_index\.json"):
        load_stage(tmp_path)


def edit_config(folder, component, **changes):
    path = folder / component / ("config.json" if component in ("unet", "vae") else "scheduler_config.json")
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def test_folder_of_another_model(sr1_copy):
    folder, _ = sr1_copy
    edit_config(folder, "unet", in_channels=5)
    with pytest.raises(ModelLoadError, match=r"is not one of the Show-1 stages"):
        load_stage(folder)


def test_unsupported_block_in_a_config(sr1_copy):
    folder, _ = sr1_copy
    edit_config(folder, "unet", up_block_types=["CrossAttnUpBlock2D", "ResnetUpsampleBlock3D"])
    with pytest.raises(ModelLoadError, match=r"up block 'CrossAttnUpBlock2D' is not used by any Show-1 checkpoint"):
        load_stage(folder)


def test_stage_is_recognised_from_configs_not_the_folder_name(tmp_path):
    for key, kind in EXPECTED_KIND.items():
        copy = tmp_path / f"misleading-show-1-base-{key}"
        shutil.copytree(fixture_model(key), copy, ignore=shutil.ignore_patterns("*.bin", "*.safetensors"))
        assert inspect_stage(copy).kind is kind


def test_wrong_stage_for_the_caller():
    with pytest.raises(ModelLoadError, match=r"holds pixel interpolation .*but keyframes \(show-1-base\) is needed "
                                             r"here; select the show-1-base folder"):
        load_stage(fixture_model("interp"), expect=StageKind.BASE)


def test_text_encoder_from_a_stage_without_one():
    with pytest.raises(ModelLoadError, match=r"has no text encoder: T5 comes from the show-1-base folder"):
        load_text_encoder(fixture_model("sr1"))


# --- schedulers from the folder's config ---------------------------------------------------------

def test_the_hub_schedulers_are_built_with_the_values_of_their_release():
    """The hub configs lack final_sigmas_type; diffusers after 0.19 defaults it to "zero", which lands the
    last step on sigma 0 and changes every video. The stage keeps 0.19's ending (sigma_min)."""
    for key in ("base", "interp", "sr1", "sr2"):
        scheduler = load_stage(fixture_model(key)).scheduler()
        assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
        assert scheduler.config.final_sigmas_type == "sigma_min"
        scheduler.set_timesteps(5)
        last = scheduler.sigmas[-1].item()
        expected = ((1 - scheduler.alphas_cumprod[0]) / scheduler.alphas_cumprod[0]).sqrt().item()
        assert last == pytest.approx(expected) and last > 0
    ddpm = load_stage(fixture_model("if_ii")).scheduler()
    assert type(ddpm).__name__ == "DDPMScheduler" and ddpm.config.variance_type == "learned_range"


def test_a_key_the_config_names_is_kept(sr1_copy):
    folder, _ = sr1_copy
    edit_config(folder, "scheduler", final_sigmas_type="zero")
    assert load_stage(folder).scheduler().config.final_sigmas_type == "zero"


@pytest.mark.parametrize("name", ["DDIMScheduler", "EulerDiscreteScheduler", "UniPCMultistepScheduler"])
def test_any_scheduler_diffusers_offers_for_the_model_drives_a_stage(sr1_copy, name):
    from show1_core.stages import super_resolve_pixels
    from show1_core.text import PromptEmbeddings

    folder, _ = sr1_copy
    edit_config(folder, "scheduler", _class_name=name)
    stage = load_stage(folder)
    assert type(stage.scheduler()).__name__ == name
    embeds = PromptEmbeddings(torch.randn(1, 77, 32), torch.randn(1, 77, 32), "t5")
    video = torch.rand(1, 3, 2, 4, 6) * 2 - 1
    out = super_resolve_pixels(stage, embeds, video, SR1Settings(steps=3, seed=0))
    assert out.shape == (1, 3, 2, 16, 24) and torch.isfinite(out).all()


@pytest.mark.parametrize("name,message", [
    ("FlowMatchEulerDiscreteScheduler", r"cannot drive a Show-1 stage"),
    ("NoSuchScheduler", r"is not a scheduler of the installed diffusers"),
])
def test_a_scheduler_that_cannot_drive_the_stage_fails_at_load(sr1_copy, name, message):
    folder, _ = sr1_copy
    edit_config(folder, "scheduler", _class_name=name)
    with pytest.raises(ModelLoadError, match=rf"scheduler/scheduler_config\.json: scheduler {name} {message}.*"
                                             r"DPMSolverMultistepScheduler"):
        load_stage(folder)


def test_a_text_encoder_config_with_an_activation_the_model_cannot_build_is_named():
    from show1_core.models.clip import CLIPTextConfig
    from show1_core.models.t5 import T5Config

    clip = dict(vocab_size=99, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4)
    with pytest.raises(ModelLoadError, match=r"^text_encoder/config.json: hidden_act 'swish' is not an activation of "
                                             r"show-1-sr2's CLIP; use one of gelu, gelu_new, quick_gelu$"):
        CLIPTextConfig.from_dict({**clip, "hidden_act": "swish"})
    t5 = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
    with pytest.raises(ModelLoadError, match=r"^text_encoder/config.json: activation 'swish' is not an activation of "
                                             r"show-1-base's T5"):
        T5Config.from_dict({**t5, "feed_forward_proj": "gated-swish"})
    assert CLIPTextConfig.from_dict(clip).hidden_act == "quick_gelu" and T5Config.from_dict(t5).gated
