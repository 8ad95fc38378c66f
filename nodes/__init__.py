"""ComfyUI nodes of the pack: thin glue over show1_core."""

from . import comfy, routes
from .latent import Show1FrameDecode, Show1LatentInterpolator, Show1LatentUpscale, Show1VAEEncode
from .loaders import Show1ModelLoader, Show1TextEncoderLoader, Show1VAELoader
from .pixel import Show1KeyframeSampler, Show1PixelInterpolate, Show1PixelUpscale
from .text import Show1LoadEmbeds, Show1SaveEmbeds, Show1TextEncode

NODES = {
    "loaders": [Show1ModelLoader, Show1VAELoader, Show1TextEncoderLoader],
    "text": [Show1TextEncode, Show1SaveEmbeds, Show1LoadEmbeds],
    "pixel": [Show1KeyframeSampler, Show1PixelInterpolate, Show1PixelUpscale],
    "latent": [Show1VAEEncode, Show1LatentInterpolator, Show1LatentUpscale, Show1FrameDecode],
}

DISPLAY_NAMES = {
    "Show1ModelLoader": "Show-1 Model Loader", "Show1VAELoader": "Show-1 VAE Loader",
    "Show1TextEncoderLoader": "Show-1 Text Encoder Loader", "Show1TextEncode": "Show-1 Text Encode",
    "Show1SaveEmbeds": "Show-1 Save Embeds", "Show1LoadEmbeds": "Show-1 Load Embeds",
    "Show1KeyframeSampler": "Show-1 Keyframe Sampler", "Show1PixelInterpolate": "Show-1 Pixel Interpolate",
    "Show1PixelUpscale": "Show-1 Pixel Upscale (sr1)", "Show1VAEEncode": "Show-1 VAE Encode",
    "Show1LatentInterpolator": "Show-1 Latent Interpolator", "Show1LatentUpscale": "Show-1 Latent Upscale (sr2)",
    "Show1FrameDecode": "Show-1 Frame Decode",
}

NODE_CLASS_MAPPINGS = {}
for category, classes in NODES.items():
    for cls in classes:
        cls.CATEGORY = f"Show-1/{category}"
        NODE_CLASS_MAPPINGS[cls.__name__] = cls
NODE_DISPLAY_NAME_MAPPINGS = {name: DISPLAY_NAMES[name] for name in NODE_CLASS_MAPPINGS}

comfy.register_model_folder()
comfy.install_example_inputs()
routes.register(NODE_CLASS_MAPPINGS)
