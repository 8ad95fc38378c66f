"""Reading the pack's UI-format example workflows: validation against node definitions and
conversion to the API format that POST /prompt takes (widgets mapped positionally, links resolved)."""

from __future__ import annotations

import json
from pathlib import Path

WORKFLOW_DIR = Path(__file__).resolve().parents[1] / "example_workflows"
VIRTUAL = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def workflow_files() -> list[Path]:
    return sorted(WORKFLOW_DIR.glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def widget_names(info: dict) -> list[str]:
    """Widget inputs of a node definition (as /object_info describes it), in order, with the UI-only
    control_after_generate slot after seeds and the upload slot of image loaders."""
    names = []
    order = info.get("input_order", {})
    for section in ("required", "optional"):
        specs = info["input"].get(section, {})
        for name in order.get(section, list(specs)):
            spec = specs[name]
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            if isinstance(kind, list) or kind in WIDGET_TYPES:
                if options.get("forceInput"):
                    continue
                names.append(name)
                if options.get("control_after_generate") or name in ("seed", "noise_seed"):
                    names.append("control_after_generate")
                if options.get("image_upload"):
                    names.append("upload")
    return names


def to_api(workflow: dict, object_info: dict) -> dict:
    """UI workflow -> API prompt, for ordinary graphs (no subgraphs, no reroutes or primitives)."""
    links = {l[0]: l for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL or node.get("mode", 0) in (2, 4):
            continue
        info = object_info[node["type"]]
        inputs = dict(zip(widget_names(info), node.get("widgets_values", [])))
        inputs.pop("control_after_generate", None)
        inputs.pop("upload", None)
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
        names = widget_names(info)
        values = node.get("widgets_values", [])
        required = widget_names({"input": {"required": info["input"].get("required", {})},
                                 "input_order": {"required": info.get("input_order", {}).get("required", [])}})
        # a workflow saved before an optional widget was added lacks its value: the default applies
        if not (len(required) <= len(values) <= len(names)):
            found.append(f"node {node['id']} {node['type']}: {len(values)} widget values for {names}")
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name, value in zip(names, values):
            if name in ("control_after_generate", "upload"):
                continue
            kind, *rest = specs[name]
            options = rest[0] if rest and isinstance(rest[0], dict) else {}
            choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
            if choices is not None and value not in choices:
                found.append(f"node {node['id']} {node['type']}.{name}: {value!r} not in {choices[:8]}")
            elif kind in ("INT", "FLOAT"):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    found.append(f"node {node['id']} {node['type']}.{name}: {value!r} is not a number")
                elif value < options.get("min", float("-inf")) or value > options.get("max", float("inf")):
                    found.append(f"node {node['id']} {node['type']}.{name}: {value} outside "
                                 f"[{options.get('min')}, {options.get('max')}]")
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
