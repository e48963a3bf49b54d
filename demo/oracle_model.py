"""A Gaussian-mixture prior wrapped as a real ComfyUI MODEL, and a pass-through VAE.

The MODEL is a `comfy.model_base.BaseModel` with ComfyUI's own EPS, V_PREDICTION or FLOW
model_sampling: its "network" returns the ε, v or velocity that ComfyUI's calculate_denoised turns
back into the exact E[x0 | x_σ]. So every sampler, node and graph runs unchanged on a prior whose
posterior is known in closed form. The VAE maps IMAGE ↔ latent without loss (grey: the channel mean).
"""
import logging

import torch

from .gaussian_mixture import GaussianMixture
from ..nodes.comfy_compat import (VAE, BaseModel, LatentFormat, ModelConfig, ModelPatcher, ModelType,
                                  V_PREDICTION, parameterisation_of, torch_device, unet_offload_device,
                                  vae_offload_device)

PREDICTIONS = {"eps": "EPS", "v_prediction": "V_PREDICTION", "flow": "FLOW"}


class MixtureLatentFormat(LatentFormat):
    """Model space = VAE space (scale 1); previews show the channel mean as grey."""

    def __init__(self, channels: int):
        self.scale_factor = 1.0
        self.latent_channels = channels
        self.latent_rgb_factors = [[1.0 / channels] * 3 for _ in range(channels)]
        self.latent_rgb_factors_bias = [0.0, 0.0, 0.0]


class MixtureNetwork(torch.nn.Module):
    """Holds the mixture as buffers, so ComfyUI's memory accounting and device moves see it."""

    def __init__(self, mixture: GaussianMixture, latent_shape):
        super().__init__()
        self.latent_shape = tuple(latent_shape)
        for name in ("weights", "means", "basis", "basis_var", "iso_var"):
            self.register_buffer(name, getattr(mixture, name).clone())
        self.dtype = torch.float32

    def mixture(self) -> GaussianMixture:
        return GaussianMixture(self.weights, self.means, self.basis, self.basis_var, self.iso_var)

    def exact_denoised(self, x, sigma, param):
        """E[x0 | x] per batch item; every item may carry its own σ."""
        flat = x.reshape(x.shape[0], -1).to(self.means.device, torch.float64)
        sigmas = sigma.reshape(-1).expand(x.shape[0]).to(torch.float64).cpu()
        out = torch.empty_like(flat)
        for level in sigmas.unique():
            rows = sigmas == level
            out[rows] = self.mixture().denoise(flat[rows], float(level), param)
        return out.reshape(x.shape).to(x.device, torch.float32)


class MixtureBaseModel(BaseModel):
    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        sigma = t
        x0 = self.diffusion_model.exact_denoised(x, sigma, parameterisation_of(self.model_sampling))
        return self.model_sampling.calculate_denoised(sigma, self._network_output(sigma, x, x0), x)

    def _network_output(self, sigma, x, x0):
        """What an EPS / v / flow network would output for this x0 (inverse of calculate_denoised)."""
        s = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
        if isinstance(self.model_sampling, V_PREDICTION):
            sigma_data = self.model_sampling.sigma_data
            c_skip = sigma_data ** 2 / (s ** 2 + sigma_data ** 2)
            c_out = s * sigma_data / (s ** 2 + sigma_data ** 2) ** 0.5
            return (x * c_skip - x0) / c_out
        return (x - x0) / s  # EPS and CONST: denoised = x − out·σ

    def memory_required(self, input_shape, cond_shapes={}):
        return 0


