"""DInG inpainting in ComfyUI: the KSAMPLER function (the SAMPLER node for SamplerCustom /
SamplerCustomAdvanced) and the all-in-one node (IMAGE + MASK in, inpainted IMAGE out, KSampler-like)."""
import logging

import torch

from ..solvers import crop, ding, masks
from . import checks, comfy_compat, input_specs, vae_bridge
from .restoration import checked_denoiser, solver_generator
from .vae_bridge import encode_reproducibly

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
    checks.check_noise_mask(hole_mask)
    concat_masks = comfy_compat.conditioned_concat_masks(model)
    checks.check_concat_masks_agree(concat_masks, hole_mask)
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
    checks.check_latent_fits_model(base_model, x.shape[2], x.shape[3], None, "latent_image",
                                   "encode an image of that size")
    seed = int((extra_args or {}).get("seed") or 0)
    log.info("DInG (%s, %s): %d network calls for %d steps", variant, param.name,
             ding.network_calls(sigmas, variant), len(sigmas) - 1)
    denoise = checked_denoiser(model, extra_args, x, "DInG sampler")  # pitfall 1: no ComfyUI blending

    def report(i, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0})

    return ding.sample_ding(denoise, x, sigmas, observation, 1.0 - hole_mask, param, solver_generator(seed),
                            observed_mask_at=scheduled_observed_mask(model, extra_args, hole_mask), obs_std=obs_std,
                            eta_schedule=eta_schedule, eta_scale=eta_scale, variant=variant, callback=report,
                            check_interrupt=comfy_compat.check_interrupt)


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
        return 1.0 - checks.check_noise_mask(step_hole, "model (its denoise mask function, e.g. Differential "
                                                        "Diffusion)")
    return observed_mask_at


VARIANT_STEPS = {  # what each of ding.VARIANTS does, for the `variant` widgets' tooltips
    "ding": "the full step of the DInG paper (Moufad et al. 2026), 2 network calls per step",
    "frozen_proxy": "1 call per step (about twice as fast): the step's second, independent draw is read against "
                    "this step's own denoised image instead of calling the model on it",
    "delayed": "1 call per step, reusing the current step's noise estimate without the second draw",
}


def variant_input(default: str, measured: dict):
    """The `variant` widget: each variant's step, followed by what the pack measured of it for this node."""
    sentences = [f"{name}{' (default)' if name == default else ''}: {VARIANT_STEPS[name]}"
                 + (f" ({measured[name]})" if name in measured else "") + "." for name in ding.VARIANTS]
    return (list(ding.VARIANTS), {"default": default, "tooltip": " ".join(sentences)})


def ding_options_inputs():
    """The DInG widgets shared by the SAMPLER node and the all-in-one node."""
    return {
        "variant": variant_input("ding", {"frozen_proxy": "as close as ding on the pack's inpainting tests",
                                          "delayed": "the paper found it less faithful on SD3 images"}),
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
                   "(frozen_proxy, delayed: 1 per step + 1).")
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


