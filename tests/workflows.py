"""Reading the pack's UI-format example workflows: validation against node definitions and
conversion to the API format that POST /prompt takes (widgets mapped positionally as the frontend
lays them out for the /object_info of the ComfyUI at hand, DynamicCombo included; links resolved)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

WORKFLOW_DIR = Path(__file__).resolve().parents[1] / "example_workflows"
VIRTUAL = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # ComfyUI 0.33's io.DynamicCombo (SaveVideo's format)
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", DYNAMIC_COMBO}


def workflow_files() -> list[Path]:
    return sorted(WORKFLOW_DIR.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def spec_options(spec: list) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def choices(spec: list) -> list | None:
    """The values a combo (list form, COMBO with options, or a DynamicCombo's option keys) allows."""
    kind, options = spec[0], spec_options(spec)
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return options.get("options")
    if kind == DYNAMIC_COMBO:
        return [o["key"] for o in options["options"]]
    return None


def default(spec: list):
    """The value a widget takes when the workflow gives none, as the frontend creates it."""
    options = spec_options(spec)
    if "default" in options:
        return options["default"]
    allowed = choices(spec)
    if allowed is not None:
        return allowed[0] if allowed else None
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(spec[0])


@dataclass
class Widget:
    name: str  # "format.codec" for an input of a DynamicCombo's chosen option
    spec: list | None  # None: a UI-only slot (control_after_generate, an upload button)
    value: object
    given: bool  # the value is in widgets_values (else the default)
    required: bool


def widgets(info: dict, values: list) -> list[Widget]:
    """A node's widgets as the frontend lays them out when it loads `values` (widgets_values): the
    widget inputs of its definition (required, then optional, in input_order), each followed by its
    UI-only slots, and after a DynamicCombo the inputs of the option it holds, named `combo.input`.
    Values are taken in that order; widgets past the end of `values` take their defaults."""
    found, pending = [], list(values)

    def take(spec, fallback):
        return (pending.pop(0), True) if pending else (fallback, False)

    def add(specs: dict, order: list[str], prefix: str, required: bool) -> None:
        for name in order:
            spec = specs[name]
            options = spec_options(spec)
            if not (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES) or options.get("forceInput"):
                continue
            value, given = take(spec, default(spec))
            found.append(Widget(prefix + name, spec, value, given, required))
            if options.get("control_after_generate") or name in ("seed", "noise_seed"):
                found.append(Widget("control_after_generate", None, *take(None, "fixed"), required))
            if options.get("image_upload"):
                found.append(Widget("upload", None, *take(None, "image"), required))
            if spec[0] == DYNAMIC_COMBO:
                chosen = next((o["inputs"] for o in options["options"] if o["key"] == value), {})
                for section in ("required", "optional"):
                    add(chosen.get(section, {}), list(chosen.get(section, {})), f"{prefix}{name}.",
                        required and section == "required")

    order = info.get("input_order", {})
    for section in ("required", "optional"):
        specs = info["input"].get(section, {})
        add(specs, order.get(section, list(specs)), "", section == "required")
    return found


def to_api(workflow: dict, object_info: dict) -> dict:
    """UI workflow -> API prompt as the frontend's graphToPrompt makes it against this /object_info,
    for ordinary graphs (no subgraphs, no reroutes or primitives)."""
    links = {l[0]: l for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL or node.get("mode", 0) in (2, 4):
            continue
        inputs = {w.name: w.value for w in widgets(object_info[node["type"]], node.get("widgets_values", []))
                  if w.spec is not None}
        for inp in node.get("inputs", []):
            if inp.get("link") is not None:
                link = links[inp["link"]]
                inputs[inp["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                   "_meta": {"title": node.get("title", node["type"])}}
    return prompt


def problems(workflow: dict, object_info: dict) -> list[str]:
    """Everything that would stop the workflow from loading or validating: unknown node types,
    widget values outside their combo lists or ranges, links between different types."""
    found = []
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL:
            continue
        info = object_info.get(node["type"])
        if info is None:
            found.append(f"node {node['id']}: unknown type {node['type']}")
            continue
        values = node.get("widgets_values", [])
        laid_out = widgets(info, values)
        # a workflow saved before an optional widget was added lacks its value: the default applies
        if len(values) > len(laid_out) or any(w.required and not w.given for w in laid_out):
            found.append(f"node {node['id']} {node['type']}: {len(values)} widget values for "
                         f"{[w.name for w in laid_out]}")
        for w in laid_out:
            if w.spec is None or not w.given:
                continue
            kind, options = w.spec[0], spec_options(w.spec)
            allowed = choices(w.spec)
            if allowed is not None and w.value not in allowed:
                found.append(f"node {node['id']} {node['type']}.{w.name}: {w.value!r} not in {allowed[:8]}")
            elif kind in ("INT", "FLOAT"):
                if not isinstance(w.value, (int, float)) or isinstance(w.value, bool):
                    found.append(f"node {node['id']} {node['type']}.{w.name}: {w.value!r} is not a number")
                elif w.value < options.get("min", float("-inf")) or w.value > options.get("max", float("inf")):
                    found.append(f"node {node['id']} {node['type']}.{w.name}: {w.value} outside "
                                 f"[{options.get('min')}, {options.get('max')}]")
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for inp in node.get("inputs", []):
            if inp.get("link") is None:
                continue
            spec = specs.get(inp["name"])
            if spec is None:
                found.append(f"node {node['id']} {node['type']}: no input {inp['name']}")
    for link_id, src, slot, dst, dst_slot, kind in workflow["links"]:
        source, target = nodes[src], nodes[dst]
        out_types = object_info[source["type"]]["output"] if source["type"] in object_info else []
        if slot >= len(out_types) or out_types[slot] != kind:
            found.append(f"link {link_id}: output {slot} of {source['type']} is not {kind}")
        target_input = target["inputs"][dst_slot]
        spec = {**object_info[target["type"]]["input"].get("required", {}),
                **object_info[target["type"]]["input"].get("optional", {})}.get(target_input["name"])
        want = spec[0] if spec else None
        if want is not None and not isinstance(want, list) and want != kind and "*" not in str(want):
            found.append(f"link {link_id}: {kind} into {target['type']}.{target_input['name']} ({want})")
        if target_input.get("link") != link_id:
            found.append(f"link {link_id}: {target['type']}.{target_input['name']} does not point back to it")
    return found


def declared_object_info(declarations: dict) -> dict:
    """/object_info entries of the pack's nodes as ComfyUI serves its V3 nodes (V1-style JSON):
    what `nodes.v3` declares, without a server. The integration test holds it to the live one."""
    info = {}
    for name, node in declarations.items():
        inputs = {}
        for declared in node.inputs():
            options = {"tooltip": declared.tooltip}
            if declared.type in ("INT", "FLOAT"):
                options |= {"default": declared.default, "min": declared.rule.widget_min, "max": declared.rule.max}
                if declared.rule.step is not None:
                    options["step"] = declared.rule.step
                if declared.control_after_generate:
                    options["control_after_generate"] = True
            elif declared.type == "COMBO":
                choices = declared.options()
                options |= {"options": choices, "multiselect": False,
                            "default": declared.default if declared.default in choices else choices[0]}
            elif declared.widget:
                options["default"] = declared.default
                if declared.type == "STRING":
                    options["multiline"] = declared.multiline
            inputs.setdefault("optional" if declared.optional else "required", {})[declared.name] = [declared.type,
                                                                                                  options]
        if node.output_node:  # V3 gives output nodes the workflow to embed in what they save
            inputs["hidden"] = {"prompt": ["PROMPT"], "extra_pnginfo": ["EXTRA_PNGINFO"]}
        info[name] = {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()},
                      "output": [o.type for o in node.outputs], "output_name": [o.name for o in node.outputs],
                      "output_node": node.output_node, "category": node.category}
    return info
