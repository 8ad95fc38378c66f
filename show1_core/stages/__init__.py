"""One module per stage; each exposes one plain function over explicit inputs, settings and a run
context."""

from .keyframes import generate_keyframes
from .latent_interpolation import Anchors, interpolate_latents
from .latent_sr import latent_super_resolve, latent_video_to_video, sr2_from_frames
from .pixel_interpolation import interpolate_keyframes, interpolated_length
from .pixel_sr import IFIIUpscale, super_resolve_pixels, upscale_first_frame
from .vae import vae_decode, vae_encode

__all__ = [
    "Anchors", "IFIIUpscale", "generate_keyframes", "interpolate_keyframes", "interpolate_latents",
    "interpolated_length", "latent_super_resolve", "latent_video_to_video", "sr2_from_frames", "super_resolve_pixels",
    "upscale_first_frame", "vae_decode", "vae_encode",
]