class DInGInpaint:
    DESCRIPTION = ("Inpaint with DInG (Moufad et al. 2026, \"Efficient Zero-Shot Inpainting with Decoupled Diffusion "
                   "Guidance\") on any checkpoint: fills the masked region so that at every step it agrees with the "
                   "rest of the image (2 network calls per step). Feathered paste-back (on by default) keeps every "
                   "pixel outside the mask exactly as it was. Inpainting checkpoints (SD inpainting, Flux Fill) are shown "
                   "the hole themselves.")
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
            **input_specs.model_sockets(),
            "image": ("IMAGE", {"tooltip": "The image to inpaint (any size; pixels outside the mask are kept)."}),
            "mask": ("MASK", {"tooltip": "White (1) = region to inpaint. Soft values are honoured."}),
            "seed": input_specs.seed(),
            "steps": input_specs.steps(20, 1, "Sampling steps (2 network calls each with the ding variant, 1 with "
                                       "frozen_proxy or delayed)."),
            "cfg": input_specs.cfg(5.0),
            "scheduler": input_specs.scheduler(),
            "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                        "Share of the schedule to run: 1 fills the hole from scratch; below 1 it starts from what the "
                        "hole shows now and keeps its layout (lower = closer to the original)."}),
            **ding_options_inputs(),
            "mask_mode": (list(masks.MASK_MODES), {"default": "threshold", "tooltip":
                          "How the pixel mask maps onto latent cells (8x8-pixel blocks for SD, SDXL, SD3, Flux). "
                          "threshold: a cell counts as known only if mask_threshold of its pixels are known. soft: a "
                          "partly known cell is kept partly."}),
            "mask_threshold": ("FLOAT", {"default": 0.95, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                               "threshold mode: share of a latent cell's pixels that must be known for the cell to "
                               "count as known (lower = smaller hole)."}),
            "mask_grow": ("INT", {"default": 0, "min": 0, "max": 16, "tooltip":
                          "Grow the hole by this many latent cells (8 px each for SD, SDXL, SD3, Flux), e.g. to cover "
                          "a halo around a removed object."}),
            "mask_feather": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 8.0, "step": 0.1, "tooltip":
                             "Soften the known side of the border (latent cells): lets the model harmonise seams."}),
            "paste_back": ("BOOLEAN", {"default": True, "tooltip":
                           "Composite the result into the original pixels with a feathered edge inside the mask: "
                           "every pixel outside the mask stays exactly as it was. Off: the whole decoded image."}),
            "paste_feather": ("FLOAT", {"default": 4.0, "min": 0.0, "max": 64.0, "step": 0.5,
                              "tooltip": "Width (pixels) of the paste-back ramp, inside the mask."}),
        }, "optional": {
            "context_crop": ("BOOLEAN", {"default": False, "tooltip":
                             "Big images: sample only the mask's bounding box plus context_margin, resized to "
                             "crop_resolution, then stitch it back with the paste_feather blend (pixels outside the "
                             "mask stay unchanged). Much faster for a small hole in a large photo."}),
            "context_margin": ("INT", {"default": 64, "min": 0, "max": 8192, "step": 8, "tooltip":
                               "Context crop: pixels of surroundings kept around the mask's bounding box on each side "
                               "(clipped at the image border). More context, better-matched fills, slower."}),
            "crop_resolution": ("INT", {"default": 1024, "min": 0, "max": 8192, "step": 8, "tooltip":
                                "Context crop: the crop's longest side is resized to this many pixels (aspect kept, "
                                "a multiple of the VAE's 8): ~512 for SD1.5, ~1024 for SDXL / SD3 / Flux. 0 = keep the "
                                "native scale (crop only)."}),
        }}

    def inpaint(self, model, positive, negative, vae, image, mask, seed, steps, cfg, scheduler, denoise,
                variant, eta_schedule, eta_scale, obs_std, mask_mode, mask_threshold, mask_grow, mask_feather,
                paste_back, paste_feather, context_crop=False, context_margin=64, crop_resolution=1024):
        image = checks.check_image(image)
        hole = checks.check_hole_mask(mask, image)
        vae = checks.check_vae(vae)
        comfy_compat.parameterisation_of(comfy_compat.model_sampling_of(model))
        checks.check_vae_fits_model(vae, model.model.latent_format.latent_channels)
        scale = checks.vae_scale(vae)
        checks.check_fits_vae(image.shape[1], image.shape[2], scale, "image")
        rgb = image[..., :3]
        settings = dict(seed=seed, steps=steps, cfg=cfg, scheduler=scheduler, denoise=denoise, variant=variant,
                        eta_schedule=eta_schedule, eta_scale=eta_scale, obs_std=obs_std, mask_mode=mask_mode,
                        mask_threshold=mask_threshold, mask_grow=mask_grow, mask_feather=mask_feather)
        if context_crop and float(hole.max()) > 0:
            return self._inpaint_cropped(model, positive, negative, vae, rgb, hole, paste_feather,
                                         context_margin, crop_resolution, settings)
        _check_sampled_size(model, image.shape[1], image.shape[2], scale, "image", "resize the image to that size")
        decoded, samples, info = _sample(model, positive, negative, vae, rgb, hole, **settings)
        if decoded is None:  # RGB like every other result, whatever the mask
            return (rgb, {"samples": samples}, info)
        if paste_back:
            decoded = masks.paste_back(rgb, decoded, hole, paste_feather)
        log.info(info)
        return (decoded, {"samples": samples}, info)

    def _inpaint_cropped(self, model, positive, negative, vae, rgb, hole, paste_feather, margin, resolution,
                         settings):
        """Crop & Stitch: the holes' boxes plus margin, at crop_resolution, stitched back with the paste ramp."""
        boxes = crop.context_boxes(hole, margin)   # one per mask; a shared mask: one box for every image
        if len(boxes) == 1:
            boxes = boxes * rgb.shape[0]
        box_h, box_w = boxes[0][1] - boxes[0][0], boxes[0][3] - boxes[0][2]
        scale = checks.vae_scale(vae)
        size = crop.crop_size(box_h, box_w, resolution, scale)
        checks.check_fits_vae(size[0], size[1], scale, "context_crop", "the crop of ",
                              "; raise context_margin or crop_resolution, or turn context_crop off")
        _check_sampled_size(model, size[0], size[1], scale, "context_crop",
                            "turn context_crop off: this model cannot sample a crop")
        crop_rgb = crop.resize(crop.crop(rgb, boxes), size)
        crop_hole = crop.resize_mask(crop.crop(hole, boxes), size)
        decoded, samples, info = _sample(model, positive, negative, vae, crop_rgb, crop_hole, **settings)
        if decoded is None:
            return (rgb, {"samples": samples}, info)
        stitched = crop.stitch(rgb, crop.resize(decoded, (box_h, box_w)), hole, boxes, paste_feather)
        info += f"; context crop {box_w}x{box_h} px at {size[1]}x{size[0]}, stitched into {rgb.shape[2]}x{rgb.shape[1]}"
        log.info(info)
        return (stitched, {"samples": samples}, info)


