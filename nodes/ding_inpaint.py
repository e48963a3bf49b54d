"""All-in-one DInG inpainting: IMAGE + MASK in, inpainted IMAGE out (KSampler-like)."""
import logging

import comfy.sample
import comfy.samplers

from ..solvers import ding, masks
from . import comfy_compat, inputs, sockets
from .ding_sampler import ding_options_inputs, sample_ding_comfy
from .vae_bridge import encode_reproducibly

log = logging.getLogger("inverse_samplers")


class DInGInpaint:
    DESCRIPTION = ("Inpaint with DInG on any checkpoint: encodes the image, samples the masked region as an exact "
                   "posterior step by step (2 network calls per step), decodes. Feathered paste-back (on by default) "
                   "keeps every pixel outside the mask bit-exact.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("image", "latent", "info")
    OUTPUT_TOOLTIPS = ("The inpainted image, at the input's size (pasted back into the original unless paste_back is off).",
                       "The sampled latent (before paste-back), e.g. for a second pass.",
                       "Steps and network calls of the run (connect Preview Any to read it).")
    FUNCTION = "inpaint"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **sockets.model_sockets(),
            "image": ("IMAGE", {"tooltip": "The image to inpaint (any size; pixels outside the mask are kept)."}),
            "mask": ("MASK", {"tooltip": "White (1) = region to inpaint. Soft values are honoured."}),
            "seed": sockets.seed(),
            "steps": sockets.steps(20, 1, "Sampling steps (2 network calls each with the ding variant, 1 with delayed)."),
            "cfg": sockets.cfg(5.0),
            "scheduler": sockets.scheduler(),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                        "Share of the schedule to run: below 1 the hole starts from the encoded image (keeps its layout)."}),
            **ding_options_inputs(),
            "mask_mode": (list(masks.MASK_MODES), {"default": "threshold", "tooltip":
                          "threshold: a latent cell is known only if mask_threshold of its pixels are. soft: keep the fraction."}),
            "mask_threshold": ("FLOAT", {"default": 0.95, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                               "threshold mode: share of a latent cell's pixels that must be known for the cell to "
                               "count as known (lower = smaller hole)."}),
            "mask_grow": ("INT", {"default": 0, "min": 0, "max": 16, "tooltip": "Grow the hole by this many latent cells."}),
            "mask_feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 8.0, "step": 0.1, "tooltip":
                             "Soften the known side of the border (latent cells): lets the model harmonise seams."}),
            "paste_back": ("BOOLEAN", {"default": True, "tooltip":
                           "Composite the result into the original pixels with a feathered edge inside the mask: "
                           "every pixel outside the mask stays exactly as it was. Off: the whole decoded image."}),
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
        rgb = image[..., :3]
        padded, padded_hole = inputs.pad_to_multiple(rgb, hole, inputs.vae_scale(vae))
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
        decoded = vae.decode(samples)[:, :image.shape[1], :image.shape[2]].to(image.device)
        if paste_back:
            decoded = masks.paste_back(rgb, decoded, hole, paste_feather)
        calls = ding.network_calls(sigmas, variant)
        info = (f"DInG ({variant}): {len(sigmas) - 1} steps, {calls} network calls"
                + (f" ({2 * calls} model passes with CFG)" if cfg != 1.0 else ""))
        log.info(info)
        return (decoded, {"samples": samples}, info)
