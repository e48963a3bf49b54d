"""All-in-one DInG inpainting: IMAGE + MASK in, inpainted IMAGE out (KSampler-like)."""
import logging


from ..solvers import crop, ding, masks
from . import comfy_compat, inputs, sockets, vae_bridge
from .ding_sampler import ding_options_inputs, sample_ding_comfy
from .vae_bridge import encode_reproducibly

log = logging.getLogger("inverse_samplers")


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
            **sockets.model_sockets(),
            "image": ("IMAGE", {"tooltip": "The image to inpaint (any size; pixels outside the mask are kept)."}),
            "mask": ("MASK", {"tooltip": "White (1) = region to inpaint. Soft values are honoured."}),
            "seed": sockets.seed(),
            "steps": sockets.steps(20, 1, "Sampling steps (2 network calls each with the ding variant, 1 with delayed)."),
            "cfg": sockets.cfg(5.0),
            "scheduler": sockets.scheduler(),
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
        image = inputs.check_image(image)
        hole = inputs.check_hole_mask(mask, image)
        vae = inputs.check_vae(vae)
        comfy_compat.parameterisation_of(comfy_compat.model_sampling_of(model))
        inputs.check_vae_fits_model(vae, model.model.latent_format.latent_channels)
        scale = inputs.vae_scale(vae)
        inputs.check_fits_vae(image.shape[1], image.shape[2], scale, "image")
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
        scale = inputs.vae_scale(vae)
        size = crop.crop_size(box_h, box_w, resolution, scale)
        inputs.check_fits_vae(size[0], size[1], scale, "context_crop", "the crop of ",
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
    inputs.check_latent_fits_model(model.model, -(-height // scale), -(-width // scale), scale, socket, remedy)


def _sample(model, positive, negative, vae, rgb, hole, seed, steps, cfg, scheduler, denoise, variant, eta_schedule,
            eta_scale, obs_std, mask_mode, mask_threshold, mask_grow, mask_feather):
    """Encode, sample with DInG, decode: (decoded IMAGE at rgb's size, latent, info); decoded is None when
    nothing was sampled (empty mask, denoise 0)."""
    padded, padded_hole = inputs.pad_to_multiple(rgb, hole, inputs.vae_scale(vae))
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