def _check_sampled_size(model, height, width, scale, socket, remedy):
    """The latent DInG will sample (pixels padded to the VAE's scale) against a model's fixed size, if any."""
    checks.check_latent_fits_model(model.model, -(-height // scale), -(-width // scale), scale, socket, remedy)


def _sample(model, positive, negative, vae, rgb, hole, seed, steps, cfg, scheduler, denoise, variant, eta_schedule,
            eta_scale, obs_std, mask_mode, mask_threshold, mask_grow, mask_feather):
    """Encode, sample with DInG, decode: (decoded IMAGE at rgb's size, latent, info); decoded is None when
    nothing was sampled (empty mask, denoise 0)."""
    padded, padded_hole = checks.pad_to_multiple(rgb, hole, checks.vae_scale(vae))
    latent = encode_reproducibly(vae, padded, seed)
    if float(hole.max()) <= 0:
        log.warning("DInG inpaint: the mask is empty (nothing to inpaint); returning the input image unchanged.")
        return None, latent, "DInG: empty mask, nothing inpainted (0 network calls)"
    observed = masks.latent_observed_mask(padded_hole, latent.shape[-2:], mask_mode, mask_threshold,
                                          mask_grow, mask_feather)
    sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, denoise)
    if sigmas is None:
        return None, latent, "DInG: denoise is 0, nothing sampled (0 network calls)"
    conditioned = comfy_compat.is_inpainting_model(model)
    replaced = conditioned and comfy_compat.has_inpaint_inputs(positive + negative)
    if conditioned:
        positive, negative = _inpainting_model_inputs(vae, positive, negative, padded, observed, seed)
    sampler = comfy_compat.ksampler(sample_ding_comfy, {
        "obs_std": obs_std, "eta_schedule": eta_schedule, "eta_scale": eta_scale, "variant": variant})
    samples = comfy_compat.sample_custom(model, sampler, sigmas, positive, negative, cfg, latent, seed,
                                         noise_mask=1.0 - observed)
    decoded = vae_bridge.decode(vae, samples)[:, :rgb.shape[1], :rgb.shape[2]].to(rgb.device)
    calls = ding.network_calls(sigmas, variant)
    info = (f"DInG ({variant}): {len(sigmas) - 1} steps, {calls} network calls"
            + (f" ({2 * calls} model passes with CFG)" if cfg != 1.0 else "")
            + ("; inpainting model shown DInG's hole" if conditioned else "")
            + (" (in place of InpaintModelConditioning's)" if replaced else "")
            + ("; mask scheduled by the model's mask function (Differential Diffusion)"
               if "denoise_mask_function" in model.model_options else ""))
    return decoded, samples, info


def _inpainting_model_inputs(vae, positive, negative, padded, observed, seed):
    """What InpaintModelConditioning would give an inpainting model (SD 9-channel, Flux Fill), made from the hole
    DInG fills (the latent cells it treats as unknown, which mask_threshold / mask_grow may widen), so the model
    and DInG agree on it; it takes the place of any InpaintModelConditioning inputs the conditioning carries."""
    hole = masks.hole_in_pixels(observed, padded.shape[1:3])
    masked_image_latent = encode_reproducibly(vae, masks.grey_out_hole(padded, hole), seed)
    return (comfy_compat.with_inpaint_inputs(positive, masked_image_latent, hole),
            comfy_compat.with_inpaint_inputs(negative, masked_image_latent, hole))
