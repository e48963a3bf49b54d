"""Pixels ↔ model-space latents inside a sampler, through ComfyUI's own VAE object.

Solvers see pixels as [B, C, H, W] in [−1, 1] on the sampling device; ComfyUI's IMAGE is
[B, H, W, C] in [0, 1] on the CPU. No autograd graph is ever built through the VAE.
"""
import torch

from . import comfy_compat
from .checks import vae_scale


def blame_vae_for_nan(tensor, what):
    """NaN out of the VAE is the VAE's fault: say so before a later step blames the model."""
    if not torch.isfinite(tensor).all():
        raise ValueError(f"vae: {what} returned NaN or infinite values (the VAE fails, not the model): try the "
                         "VAE in float32 (--fp32-vae) or the VAE of the model's own checkpoint")
    return tensor


def encode_reproducibly(vae, pixels, seed, tiled="off"):
    """VAE.encode of an IMAGE, with any sampling it does (the PyPI fork draws from the posterior)
    tied to the seed; the global RNG state is restored afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return encode(vae, pixels, tiled)


TILED_VAE_MODES = ("auto", "on", "off")
TILED_AUTO_PIXELS = 1280 * 1280  # auto: images larger than this go through the VAE in tiles (2048² does, 1024² not)
DECODE_TILE, DECODE_OVERLAP = 64, 16      # latent cells: ComfyUI's VAE Decode (Tiled) defaults
ENCODE_TILE, ENCODE_OVERLAP = 512, 64     # pixels: ComfyUI's VAE Encode (Tiled) defaults


def use_tiles(mode, height, width):
    """Whether a VAE pass over a height × width px image goes in tiles: `on`, `off`, or `auto` by size."""
    if mode not in TILED_VAE_MODES:
        raise ValueError(f"tiled_vae must be one of {TILED_VAE_MODES}, got {mode!r}")
    return mode == "on" or (mode == "auto" and height * width > TILED_AUTO_PIXELS)


def decode(vae, latent, tiled="off"):
    """VAE.decode (raw latent → IMAGE), in ComfyUI's tiles when `use_tiles` says so, failing on NaN with
    the VAE named."""
    scale = vae_scale(vae)
    if use_tiles(tiled, latent.shape[-2] * scale, latent.shape[-1] * scale):
        image = vae.decode_tiled(latent, tile_x=DECODE_TILE, tile_y=DECODE_TILE, overlap=DECODE_OVERLAP)
    else:
        image = vae.decode(latent)
    return blame_vae_for_nan(image, "decoding")


def encode(vae, image, tiled="off"):
    """VAE.encode (IMAGE → raw latent), in tiles when `use_tiles` says so, failing on NaN."""
    if use_tiles(tiled, image.shape[1], image.shape[2]):
        latent = vae.encode_tiled(image, tile_x=ENCODE_TILE, tile_y=ENCODE_TILE, overlap=ENCODE_OVERLAP)
    else:
        latent = vae.encode(image)
    return blame_vae_for_nan(latent, "encoding")


def decode_unclamped(vae, latent, tiled="off"):
    """The VAE's own decoder (raw latent → pixels [B, 3, H, W] in [−1, 1] units) without the clamp to 0..1 that
    VAE.decode applies (a clamped pixel has no derivative), no autograd; in ComfyUI's tiles, one tiling, when
    `use_tiles` says so; failing on NaN."""
    scale = vae_scale(vae)

    def decode_raw(raw):
        return vae.first_stage_model.decode(raw.to(vae.vae_dtype).to(vae.device)).float()

    comfy_compat.load_models([vae.patcher])   # VAE.decode loads it itself
    with torch.no_grad():
        if use_tiles(tiled, latent.shape[-2] * scale, latent.shape[-1] * scale):
            pixels = comfy_compat.tiled_scale(latent, decode_raw, DECODE_TILE, DECODE_OVERLAP, scale, vae.device)
        else:
            pixels = decode_raw(latent)
    return blame_vae_for_nan(pixels, "decoding")


def image_to_pixels(image, device):
    return (image[..., :3].movedim(-1, 1).to(device, torch.float32) * 2.0 - 1.0)


def pixels_to_image(pixels):
    return ((pixels.float() + 1.0) / 2.0).movedim(1, -1).cpu()


class LatentCodec:
    """decode(z) / encode(x) between model-space latents and pixels, for one sampling run."""

    def __init__(self, vae, latent_format, model_patcher, device, seed, report=None, tiled="auto"):
        self.vae, self.latent_format, self.model_patcher = vae, latent_format, model_patcher
        self.device, self.seed, self.tiled = device, seed, tiled
        self.report = report  # counts decodes and encodes, if given

    def decode(self, latent):
        if self.report is not None:
            self.report.decodes += 1
        image = decode(self.vae, self.latent_format.process_out(latent), self.tiled)
        self._reload_model()
        return image_to_pixels(image, self.device)

    def decode_unclamped(self, latent):
        """As decode, through `decode_unclamped`: pixels may pass [−1, 1]."""
        if self.report is not None:
            self.report.decodes += 1
        pixels = decode_unclamped(self.vae, self.latent_format.process_out(latent), self.tiled)
        self._reload_model()
        return pixels.to(self.device, torch.float32)

    def encode(self, pixels):
        if self.report is not None:
            self.report.encodes += 1
        raw = encode_reproducibly(self.vae, pixels_to_image(pixels.clamp(-1, 1)), self.seed, self.tiled)
        self._reload_model()
        return self.latent_format.process_in(raw.to(self.device, torch.float32))

    def _reload_model(self):
        # VAE calls may have evicted the UNet on a tight GPU; this is a no-op when both are loaded
        comfy_compat.load_models([self.model_patcher, self.vae.patcher])
