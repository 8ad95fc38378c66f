"""One module per stage; each exposes one plain function over explicit inputs."""

from .keyframes import KEYFRAME_FPS, generate_keyframes
from .latent_interpolation import LATENT_FPS, even_anchors, interpolate_latents
from .latent_sr import latent_super_resolve, latent_video_to_video, sr2_from_frames
from .pixel_interpolation import INTERPOLATED_FPS, interpolate_keyframes, interpolated_length
from .pixel_sr import super_resolve_pixels, upscale_first_frame, window_starts
from .vae import vae_decode, vae_encode

__all__ = [
    "KEYFRAME_FPS", "INTERPOLATED_FPS", "LATENT_FPS", "even_anchors", "interpolate_latents", "generate_keyframes", "interpolate_keyframes", "interpolated_length",
    "latent_super_resolve", "latent_video_to_video", "sr2_from_frames", "super_resolve_pixels",
    "upscale_first_frame", "window_starts", "vae_decode", "vae_encode",
]