def mixture_model(mixture: GaussianMixture, latent_shape, prediction: str = "eps", shift: float = 3.0):
    """A ModelPatcher (the MODEL socket) sampling `mixture` over latents of shape [C, h, w]."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
    channels = latent_shape[0]

    class MixtureConfig(ModelConfig):
        unet_config = {"disable_unet_model_creation": True}
        unet_extra_config = {}
        sampling_settings = {"shift": shift} if prediction == "flow" else {}
        latent_format = staticmethod(lambda: MixtureLatentFormat(channels))  # BASE instantiates it
        memory_usage_factor = 0.0

    config = MixtureConfig(MixtureConfig.unet_config)
    model_type = getattr(ModelType, PREDICTIONS[prediction])
    base_model = MixtureBaseModel(config, model_type=model_type)
    base_model.diffusion_model = MixtureNetwork(mixture, latent_shape)
    base_model.fixed_latent_size = tuple(latent_shape[1:])  # a mixture samples the size it was fitted at, only
    base_model.eval()
    return ModelPatcher(base_model, load_device=torch_device(),
                                            offload_device=unet_offload_device())


class PassThroughAutoencoder(torch.nn.Module):
    """channels = 3: the identity on RGB in [−1, 1]. channels = 1: RGB → grey level and back."""

    def __init__(self, channels: int):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"a pass-through autoencoder has 1 (grey) or 3 (RGB) channels, not {channels}")
        self.channels = channels
        self.register_buffer("unit", torch.ones(1))  # so the patcher has something to move

    def encode(self, pixels):
        return pixels[:, :3] if self.channels == 3 else pixels[:, :3].mean(1, keepdim=True)

    def decode(self, latent):
        return latent if self.channels == 3 else latent.repeat(1, 3, 1, 1)


class LinearAutoencoder(torch.nn.Module):
    """SD-shaped but linear: each 2×2 RGB block (12 values) ↔ `channels` latent values,
    Dec(z) = pixel_shuffle(W z) with W [12, channels] of unequal column norms, Enc = W⁺. A∘Dec stays
    linear, so the posterior over latents stays closed form (ding_restore.md §2's exact oracle)."""

    def __init__(self, decoder_matrix: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", decoder_matrix.to(torch.float32))
        self.register_buffer("inverse", torch.linalg.pinv(decoder_matrix.to(torch.float64)).to(torch.float32))

    def decode(self, latent):
        return torch.nn.functional.pixel_shuffle(torch.einsum("pc,bchw->bphw", self.weight.to(latent), latent), 2)

    def encode(self, pixels):
        blocks = torch.nn.functional.pixel_unshuffle(pixels[:, :3], 2)
        return torch.einsum("cp,bphw->bchw", self.inverse.to(blocks), blocks)


def random_decoder_matrix(channels: int, generator: torch.Generator, column_norms=(0.6, 0.9, 1.2, 1.5)):
    matrix = torch.randn(12, channels, generator=generator, dtype=torch.float64)
    return matrix / matrix.norm(dim=0) * torch.tensor(column_norms[:channels], dtype=torch.float64)


def _vae_around(autoencoder: torch.nn.Module, latent_channels: int, scale: int) -> VAE:
    """A real comfy.sd.VAE whose first_stage_model is `autoencoder` (scale pixels per latent cell)."""
    tiny = {"double_z": True, "z_channels": latent_channels, "resolution": 8, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    logging.disable(logging.WARNING)  # the throw-away autoencoder has no weights; ComfyUI would list them all
    try:
        vae = VAE(sd={}, config={"params": {"embed_dim": latent_channels, "ddconfig": tiny}})
    finally:
        logging.disable(logging.NOTSET)
    vae.first_stage_model = autoencoder.eval()
    vae.patcher = ModelPatcher(vae.first_stage_model, load_device=vae.device,
                                                   offload_device=vae_offload_device())
    vae.downscale_ratio = vae.upscale_ratio = scale
    vae.latent_channels = latent_channels
    vae.memory_used_encode = vae.memory_used_decode = lambda shape, dtype: 1024.0 * shape[2] * shape[3]
    return vae


def linear_vae(decoder_matrix: torch.Tensor) -> VAE:
    """A comfy.sd.VAE around LinearAutoencoder: 4 latent channels per 2×2 RGB pixels, like SD's shape."""
    return _vae_around(LinearAutoencoder(decoder_matrix), decoder_matrix.shape[1], 2)


def pass_through_vae(channels: int = 1) -> VAE:
    """A real comfy.sd.VAE whose autoencoder is exact (no down-sampling): on any image with
    channels = 3, on grey images with channels = 1."""
    return _vae_around(PassThroughAutoencoder(channels), channels, 1)
