"""Checks on the sockets a user wires in: clear errors that name the socket, and no input mutated."""
import functools
import inspect
import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger("inverse_samplers")


MIN_LATENT_CELLS = 2  # VAEs and UNets normalise over the latent grid: a 1x1 latent fails deep inside them


def check_image(image, socket="image", rgb=True):
    """An IMAGE [B, H, W, C]; with rgb, C must be 3 or 4 (the pack feeds RGB to VAEs and operators)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] > 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"{socket}: expected an IMAGE tensor [batch, height, width, 3], got {shape}")
    channels = image.shape[-1]
    if rgb and channels not in (3, 4):
        raise ValueError(f"{socket}: the IMAGE has {channels} channel{'' if channels == 1 else 's'}; expected "
                         "3 (RGB) or 4 (RGBA) channels (convert a greyscale image to RGB first)")
    if not torch.isfinite(image).all():
        raise ValueError(f"{socket}: the image contains NaN or infinite values")
    return image


IMAGE_RANGE_SLACK = 0.5  # an IMAGE holds 0..1; noise a measurement carries may step a little outside


def warn_if_out_of_range(image, socket):
    """Pixel values far outside 0..1 (an unnormalised or HDR tensor) are used as given, with one warning."""
    low, high = float(image.min()), float(image.max())
    if low < -IMAGE_RANGE_SLACK or high > 1.0 + IMAGE_RANGE_SLACK:
        log.warning("%s: pixel values span [%.3g, %.3g], far outside an IMAGE's 0..1; they are used as given (if "
                    "this is an unnormalised or HDR image, scale it to 0..1 first)", socket, low, high)


def check_hole_mask(mask, image, socket="mask", image_socket="image"):
    """The MASK as [B, H, W] (1 = regenerate), checked against the IMAGE it belongs to."""
    if mask is None:
        raise ValueError(f"{socket}: a MASK is required (white = region to inpaint)")
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim == 4 and mask.shape[1] == 1:  # a latent-style [B, 1, H, W] noise mask
        mask = mask[:, 0]
    if mask.ndim != 3:
        raise ValueError(f"{socket}: expected a MASK [batch, height, width], got shape {tuple(mask.shape)}")
    if tuple(mask.shape[1:]) != tuple(image.shape[1:3]):
        raise ValueError(f"{socket}: size {mask.shape[2]}x{mask.shape[1]} does not match {image_socket} size "
                         f"{image.shape[2]}x{image.shape[1]}; resize the mask (or crop both) so they agree")
    if mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"{socket}: batch of {mask.shape[0]} masks for {image.shape[0]} images; give one mask "
                         "for all images or one per image")
    if not torch.isfinite(mask).all():
        raise ValueError(f"{socket}: the mask contains NaN or infinite values")
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"{socket}: mask values must lie in [0, 1], got [{float(mask.min()):.3g}, "
                         f"{float(mask.max()):.3g}]")
    return mask.to(torch.float32)


NOISE_MASK_SOCKET = "latent_image noise_mask (from SetLatentNoiseMask / InpaintModelConditioning)"


def check_noise_mask(mask, socket=NOISE_MASK_SOCKET):
    """The latent-shaped mask a KSAMPLER receives (1 = generate), after ComfyUI resized it to the latent:
    finite and in [0, 1], else a hole value of 2 would count as known and a NaN would regenerate its cell."""
    if not torch.isfinite(mask).all():
        raise ValueError(f"{socket}: the mask contains NaN or infinite values after ComfyUI resized it to the "
                         "latent; mask values must be finite and lie in [0, 1]")
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError(f"{socket}: mask values must lie in [0, 1] (1 = inpaint), got [{float(mask.min()):.3g}, "
                         f"{float(mask.max()):.3g}] after ComfyUI resized it to the latent; check the node that "
                         "made the MASK (e.g. clamp it, or threshold it with a mask node)")
    return mask


def check_concat_masks_agree(concat_masks, hole_mask, hole_socket=NOISE_MASK_SOCKET,
                             remedy="or use InpaintModelConditioning's own latent (noise_mask on)"):
    """An inpainting model's mask input (InpaintModelConditioning's `mask`) must mark the hole the sampler fills
    (`hole_mask` [B, C, h, w] at latent size, from `hole_socket`): compared at latent size, as ComfyUI resizes
    both."""
    for concat_mask in concat_masks:
        at_latent = F.interpolate(concat_mask.to(hole_mask).reshape(-1, 1, *concat_mask.shape[-2:]),
                                  size=tuple(hole_mask.shape[-2:]), mode="bilinear")
        if at_latent.shape[0] not in (1, hole_mask.shape[0]) or (at_latent - hole_mask[:, :1]).abs().max() > 0.5:
            raise ValueError(
                "positive / negative: the inpainting model's mask (InpaintModelConditioning) marks another region "
                f"than {hole_socket}, so the model would be shown one hole and the sampler fill another. Connect "
                f"the same MASK to both, {remedy}")


def check_vae(vae, socket="vae"):
    if vae is None or not hasattr(vae, "encode") or not hasattr(vae, "decode"):
        raise ValueError(f"{socket}: a VAE is required (connect the checkpoint's VAE output)")
    return vae


def check_vae_fits_model(vae, model_channels, socket="vae"):
    """The VAE's latents must have the channels the model samples (4: SD1.5 / SDXL, 16: SD3 / Flux)."""
    vae_channels = getattr(vae, "latent_channels", None)
    if vae_channels is not None and model_channels is not None and int(vae_channels) != int(model_channels):
        raise ValueError(f"{socket}: its latents have {vae_channels} channels but the model works on "
                         f"{model_channels}-channel latents: the VAE and the model come from different families "
                         "(SD1.5 / SDXL VAEs have 4 channels, SD3 / Flux ones 16); connect the VAE of the model's "
                         "checkpoint")
    return vae


