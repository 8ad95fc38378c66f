"""The memory estimates against the real-size measurements they were fitted to, and the refusal of
runs that cannot fit, with the lever that makes them fit."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT

from show1_core import budget
from show1_core.budget import CascadePlan, StageNeed, require_fit
from show1_core.errors import DoesNotFit
from show1_core.folders import read_json
from show1_core.loading import build_on_meta, build_unet
from show1_core.models.vae import AutoencoderKL, VAEConfig
from show1_core.precision import Precision
from show1_core.sampling import videos_per_call

HUB = ROOT.parent / "shared" / "fixtures" / "hub_configs"
MEASURED = ROOT / "benchmarks" / "real_size_cpu.json"
FOLDERS = {"keyframes": "show-1-base", "interpolation": "show-1-interpolation", "if_ii": "IF-II-L-v1.0",
           "sr1": "show-1-sr1", "sr2": "show-1-sr2"}
TOLERANCE = 0.2

needs_measurements = pytest.mark.skipif(not (MEASURED.is_file() and HUB.is_dir()),
                                        reason="the real-size measurements or the hub configs are not here")


def points(stage: str) -> list[dict]:
    return json.loads(MEASURED.read_text())["stages"][stage]["points"]


@needs_measurements
@pytest.mark.parametrize("stage", sorted(FOLDERS))
def test_the_unet_estimate_holds_to_the_real_size_measurements(stage):
    """One step at the published resolution, with the real config, bf16 weights computed in fp32 on
    the CPU (the stage splits the guidance pair as its activation budget says, as it did then)."""
    unet = build_unet(read_json(HUB / FOLDERS[stage] / "unet" / "config.json"))
    unet.compute_dtype = torch.float32
    for point in points(stage):
        frames = 5 if stage == "interpolation" else point["frames"]  # interpolation: 5-frame windows, one a call
        videos = videos_per_call(unet, (frames, point["height"], point["width"]), 2, torch.device("cpu"))
        estimate = budget.unet_call_bytes(unet, frames, point["height"], point["width"], videos, cast=True)
        assert abs(estimate / point["activation_bytes"] - 1) < TOLERANCE, (stage, point, estimate)


@needs_measurements
@pytest.mark.parametrize("direction", ["encode", "decode"])
def test_the_vae_estimate_holds_to_the_real_size_measurements(direction):
    vae = build_on_meta(lambda: AutoencoderKL(VAEConfig.from_dict(read_json(HUB / "show-1-sr2" / "vae" /
                                                                             "config.json"))))
    for point in points(f"vae_{direction}"):
        estimate = budget.vae_call_bytes(vae, point["frames per chunk"], point["height"], point["width"], direction)
        assert abs(estimate / point["activation_bytes"] - 1) < TOLERANCE, (point, estimate)


@needs_measurements
def test_the_text_encoder_estimate_holds_to_the_real_size_measurement():
    import benchmarks.real_size as real
    from show1_core.models.t5 import T5Config, T5Encoder

    t5 = build_on_meta(lambda: T5Encoder(T5Config(**real.T5_XXL)))
    measured = points("t5")[0]["activation_bytes"]
    assert abs(budget.text_call_bytes(t5) / measured - 1) < TOLERANCE


GIB = 2 ** 30


def plan(weights: float, activations: float = 1, resident: bool = False) -> CascadePlan:
    return CascadePlan((StageNeed("T5", int(5 * GIB), int(GIB), transient=True),
                        StageNeed("keyframes", int(weights * GIB), int(activations * GIB)),
                        StageNeed("sr2", int(weights * GIB), int(activations * GIB))), resident)


LEVERS = {"offload": "--offload", "weights": "--weight-dtype", "text": "--t5-device cpu", "smaller": "use fewer --frames"}


def without_t5(p: CascadePlan) -> CascadePlan:
    return CascadePlan(tuple(n for n in p.needs if n.name != "T5"), p.resident)


def test_peaks_under_each_offload_policy():
    p = plan(3)
    assert p.peak("keep") == 7 * GIB  # both stages' weights and one activation; T5 has gone by then
    assert p.peak("stage") == p.peak("window") == 6 * GIB  # T5 alone is the peak
    assert plan(3, resident=True).peak("stage") == 7 * GIB  # on the CPU everything stays


def test_a_run_that_fits_passes():
    require_fit({"default": plan(3)}, ("default", "keep"), 8 * GIB, "cuda:0", LEVERS)


def test_a_run_that_fits_with_a_lever_names_it():
    plans = {"default": plan(3), "fp8_e4m3fn": plan(0.75)}
    with pytest.raises(DoesNotFit, match=r"needs about 7.0 GiB on cuda:0 .* 6.5 GiB are free; it fits with "
                                         r"--offload stage \(about 6.0 GiB\)"):
        require_fit(plans, ("default", "keep"), int(6.5 * GIB), "cuda:0", LEVERS)
    with pytest.raises(DoesNotFit, match=r"it fits with --weight-dtype fp8_e4m3fn"):
        require_fit({"default": plan(3, resident=True), "fp8_e4m3fn": plan(0.75, resident=True)},
                    ("default", "stage"), int(6.5 * GIB), "cpu", LEVERS)


def test_moving_the_text_encoder_is_named_before_lossy_weights():
    """T5 alone is the peak under offload stage (6 GiB): T5 on the CPU (4 GiB) is lossless, so it
    is the lever named, though fp8 weights would fit too."""
    plans = {"default": plan(3), "fp8_e4m3fn": plan(0.75)}
    elsewhere = {name: without_t5(p) for name, p in plans.items()}
    with pytest.raises(DoesNotFit, match=r"5.0 GiB are free; it fits with --t5-device cpu \(about 4.0 GiB\)$"):
        require_fit(plans, ("default", "stage"), 5 * GIB, "cuda:0", LEVERS, elsewhere)
    with pytest.raises(DoesNotFit, match=r"it fits with --t5-device cpu and --weight-dtype fp8_e4m3fn \(about 1.8 GiB"):
        require_fit(plans, ("default", "stage"), 2 * GIB, "cuda:0", LEVERS, elsewhere)
    with pytest.raises(DoesNotFit, match=r"even with --offload window and --t5-device cpu and --weight-dtype "
                                         r"fp8_e4m3fn it needs about 1.8 GiB"):
        require_fit(plans, ("default", "stage"), GIB, "cuda:0", LEVERS, elsewhere)


def test_a_run_that_never_fits_says_what_to_change():
    with pytest.raises(DoesNotFit, match=r"even with --offload window and --weight-dtype fp8_e4m3fn it needs about "
                                         r"6.0 GiB: use fewer --frames"):
        require_fit({"default": plan(3), "fp8_e4m3fn": plan(0.75)}, ("default", "stage"), 4 * GIB, "cuda:0", LEVERS)


@needs_measurements
def test_the_real_size_cascade_on_an_8_gib_card_is_told_to_move_t5(tmp_path, monkeypatch):
    """The published cascade from the real configs, fp16 on a GPU with 8 GiB free: T5 (8.9 GiB of
    weights) is the peak under offload stage, so the lossless lever is T5 on the CPU."""
    import shutil
    from types import SimpleNamespace

    import benchmarks.real_size as real
    from show1_core import headless
    from show1_core.options import CascadeSettings
    from show1_core.stage import StageKind

    models = tmp_path / "models"
    shutil.copytree(HUB, models)
    for folder, config in (("show-1-base", {**real.T5_XXL, "model_type": "t5"}),
                           ("show-1-sr2", {**real.CLIP_H, "model_type": "clip_text_model"})):
        (models / folder / "text_encoder").mkdir()
        (models / folder / "text_encoder" / "config.json").write_text(json.dumps(config))
    folders = headless.Folders({kind: models / name for kind, name in (
        (StageKind.BASE, "show-1-base"), (StageKind.INTERPOLATION, "show-1-interpolation"),
        (StageKind.SR1, "show-1-sr1"), (StageKind.IF_II, "IF-II-L-v1.0"), (StageKind.SR2, "show-1-sr2"))}, False)
    gpu = torch.device("cuda", 0)
    fp16 = Precision(torch.float16)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=8 * GIB))
    monkeypatch.setattr(headless, "free_bytes", lambda device: 8 * GIB)
    with pytest.raises(DoesNotFit, match=r"needs about 9.1 GiB on cuda:0 \(T5 8.9 GiB weights.*8.0 GiB are free; "
                                         r"it fits with --t5-device cpu \(about 7.6 GiB\)$"):
        headless.require_cascade_fits(folders, CascadeSettings(), fp16, "stage", gpu, gpu)
    headless.require_cascade_fits(folders, CascadeSettings(), fp16, "stage", gpu,
                                  torch.device("cpu"))
    monkeypatch.setattr(headless, "free_bytes", lambda device: 7 * GIB)
    # fp8 UNet weights alone leave T5 in fp16 (text encoders follow --text-weight-dtype): both levers
    with pytest.raises(DoesNotFit, match=r"7.0 GiB are free; it fits with --t5-device cpu and --weight-dtype "
                                         r"fp8_e4m3fn \(about 6.3 GiB"):
        headless.require_cascade_fits(folders, CascadeSettings(), fp16, "stage", gpu, gpu)
