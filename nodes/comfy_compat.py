"""The small surface of ComfyUI the pack uses, written once for both engines it runs on:
upstream ComfyUI and the PyPI fork `comfyui==0.0.1` (different module paths; comfyui.md §6.3)."""
import comfy.model_management
import comfy.model_sampling
import comfy.sample
import comfy.samplers
import comfy.utils
import torch

from comfy.latent_formats import LatentFormat
from comfy.ldm.models.autoencoder import AutoencoderKL
from comfy.model_base import BaseModel, ModelType
from comfy.model_patcher import ModelPatcher
from comfy.model_sampling import V_PREDICTION
from comfy.sd import VAE
from comfy.supported_models_base import BASE as ModelConfig
from comfy.utils import load_torch_file

try:
    import latent_preview
except ImportError:  # the fork keeps it under comfy.cmd
    from comfy.cmd import latent_preview

from ..solvers.parameterisation import FLOW, VE

# The building blocks of a ComfyUI model, VAE and their patchers, which the priors with known posteriors
# import from here to be wrapped as real MODELs and VAEs (demo/oracle_model.py, testbed/vae.py).
MODEL_BUILDING_BLOCKS = (LatentFormat, AutoencoderKL, BaseModel, ModelType, ModelPatcher, V_PREDICTION, VAE,
                         ModelConfig, load_torch_file)


def torch_device():
    return comfy.model_management.get_torch_device()


def unet_offload_device():
    return comfy.model_management.unet_offload_device()


def vae_offload_device():
    return comfy.model_management.vae_offload_device()


class UnsupportedModelError(ValueError):
    pass


def parameterisation_of(model_sampling, socket: str = "model"):
    """VE for EPS / v-prediction / EDM models (x = x0 + σn), FLOW for CONST models (SD3, Flux)."""
    if isinstance(model_sampling, comfy.model_sampling.CONST):
        return FLOW
    if isinstance(model_sampling, comfy.model_sampling.EPS):
        return VE
    raise UnsupportedModelError(
        f"{socket}: sampling type {type(model_sampling).__name__} is not supported; "
        "the pack samples EPS, v-prediction and flow (CONST) models")


def model_sampling_of(model_patcher):
    return model_patcher.get_model_object("model_sampling")


def check_interrupt():
    comfy.model_management.throw_exception_if_processing_interrupted()


def compute_sigmas(model_patcher, scheduler: str, steps: int, denoise: float):
    """The sigmas BasicScheduler / KSampler would use, `denoise` < 1 keeping the tail."""
    if denoise <= 0:
        return None
    total = steps if denoise >= 1 else int(steps / denoise)
    sigmas = comfy.samplers.calculate_sigmas(model_sampling_of(model_patcher), scheduler, total).cpu()
    return sigmas[-(steps + 1):]


def scheduler_names():
    return list(comfy.samplers.KSampler.SCHEDULERS)


def intermediate_device():
    return comfy.model_management.intermediate_device()


def load_models(patchers):
    """Load the given models onto the compute device (a no-op for those already there)."""
    comfy.model_management.load_models_gpu(patchers)


def tiled_scale(samples, function, tile, overlap, upscale_amount, output_device):
    """ComfyUI's tiled application of `function` (tile × tile cells, blended overlaps): one pass."""
    return comfy.utils.tiled_scale(samples, function, tile, tile, overlap, upscale_amount=upscale_amount,
                                   output_device=output_device)


def ksampler(sample_function, options):
    """A SAMPLER for SamplerCustom(Advanced): ComfyUI's KSAMPLER around one of the pack's sampling functions,
    `options` passed to it as keyword arguments."""
    return comfy.samplers.KSAMPLER(sample_function, extra_options=options)


def sample_custom(model, sampler, sigmas, positive, negative, cfg, latent, seed, start_noise=True, noise_mask=None):
    """SamplerCustom's sampling call, with its progress bar and latent previews: ComfyUI's seeded start noise
    when `start_noise`, else none (the sampler draws its own start)."""
    noise = comfy.sample.prepare_noise(latent, seed, None) if start_noise else torch.zeros_like(latent)
    return comfy.sample.sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent,
                                      noise_mask=noise_mask,
                                      callback=latent_preview.prepare_callback(model, len(sigmas) - 1), seed=seed)


def is_inpainting_model(model_patcher) -> bool:
    """Whether the model takes the hole and the picture around it as extra input channels, filled by ComfyUI's
    InpaintModelConditioning: SD's 9-channel inpainting UNets (SD1.5, SD2, SDXL) and Flux Fill."""
    base = model_patcher.model
    if "masked_image" in getattr(base, "concat_keys", ()):
        return True
    unet = base.model_config.unet_config
    return unet.get("image_model") == "flux" and unet.get("in_channels", 0) > 2 * unet.get("out_channels", 16)


def has_inpaint_inputs(conditioning) -> bool:
    return any("concat_latent_image" in entry[1] or "concat_mask" in entry[1] for entry in conditioning)


def with_inpaint_inputs(conditioning, masked_image_latent, hole_mask):
    """The conditioning InpaintModelConditioning makes: every entry carries the masked picture's latent and
    the pixel hole mask [B, H, W] (1 = generate)."""
    concat_mask = hole_mask.reshape(-1, 1, *hole_mask.shape[-2:])
    return [[entry[0], dict(entry[1], concat_latent_image=masked_image_latent, concat_mask=concat_mask)]
            for entry in conditioning]


def conditioned_concat_masks(model):
    """The inpainting-model masks (InpaintModelConditioning's) in the conditioning of a KSAMPLER's model."""
    conds = getattr(model.inner_model, "conds", None) or {}
    return [entry["concat_mask"] for group in conds.values() for entry in group or ()
            if entry.get("concat_mask") is not None]


def preview_images(images):
    """What PreviewImage shows in its node: `images` written to ComfyUI's temp folder, as the UI dict."""
    try:
        from nodes import PreviewImage
    except ImportError:  # the fork keeps core's nodes under comfy.nodes
        from comfy.nodes.base_nodes import PreviewImage
    return PreviewImage().save_images(images, filename_prefix="inverse_compare")["ui"]
