"""DInG as a ComfyUI SAMPLER: a KSAMPLER function for SamplerCustom / SamplerCustomAdvanced."""
import logging

import torch

from ..solvers import ding
from . import comfy_compat, inputs
from .restoration import checked_denoiser, solver_generator

log = logging.getLogger("inverse_samplers")


class MissingMaskError(ValueError):
    pass


@torch.no_grad()  # like k-diffusion's samplers: never a graph through the model
def sample_ding_comfy(model, x, sigmas, extra_args=None, callback=None, disable=None, *,
                      obs_std=0.01, eta_schedule="fm_square", eta_scale=1.0, variant="ding"):
    """KSAMPLER contract (comfyui.md §1.3): `model` is KSamplerX0Inpaint, x is the noised start.

    The clean observed latent is model.latent_image; the mask is extra_args["denoise_mask"]
    (1 = generate). DInG does its own data consistency, so ComfyUI's blending is switched off.
    """
    hole_mask = (extra_args or {}).get("denoise_mask")
    if hole_mask is None:
        raise MissingMaskError(
            "DInG sampler: latent_image has no mask. Set one with SetLatentNoiseMask (or "
            "InpaintModelConditioning with noise_mask on) so DInG knows which region to fill.")
    inputs.check_noise_mask(hole_mask)
    concat_masks = comfy_compat.conditioned_concat_masks(model)
    inputs.check_concat_masks_agree(concat_masks, hole_mask)
    if not concat_masks and comfy_compat.is_inpainting_model(model.inner_model.model_patcher):
        log.warning("DInG sampler: an inpainting model without InpaintModelConditioning sees no greyed-out hole; "
                    "connect InpaintModelConditioning (same image and mask) before the sampler")
    observation = model.latent_image
    if float(hole_mask.max()) <= 0:
        log.warning("DInG sampler: the mask is empty (nothing to inpaint); returning the input latent unchanged.")
        return observation.clone()
    if not torch.isfinite(observation).all():
        raise ValueError("DInG sampler: latent_image contains NaN or infinite values (check the VAE encode)")
    base_model = model.inner_model.inner_model
    param = comfy_compat.parameterisation_of(base_model.model_sampling)
    inputs.check_latent_fits_model(base_model, x.shape[2], x.shape[3], None, "latent_image",
                                   "encode an image of that size")
    seed = int((extra_args or {}).get("seed") or 0)
    log.info("DInG (%s, %s): %d network calls for %d steps", variant, param.name,
             ding.network_calls(sigmas, variant), len(sigmas) - 1)
    denoise = checked_denoiser(model, extra_args, x, "DInG sampler")  # pitfall 1: no ComfyUI blending

    def report(i, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0})

    return ding.sample_ding(denoise, x, sigmas, observation, 1.0 - hole_mask, param,
                            solver_generator(seed), observed_mask_at=scheduled_observed_mask(model, extra_args, hole_mask),
                            obs_std=obs_std, eta_schedule=eta_schedule, eta_scale=eta_scale, variant=variant,
                            callback=report, check_interrupt=comfy_compat.check_interrupt)


def scheduled_observed_mask(model, extra_args, hole_mask):
    """A model patched with a mask function (Differential Diffusion) turns the mask into a schedule: at each
    step ComfyUI's inpainting regenerates what the function returns for that noise level (for Differential
    Diffusion, the cells whose mask value reaches a threshold falling from 1 to 0). DInG then treats exactly
    the rest as known at that step: M(σ) = 1 − f(σ, mask). None when the model carries no such function."""
    mask_function = ((extra_args or {}).get("model_options") or {}).get("denoise_mask_function")
    if mask_function is None:
        return None
    log.info("DInG sampler: the model's mask function (Differential Diffusion) sets the known region of each step")
    sigma_in = hole_mask.new_ones([hole_mask.shape[0]])

    def observed_mask_at(sigma):
        step_hole = mask_function(sigma * sigma_in, hole_mask, extra_options={"model": model.inner_model,
                                                                              "sigmas": model.sigmas})
        return 1.0 - inputs.check_noise_mask(step_hole, "model (its denoise mask function, e.g. Differential "
                                                        "Diffusion)")
    return observed_mask_at


def ding_options_inputs():
    """The DInG widgets shared by the SAMPLER node and the all-in-one node."""
    return {
        "variant": (list(ding.VARIANTS), {"default": "ding", "tooltip":
                    "ding: the full step of the DInG paper (Moufad et al. 2026), 2 network calls per step. "
                    "delayed: 1 call per step (about twice as fast), reusing the current step's noise "
                    "estimate; the paper found it less faithful on SD3 images."}),
        "eta_schedule": (list(ding.ETA_SCHEDULES), {"default": "fm_square", "tooltip":
                         "How much fresh randomness each step adds as the picture clears up. fm_square (default): "
                         "the DInG paper's choice (Moufad et al. 2026). fm_sqrt adds more randomness, ddim almost none "
                         "(steps nearly deterministic)."}),
        "eta_scale": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.01,
                                "tooltip": "Multiplies the randomness set by eta_schedule: 0 = none, 1 = as the "
                                           "schedule says (default), up to 2 = more; a step never adds more noise "
                                           "than the picture still holds."}),
        "obs_std": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 1.0, "step": 0.001, "tooltip":
                    "How strictly the known (unmasked) region is kept, as the noise allowed there (latent units). "
                    "Smaller = stricter, 0 keeps it exactly; larger lets the model blend the border but may change "
                    "the known region slightly. Default 0.01."}),
    }


class DInGSampler:
    DESCRIPTION = ("DInG inpainting sampler (Moufad et al. 2026, \"Efficient Zero-Shot Inpainting with Decoupled "
                   "Diffusion Guidance\") for SamplerCustom / SamplerCustomAdvanced: fills the masked region so it "
                   "agrees with the rest of the image. Give the latent a mask (SetLatentNoiseMask; with an inpainting "
                   "checkpoint such as Flux Fill, InpaintModelConditioning). Cost: 2 network calls per step + 1 "
                   "(delayed: 1 per step + 1).")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustom's sampler input; its latent_image must carry a mask (SetLatentNoiseMask).",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": ding_options_inputs()}

    def get_sampler(self, variant, eta_schedule, eta_scale, obs_std):
        options = {"obs_std": obs_std, "eta_schedule": eta_schedule, "eta_scale": eta_scale, "variant": variant}
        return (comfy_compat.ksampler(sample_ding_comfy, options),)
