"""What the web readout shows under a node: the frames, duration and size it will produce and the
problems ComfyUI would refuse it for, computed here from the graph (ComfyUI's API-format prompt)
with the declarations and checks the nodes run, so the browser holds no formula of its own.

Each Show-1 declaration says how many frames and what size it yields (`frames_out`, `size_out`,
by default those of its first frame input) and what the graph tells about its settings
(`graph_problems`); for ComfyUI's own nodes a small table says the same.
"""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.errors import Show1Error
from ..show1_core.folders import StageInfo
from ..show1_core.storyboard import nearest_shots
from .common import find_stage
from .declare import Node

MAX_DEPTH = 64
FRAME_INPUTS = ("images", "image", "pixels", "samples", "latent", "latent_image", "frames", "keyframes", "image1")


class View:
    """One node of a graph, as a declaration reads it."""

    def __init__(self, graph: "Graph", node_id: str, depth: int):
        self.graph, self.id, self.depth = graph, node_id, depth

    def value(self, name: str):
        value = self.graph.nodes[self.id].get("inputs", {}).get(name)
        return None if isinstance(value, list) else value

    def source(self, name: str) -> str | None:
        value = self.graph.nodes[self.id].get("inputs", {}).get(name)
        return str(value[0]) if isinstance(value, list) and value and str(value[0]) in self.graph.nodes else None

    def frames_of(self, name: str) -> int | None:
        return self.graph.frames(self.source(name), self.depth + 1)

    def size_of(self, name: str) -> tuple[int, int] | None:
        return self.graph.size(self.source(name), self.depth + 1)

    def stage_of(self, name: str) -> StageInfo | None:
        """The stage folder a Show1ModelLoader linked to `name` names, when it resolves."""
        loader = self.source(name)
        if loader is None or self.graph.nodes[loader]["class_type"] != "Show1ModelLoader":
            return None
        try:
            return find_stage(View(self.graph, loader, self.depth + 1).value("model"))
        except (Show1Error, TypeError):
            return None

    def first_source(self) -> str | None:
        """Where the node's frames come from: its first linked IMAGE / LATENT input (declared so by the
        pack's nodes; for other nodes, by the usual input names)."""
        node = self.graph.declarations.get(self.graph.nodes[self.id]["class_type"])
        names = [i.name for i in node.inputs() if i.type in ("IMAGE", "LATENT")] if node else \
            [n for n in FRAME_INPUTS if n in self.graph.nodes[self.id].get("inputs", {})]
        return next((s for s in map(self.source, names) if s is not None), None)


def passes_frames(view: View) -> int | None:
    return Node.frames_out(view)


def passes_size(view: View) -> tuple[int, int] | None:
    return Node.size_out(view)


def both(a, b, combine):
    return None if a is None or b is None else combine(a, b)


# ComfyUI's own nodes: class -> (frames, size) of what they yield
FOREIGN = {
    "LoadImage": (lambda v: 1, lambda v: None),
    "ImageBatch": (lambda v: both(v.frames_of("image1"), v.frames_of("image2"), lambda a, b: a + b), passes_size),
    "EmptyImage": (lambda v: v.value("batch_size"),
                   lambda v: both(v.value("width"), v.value("height"), lambda w, h: (w, h))),
    "EmptyLatentImage": (lambda v: v.value("batch_size"), lambda v: None),
    "RepeatImageBatch": (lambda v: both(v.frames_of("image"), v.value("amount"), lambda a, n: a * n), passes_size),
}


