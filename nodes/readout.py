"""What the web readout shows under a node: the frames, duration and size it will produce and the
problems ComfyUI would refuse it for, computed here from the graph (ComfyUI's API-format prompt)
with the same rules and checks the nodes run, so the browser holds no formula of its own."""

from __future__ import annotations

from ..show1_core import rules
from ..show1_core.errors import Show1Error

READOUT_NODES = ("Show1KeyframeSampler", "Show1PixelInterpolate", "Show1PixelUpscale", "Show1LatentInterpolator",
                 "Show1VAEEncode", "Show1FrameDecode", "Show1LatentUpscale")
MAX_DEPTH = 64
FRAME_INPUTS = ("images", "image", "pixels", "samples", "latent", "latent_image", "frames", "keyframes", "image1")


class Graph:
    """An API-format prompt: {id: {"class_type", "inputs": {name: value or [source id, slot]}}}."""

    def __init__(self, prompt: dict, classes: dict):
        self.nodes = {str(k): v for k, v in prompt.items() if isinstance(v, dict) and "class_type" in v}
        self.classes = classes

    def value(self, node_id: str, name: str):
        value = self.nodes[node_id].get("inputs", {}).get(name)
        return None if isinstance(value, list) else value

    def source(self, node_id: str, name: str) -> str | None:
        value = self.nodes[node_id].get("inputs", {}).get(name)
        return str(value[0]) if isinstance(value, list) and value and str(value[0]) in self.nodes else None

    def first_source(self, node_id: str) -> str | None:
        """Where a node's frames come from: its first linked IMAGE / LATENT input (declared so by the
        pack's nodes; for other nodes, by the usual input names)."""
        node = self.nodes[node_id]
        cls = self.classes.get(node["class_type"])
        if cls is not None:
            spec = cls.INPUT_TYPES()
            declared = {**spec.get("required", {}), **spec.get("optional", {})}
            names = [n for n, d in declared.items() if d[0] in ("IMAGE", "LATENT")]
        else:
            names = [n for n in FRAME_INPUTS if n in node.get("inputs", {})]
        return next((src for src in map(lambda n: self.source(node_id, n), names) if src is not None), None)

    def frames(self, node_id: str | None, depth: int = 0) -> int | None:
        """Frames an IMAGE / LATENT producer yields, when the graph tells; None if unknown."""
        if node_id is None or depth > MAX_DEPTH:
            return None
        kind, v = self.nodes[node_id]["class_type"], lambda name: self.value(node_id, name)
        up = lambda name: self.frames(self.source(node_id, name), depth + 1)  # noqa: E731
        if kind == "Show1KeyframeSampler":
            return v("num_frames")
        if kind == "Show1PixelInterpolate":
            k = up("keyframes")
            return None if k is None else rules.interpolated_frames(k, rules.PIXEL_NEW_PER_GAP)
        if kind == "Show1LatentInterpolator":
            k, gap = up("keyframes"), v("frames_between")
            return None if k is None or gap is None else rules.interpolated_frames(k, gap)
        if kind == "LoadImage":
            return 1
        if kind == "ImageBatch":
            a, b = up("image1"), up("image2")
            return None if a is None or b is None else a + b
        if kind in ("EmptyImage", "EmptyLatentImage"):
            return v("batch_size")
        if kind == "RepeatImageBatch":
            a, n = up("image"), v("amount")
            return None if a is None or n is None else a * n
        return self.frames(self.first_source(node_id), depth + 1)  # samplers, decoders, upscalers pass frames on

    def size(self, node_id: str | None, depth: int = 0) -> tuple[int, int] | None:
        """(width, height) of the pixels a node yields (or that its latents decode to)."""
        if node_id is None or depth > MAX_DEPTH:
            return None
        kind, v = self.nodes[node_id]["class_type"], lambda name: self.value(node_id, name)
        if kind == "Show1PixelUpscale":
            inner, scale = self.size(self.source(node_id, "frames"), depth + 1), v("scale")
            return None if inner is None or scale is None else (inner[0] * scale, inner[1] * scale)
        if kind in ("Show1KeyframeSampler", "Show1PixelInterpolate", "Show1VAEEncode", "EmptyImage"):
            w, h = v("width"), v("height")
            return (w, h) if isinstance(w, int) and isinstance(h, int) else None
        if kind == "LoadImage":
            return None
        return self.size(self.first_source(node_id), depth + 1)

    def problems(self, node_id: str) -> list[str]:
        """What the node's own validation says about its widget values, plus what the graph tells."""
        node = self.nodes[node_id]
        cls = self.classes.get(node["class_type"])
        found = []
        if cls is not None:
            values = {k: (None if isinstance(v, list) else v) for k, v in node.get("inputs", {}).items()}
            try:
                cls.check_inputs(values)
            except Show1Error as e:
                found.append(str(e))
        kind = node["class_type"]
        if kind in ("Show1PixelInterpolate", "Show1LatentInterpolator"):
            k = self.frames(self.source(node_id, "keyframes"))
            if k is not None and k < rules.MIN_KEYFRAMES:
                found.append(f"keyframes: {k} keyframe(s); interpolation needs at least {rules.MIN_KEYFRAMES}")
        if kind in ("Show1KeyframeSampler", "Show1PixelInterpolate"):
            for name in ("width", "height"):
                value = self.value(node_id, name)
                if isinstance(value, int) and value % rules.PUBLISHED_SIZE_MULTIPLE:
                    found.append(f"{name}: {value} is not a multiple of {rules.PUBLISHED_SIZE_MULTIPLE}, which the "
                                 "published models need")
        size = self.size(node_id)
        if size and (size[0] % 2 or size[1] % 2):
            found.append(f"{size[0]}x{size[1]} is odd: h264 (SaveVideo) needs even sizes")
        return found

    def describe(self, node_id: str) -> dict:
        frames, size = self.frames(node_id), self.size(node_id)
        fps = self.value(node_id, "fps")
        parts = [f"{frames} frames" if frames is not None else "? frames"]
        if frames is not None and isinstance(fps, (int, float)) and fps > 0:
            parts.append(f"{frames / fps:.2f} s at {fps:g} fps")
        if size:
            parts.append(f"{size[0]}x{size[1]}")
        return {"text": " · ".join(parts), "warnings": self.problems(node_id), "frames": frames,
                "size": list(size) if size else None}


def readouts(prompt: dict, classes: dict) -> dict[str, dict]:
    """Readout of every Show-1 node of an API-format prompt, by node id."""
    graph = Graph(prompt, classes)
    return {node_id: graph.describe(node_id) for node_id, node in graph.nodes.items()
            if node["class_type"] in READOUT_NODES}
