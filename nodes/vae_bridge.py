"""Pixels ↔ model-space latents inside a sampler, through ComfyUI's own VAE object.

Solvers see pixels as [B, C, H, W] in [−1, 1] on the sampling device; ComfyUI's IMAGE is
[B, H, W, C] in [0, 1] on the CPU. No autograd graph is ever built through the VAE.
"""
import comfy.model_management
import torch


def blame_vae_for_nan(tensor, what):
    """NaN out of the VAE is the VAE's fault: say so before a later step blames the model."""
    if not torch.isfinite(tensor).all():
        raise ValueError(f"vae: {what} returned NaN or infinite values (the VAE fails, not the model): try the "
                         "VAE in float32 (--fp32-vae) or the VAE of the model's own checkpoint")
    return tensor


def encode_reproducibly(vae, pixels, seed):
    """VAE.encode of an IMAGE, with any sampling it does (the PyPI fork draws from the posterior)
    tied to the seed; the global RNG state is restored afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return blame_vae_for_nan(vae.encode(pixels), "encoding")


def decode(vae, latent):
    """VAE.decode (raw latent → IMAGE), failing on NaN with the VAE named."""
    return blame_vae_for_nan(vae.decode(latent), "decoding")


def image_to_pixels(image, device):
    return (image[..., :3].movedim(-1, 1).to(device, torch.float32) * 2.0 - 1.0)


def pixels_to_image(pixels):
    return ((pixels.float() + 1.0) / 2.0).movedim(1, -1).cpu()


class LatentCodec:
    """decode(z) / encode(x) between model-space latents and pixels, for one sampling run."""

    def __init__(self, vae, latent_format, model_patcher, device, seed):
        self.vae, self.latent_format, self.model_patcher = vae, latent_format, model_patcher
        self.device, self.seed = device, seed

    def decode(self, latent):
        image = decode(self.vae, self.latent_format.process_out(latent))
        self._reload_model()
        return image_to_pixels(image, self.device)

    def encode(self, pixels):
        raw = encode_reproducibly(self.vae, pixels_to_image(pixels.clamp(-1, 1)), self.seed)
        self._reload_model()
        return self.latent_format.process_in(raw.to(self.device, torch.float32))

    def _reload_model(self):
        # VAE calls may have evicted the UNet on a tight GPU; this is a no-op when both are loaded
        comfy.model_management.load_models_gpu([self.model_patcher, self.vae.patcher])
