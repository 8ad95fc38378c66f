"""ComfyUI nodes of the pack: thin glue over show1_core, declared once (`declare`) and registered
with ComfyUI as V3 nodes (`v3`)."""

from __future__ import annotations

from ..show1_core.process import pin_cpu_arithmetic
from . import comfy, routes
from .latent import (
    Show1FrameDecode,
    Show1LatentInterpolator,
    Show1LatentUpscale,
    Show1VAEEncode,
)
from .loaders import Show1ModelLoader, Show1TextEncoderLoader, Show1VAELoader
from .pixel import Show1KeyframeSampler, Show1PixelInterpolate, Show1PixelUpscale
from .text import Show1LoadEmbeds, Show1SaveEmbeds, Show1TextEncode

NODES = {node.id: node for node in (
    Show1ModelLoader, Show1VAELoader, Show1TextEncoderLoader, Show1TextEncode, Show1SaveEmbeds, Show1LoadEmbeds,
    Show1KeyframeSampler, Show1PixelInterpolate, Show1PixelUpscale, Show1VAEEncode, Show1LatentInterpolator,
    Show1LatentUpscale, Show1FrameDecode)}


async def comfy_entrypoint():
    """ComfyUI's V3 entry point: the extension that lists the pack's nodes."""
    from .v3 import extension

    return extension(NODES.values())


pin_cpu_arithmetic()  # this process runs stages: the nodes compute as the CLI does
comfy.register_model_folder()
comfy.install_example_inputs()
routes.register(NODES)