def check_fits_vae(height, width, scale, socket, described="", remedy=""):
    """Pixel sizes below MIN_LATENT_CELLS latent cells per side fail inside the VAE (or the model)."""
    least = MIN_LATENT_CELLS * scale
    if height < least or width < least:
        raise ValueError(f"{socket}: {described}{width}x{height} px is too small for the VAE: it needs at least "
                         f"{least}x{least} px ({MIN_LATENT_CELLS} latent cells of {scale} px per side){remedy}")


def check_latent_fits_vae(latent_height, latent_width, scale, socket="latent_image"):
    if latent_height < MIN_LATENT_CELLS or latent_width < MIN_LATENT_CELLS:
        raise ValueError(f"{socket}: {latent_width}x{latent_height} latent cells ({latent_width * scale}x"
                         f"{latent_height * scale} px) is too small for the VAE: it needs at least "
                         f"{MIN_LATENT_CELLS}x{MIN_LATENT_CELLS} cells ({MIN_LATENT_CELLS * scale}x"
                         f"{MIN_LATENT_CELLS * scale} px)")


def check_latent_fits_model(base_model, latent_height, latent_width, scale, socket, remedy):
    """A model that samples one size only (the demo priors: a mixture fitted at that size) declares it as
    `fixed_latent_size` (latent cells); every other model takes any size."""
    fixed = getattr(base_model, "fixed_latent_size", None)
    if fixed is not None and (int(latent_height), int(latent_width)) != tuple(fixed):
        unit, scale = ("px", scale) if scale else ("latent cells", 1)
        raise ValueError(f"{socket}: this model samples {fixed[1] * scale}x{fixed[0] * scale} {unit} only (a demo "
                         f"prior fitted at that size), got {latent_width * scale}x{latent_height * scale} {unit}; "
                         f"{remedy}")


def vae_scale(vae) -> int:
    """Pixels per latent cell of an image VAE (8 for SD / SDXL / SD3 / Flux)."""
    if hasattr(vae, "spacial_compression_encode"):
        return int(vae.spacial_compression_encode())
    return int(vae.downscale_ratio)


def pad_to_multiple(image, hole_mask, multiple):
    """Replicate-pad IMAGE [B, H, W, C] and hole mask [B, H, W] on the bottom/right to a multiple of
    the VAE's scale (ComfyUI would crop instead); padded pixels count as known. Crop back with [:H, :W]."""
    height, width = image.shape[1:3]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image, hole_mask
    padded = F.pad(image.movedim(-1, 1), (0, pad_w, 0, pad_h), mode="replicate").movedim(1, -1)
    return padded, F.pad(hole_mask, (0, pad_w, 0, pad_h), value=0.0)


def float_widgets(node_class):
    """name → options of every FLOAT widget the node declares."""
    declared = node_class.INPUT_TYPES()
    return {name: (spec[1] if len(spec) > 1 else {}) for section in ("required", "optional")
            for name, spec in declared.get(section, {}).items() if spec[0] == "FLOAT"}


def finite_float_widgets(node_class):
    """Make the node refuse a non-finite FLOAT widget value (NaN, inf), naming the widget. ComfyUI's own
    validation checks min <= value <= max, and every comparison with NaN is false, so NaN passes it."""
    widgets = float_widgets(node_class)
    if not widgets:
        return node_class
    function = getattr(node_class, node_class.FUNCTION)
    signature = inspect.signature(function)

    def given(*args, **kwargs):
        """name → value of every argument, those collected by a **options parameter included."""
        for name, value in signature.bind(*args, **kwargs).arguments.items():
            if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                yield from value.items()
            else:
                yield name, value

    @functools.wraps(function)
    def checked(*args, **kwargs):
        for name, value in given(*args, **kwargs):
            if name in widgets and isinstance(value, (int, float)) and not math.isfinite(value):
                options = widgets[name]
                raise ValueError(f"{name}: got {value}; type a number between {options.get('min', '-inf')} and "
                                 f"{options.get('max', 'inf')} (default {options.get('default')})")
        return function(*args, **kwargs)
    setattr(node_class, node_class.FUNCTION, checked)
    return node_class
