"""One module per stage; each exposes one plain function over explicit inputs, settings and a run
context, the memory estimate of its largest UNet call (`<stage>_memory`), and, for the stages of
the published cascade, its cascade step (see `registry`)."""

from .keyframes import generate_keyframes, keyframes_memory
from .latent_interpolation import Anchors, interpolate_latents, latent_interpolation_memory
from .latent_sr import latent_super_resolve, latent_video_to_video, sr2_from_frames, sr2_memory
from .pixel_interpolation import interpolate_keyframes, interpolated_length, interpolation_memory
from .pixel_sr import IFIIUpscale, if_ii_memory, sr1_memory, super_resolve_pixels, upscale_first_frame
from .vae import vae_decode, vae_encode

__all__ = [
    "Anchors", "IFIIUpscale", "generate_keyframes", "if_ii_memory", "interpolate_keyframes", "interpolate_latents",
    "interpolated_length", "interpolation_memory", "keyframes_memory", "latent_interpolation_memory",
    "latent_super_resolve", "latent_video_to_video", "sr1_memory", "sr2_from_frames", "sr2_memory",
    "super_resolve_pixels", "upscale_first_frame", "vae_decode", "vae_encode",
]