class Graph:
    """An API-format prompt: {id: {"class_type", "inputs": {name: value or [source id, slot]}}}."""

    def __init__(self, prompt: dict, declarations: dict):
        self.nodes = {str(k): v for k, v in prompt.items() if isinstance(v, dict) and "class_type" in v}
        self.declarations = declarations

    def frames(self, node_id: str | None, depth: int = 0) -> int | None:
        """Frames an IMAGE / LATENT producer yields, when the graph tells; None if unknown."""
        if node_id is None or depth > MAX_DEPTH:
            return None
        kind = self.nodes[node_id]["class_type"]
        view = View(self, node_id, depth)
        if kind in self.declarations:
            return self.declarations[kind].frames_out(view)
        return FOREIGN[kind][0](view) if kind in FOREIGN else passes_frames(view)

    def size(self, node_id: str | None, depth: int = 0) -> tuple[int, int] | None:
        """(width, height) of the pixels a node yields (or that its latents decode to)."""
        if node_id is None or depth > MAX_DEPTH:
            return None
        kind = self.nodes[node_id]["class_type"]
        view = View(self, node_id, depth)
        if kind in self.declarations:
            return self.declarations[kind].size_out(view)
        return FOREIGN[kind][1](view) if kind in FOREIGN else passes_size(view)

    def problems(self, node_id: str) -> list[str]:
        """What the node's own validation says about its widget values, plus what the graph tells."""
        node = self.nodes[node_id]
        declaration = self.declarations[node["class_type"]]
        found = []
        values = {k: (None if isinstance(v, list) else v) for k, v in node.get("inputs", {}).items()}
        try:
            declaration.validate(values)
        except Show1Error as e:
            found.append(str(e))
        found += declaration.graph_problems(View(self, node_id, 0))
        size = self.size(node_id)
        if size and (size[0] % 2 or size[1] % 2):
            found.append(f"{size[0]}x{size[1]} is odd: h264 (SaveVideo) needs even sizes")
        return found

    def shots(self, node_id: str) -> int | None:
        """Shots of the storyboard the node's `cond` input carries (1: one prompt; None: unknown)."""
        source = View(self, node_id, 0).source("cond")
        declaration = self.declarations.get(self.nodes[source]["class_type"]) if source else None
        shots = getattr(declaration, "shots", None)
        return shots(View(self, source, 1)) if shots else None

    def describe(self, node_id: str) -> dict:
        frames, size = self.frames(node_id), self.size(node_id)
        fps = View(self, node_id, 0).value("fps")
        parts = [f"{frames} frames" if frames is not None else "? frames"]
        if frames is not None and isinstance(fps, (int, float)) and fps > 0:
            parts.append(f"{frames / fps:.2f} s at {fps:g} fps")
        if size:
            parts.append(f"{size[0]}x{size[1]}")
        shots, warnings = self.shots(node_id), self.problems(node_id)
        if shots and shots > 1 and frames:
            parts.append(f"{shots} shots: " + " | ".join(shot_ranges(frames, shots)))
        return {"text": " · ".join(parts), "warnings": warnings, "frames": frames,
                "size": list(size) if size else None, "shots": shots}


def shot_ranges(frames: int, shots: int) -> list[str]:
    """The frames of each shot ("0-3"), as the stages assign them (`storyboard.nearest_shots`)."""
    of = nearest_shots(frames, shots)
    ranges = []
    for shot in range(shots):
        members = [f for f in range(frames) if of[f] == shot]
        ranges.append("-" if not members else f"{members[0]}" if len(members) == 1 else f"{members[0]}-{members[-1]}")
    return ranges


def readouts(prompt: dict, declarations: dict) -> dict[str, dict]:
    """Readout of every Show-1 node with a readout in an API-format prompt, by node id."""
    graph = Graph(prompt, declarations)
    return {node_id: graph.describe(node_id) for node_id, node in graph.nodes.items()
            if getattr(declarations.get(node["class_type"]), "readout", False)}


def size_problems(view: View, names: tuple[str, str] = ("width", "height"), scale: int = 1) -> list[str]:
    """Sizes the connected model cannot take, read from its config."""
    stage = view.stage_of("model")
    found = []
    for name in names:
        value = view.value(name)
        if stage is not None and isinstance(value, int) and isinstance(scale, int):
            try:
                rules.validate_size(name, value * scale, stage.size_multiple, stage.kind.label,
                                    "one halving per down block")
            except Show1Error as e:
                found.append(str(e))
    return found
