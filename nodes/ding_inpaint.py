"""All-in-one DInG inpainting: IMAGE + MASK in, inpainted IMAGE out (KSampler-like)."""
import logging

import comfy.sample
import comfy.samplers

from ..solvers import ding, masks
from . import comfy_compat, inputs, vae_bridge
from .ding_sampler import ding_options_inputs, sample_ding_comfy
from .vae_bridge import encode_reproducibly

log = logging.getLogger("inverse_samplers")


class DInGInpaint:
    DESCRIPTION = ("Inpaint with DInG on any checkpoint: encodes the image, samples the masked region as an exact "
                   "posterior step by step (2 network calls per step), decodes. Optional feathered paste-back keeps "
                   "every pixel outside the mask bit-exact.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("image", "latent", "info")
    FUNCTION = "inpaint"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL",),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "vae": ("VAE",),
            "image": ("IMAGE",),
            "mask": ("MASK", {"tooltip": "White (1) = region to inpaint. Soft values are honoured."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True}),
            "steps": ("INT", {"default": 20, "min": 1, "max": 1000}),
            "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "scheduler": (comfy_compat.scheduler_names(), {"default": "normal"}),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            **ding_options_inputs(),
            "mask_mode": (list(masks.MASK_MODES), {"default": "threshold", "tooltip":
                          "threshold: a latent cell is known only if mask_threshold of its pixels are. soft: keep the fraction."}),
            "mask_threshold": ("FLOAT", {"default": 0.95, "min": 0.0, "max": 1.0, "step": 0.01}),
            "mask_grow": ("INT", {"default": 0, "min": 0, "max": 16, "tooltip": "Grow the hole by this many latent cells."}),
            "mask_feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 8.0, "step": 0.1, "tooltip":
                             "Soften the known side of the border (latent cells): lets the model harmonise seams."}),
            "paste_back": ("BOOLEAN", {"default": False, "tooltip":
                           "Composite the result into the original pixels: outside the mask stays bit-exact."}),
            "paste_feather": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 64.0, "step": 0.5,
                              "tooltip": "Width (pixels) of the paste-back ramp, inside the mask."}),
        }}

    def inpaint(self, model, positive, negative, vae, image, mask, seed, steps, cfg, scheduler, denoise,
                variant, eta_schedule, eta_scale, obs_std, mask_mode, mask_threshold, mask_grow, mask_feather,
                paste_back, paste_feather):
        image = inputs.check_image(image)
        hole = inputs.check_hole_mask(mask, image)
        vae = inputs.check_vae(vae)
        comfy_compat.parameterisation_of(comfy_compat.model_sampling_of(model))
        inputs.check_vae_fits_model(vae, model.model.latent_format.latent_channels)
        scale = inputs.vae_scale(vae)
        inputs.check_fits_vae(image.shape[1], image.shape[2], scale, "image")
        rgb = image[..., :3]
        padded, padded_hole = inputs.pad_to_multiple(rgb, hole, scale)
        latent = encode_reproducibly(vae, padded, seed)
        if float(hole.max()) <= 0:
            log.warning("DInG inpaint: the mask is empty (nothing to inpaint); returning the input image unchanged.")
            return (image, {"samples": latent}, "DInG: empty mask, nothing inpainted (0 network calls)")
        observed = masks.latent_observed_mask(padded_hole, latent.shape[-2:], mask_mode, mask_threshold,
                                              mask_grow, mask_feather)
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, denoise)
        if sigmas is None:
            return (image, {"samples": latent}, "DInG: denoise is 0, nothing sampled (0 network calls)")
        sampler = comfy.samplers.KSAMPLER(sample_ding_comfy, extra_options={
            "obs_std": obs_std, "eta_schedule": eta_schedule, "eta_scale": eta_scale, "variant": variant})
        samples = comfy.sample.sample_custom(
            model, comfy.sample.prepare_noise(latent, seed, None), cfg, sampler, sigmas, positive, negative,
            latent, noise_mask=1.0 - observed,
            callback=comfy_compat.latent_preview.prepare_callback(model, len(sigmas) - 1), seed=seed)
        decoded = vae_bridge.decode(vae, samples)[:, :image.shape[1], :image.shape[2]].to(image.device)
        if paste_back:
            decoded = masks.paste_back(rgb, decoded, hole, paste_feather)
        calls = ding.network_calls(sigmas, variant)
        info = (f"DInG ({variant}): {len(sigmas) - 1} steps, {calls} network calls"
                + (f" ({2 * calls} model passes with CFG)" if cfg != 1.0 else ""))
        log.info(info)
        return (decoded, {"samples": samples}, info)
