"""Proof that the real checkpoints load: every model of hub-layout folders built from its config on
the meta device (no weights, no memory) and compared with what the published code builds.

`python -m show1_core verify-configs DIR [--reference JSON]`: DIR holds stage folders as the hub
ships them (only the configs are needed). The reference maps "<folder>/<component>" (and
"<folder>/<component>@<variant>" with its own config) to the published model's parameter count
and state dict (key -> shape).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import InputError, ModelLoadError
from .folders import classify_unet, read_json
from .loading import build_on_meta, build_unet
from .models.clip import CLIPTextConfig, CLIPTextEncoder
from .models.t5 import T5Config, T5Encoder
from .models.vae import AutoencoderKL, VAEConfig
from .schedulers import LEGACY_DEFAULTS, build_scheduler
from .weights import WEIGHTED_COMPONENTS



@dataclass
class ModelReport:
    name: str  # "<folder>/<component>[@variant]"
    what: str
    parameters: int = 0
    shapes: dict[str, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    note: str = ""

    def line(self) -> str:
        verdict = "; ".join(self.problems) if self.problems else (self.note or "ok")
        if self.name.endswith("scheduler"):
            return f"{self.name:<42} {self.what:<48} {verdict}"
        return (f"{self.name:<42} {self.what:<48} {self.parameters:>15,} parameters {len(self.shapes):>6,} tensors  "
                f"{verdict}")


def build_component(component: str, config: dict, where: Path) -> tuple[torch.nn.Module, str]:
    """The model a component config describes, on the meta device, and what it is."""
    if component == "unet":
        kind = classify_unet(config, where)
        return build_unet(config), kind.label
    if component == "vae":
        if config.get("_class_name") != "AutoencoderKL":
            raise ModelLoadError(f"{where}: {config.get('_class_name')} is not the AutoencoderKL of show-1-sr2")
        vae_config = VAEConfig.from_dict(config)
        return build_on_meta(lambda: AutoencoderKL(vae_config)), "VAE (AutoencoderKL)"
    index = where.parent / "model_index.json"
    listed = read_json(index).get(component) if index.is_file() else None
    name = listed[1] if isinstance(listed, list) and listed[0] == "transformers" else (config.get("architectures") or [""])[0]
    if name == "T5EncoderModel":
        t5 = T5Config.from_dict(config)
        return build_on_meta(lambda: T5Encoder(t5)), "text encoder (T5EncoderModel)"
    if name == "CLIPTextModel":
        clip = CLIPTextConfig.from_dict(config)
        return build_on_meta(lambda: CLIPTextEncoder(clip)), "text encoder (CLIPTextModel)"
    raise ModelLoadError(f"{where}: text encoder {name or '(no architectures)'} is not T5EncoderModel or CLIPTextModel")


def report(name: str, component: str, config: dict, where: Path) -> ModelReport:
    try:
        model, what = build_component(component, config, where)
    except ModelLoadError as e:
        return ModelReport(name, "not buildable", problems=[str(e)])
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    return ModelReport(name, what, sum(p.numel() for p in model.parameters()), shapes)


def scheduler_report(name: str, path: Path) -> ModelReport:
    try:
        scheduler = build_scheduler(read_json(path), path)
    except ModelLoadError as e:
        return ModelReport(name, "not buildable", problems=[str(e)])
    settings = ", ".join(f"{k} {scheduler.config[k]}" for k in LEGACY_DEFAULTS.get(type(scheduler).__name__, {}))
    return ModelReport(name, type(scheduler).__name__, note=f"ok ({settings})" if settings else "ok")


def hub_models(root: Path) -> list[ModelReport]:
    """Every component with a config in the stage folders directly under `root`, and their schedulers."""
    reports = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for component in WEIGHTED_COMPONENTS:
            config_path = folder / component / "config.json"
            if config_path.is_file():
                reports.append(report(f"{folder.name}/{component}", component, read_json(config_path),
                                      config_path.parent))
        for component in ("scheduler", "image_noising_scheduler"):
            path = folder / component / "scheduler_config.json"
            if path.is_file():
                reports.append(scheduler_report(f"{folder.name}/{component}", path))
    return reports


def compare(model: ModelReport, reference: dict) -> None:
    """Record in `model.problems` every difference from the reference entry."""
    want = {k: list(v) for k, v in reference["state_dict"].items()}
    missing = sorted(set(want) - set(model.shapes))
    extra = sorted(set(model.shapes) - set(want))
    wrong = [f"{k} {model.shapes[k]} != {want[k]}" for k in sorted(set(want) & set(model.shapes))
             if model.shapes[k] != want[k]]
    for label, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
        if keys:
            model.problems.append(f"{label}: {', '.join(keys[:4])}" + (f" ... ({len(keys)})" if len(keys) > 4 else ""))
    if reference.get("parameters") is not None and reference["parameters"] != model.parameters:
        model.problems.append(f"{model.parameters:,} parameters != reference {reference['parameters']:,}")


def variant_config(root: Path, described) -> dict | None:
    """The config of a reference variant: a dict, or "<config path> with <JSON members>"."""
    if isinstance(described, dict):
        return described
    path, _, changes = str(described or "").partition(" with ")
    if not (root / path).is_file():
        return None
    return {**read_json(root / path), **(json.loads("{" + changes + "}") if changes else {})}


def read_reference(path: Path) -> dict:
    """The reference file, or a named error (missing, truncated, not the expected JSON object)."""
    try:
        references = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"--reference: cannot read {path} ({e.strerror}); give reference_state_dicts.json") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"--reference: {path} is not valid JSON ({e}); it may be truncated: copy it again") from None
    if not isinstance(references, dict) or not all(isinstance(v, dict) and "state_dict" in v
                                                   for v in references.values()):
        raise InputError(f"--reference: {path} is not a reference file (an object of <folder>/<component> -> "
                         "{parameters, state_dict}); give reference_state_dicts.json")
    return references


def verify(root: Path, reference_path: Path | None = None) -> list[ModelReport]:
    """Every component of the stage folders under `root`, built and compared with the reference. A
    folder with no stage folder is an error, not an empty success."""
    references = read_reference(reference_path) if reference_path is not None else None
    reports = hub_models(root)
    if not reports:
        raise InputError(f"DIR: {root} holds no stage folder (no <folder>/unet/config.json nor a scheduler config); "
                         "give the folder that holds show-1-base, show-1-sr2, ...")
    if references is None:
        return reports
    by_name = {r.name: r for r in reports}
    for name, entry in references.items():
        if name not in by_name:
            base = name.partition("@")[0]
            config = variant_config(root, entry.get("config"))
            if config is None:
                by_name[name] = ModelReport(name, "missing", problems=[f"no {base}/config.json under {root}"])
            else:
                by_name[name] = report(name, base.split("/")[-1], config, root / base)
            reports.append(by_name[name])
        compare(by_name[name], entry)
    for r in reports:
        if r.name not in references and not r.problems and not r.note:
            r.note = "built (no reference entry)"
    return reports
