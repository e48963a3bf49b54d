"""Pixel masks to latent observation masks, and the feathered pixel paste-back.

Conventions: a *hole* mask is ComfyUI's MASK (1 = regenerate); an *observed* mask is DInG's M
(1 = known). Pixel masks are [B, H, W]; latent masks are [B, 1, h, w].
"""
import math

import kornia
import torch
import torch.nn.functional as F

MASK_MODES = ("threshold", "soft")


def observed_fraction(hole_mask: torch.Tensor, latent_size) -> torch.Tensor:
    """Share of known pixels under each latent cell: antialiased bilinear down-sampling (ding.md §4)."""
    observed = (1.0 - hole_mask.to(torch.float32))[:, None]
    if tuple(observed.shape[-2:]) == tuple(latent_size):
        return observed
    return F.interpolate(observed, size=tuple(latent_size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(0.0, 1.0)


def grow_hole(observed_mask: torch.Tensor, cells: int) -> torch.Tensor:
    """Dilate the unknown region by `cells` latent cells (a max-pool on the hole)."""
    if cells <= 0:
        return observed_mask
    hole = F.max_pool2d(1.0 - observed_mask, kernel_size=2 * cells + 1, stride=1, padding=cells)
    return 1.0 - hole


def gaussian_blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a [B, 1, h, w] mask, border replicated."""
    if sigma <= 0:
        return mask
    radius = max(1, math.ceil(3 * sigma))
    return kornia.filters.gaussian_blur2d(mask, (2 * radius + 1, 2 * radius + 1), (sigma, sigma),
                                          border_type="replicate")


def latent_observed_mask(hole_mask: torch.Tensor, latent_size, mode: str = "threshold",
                         threshold: float = 0.95, grow: int = 0, feather: float = 0.0) -> torch.Tensor:
    """DInG's M at latent resolution from a pixel hole mask.

    threshold: a cell is known only if at least `threshold` of its pixels are known (the hole grows,
    as in the reference); soft: M is that fraction itself. `feather` (in cells) then softens the
    known side of the border only: M ← min(M, blur(M)), so no hole cell ever becomes known.
    """
    if mode not in MASK_MODES:
        raise ValueError(f"mask mode must be one of {MASK_MODES}, got {mode!r}")
    fraction = observed_fraction(hole_mask, latent_size)
    observed = (fraction >= threshold).to(torch.float32) if mode == "threshold" else fraction
    observed = grow_hole(observed, grow)
    return torch.minimum(observed, gaussian_blur(observed, feather))


def hole_in_pixels(observed_mask: torch.Tensor, pixel_size) -> torch.Tensor:
    """The latent hole 1 − M spread over each cell's pixels: [B, H, W]."""
    return F.interpolate(1.0 - observed_mask, size=tuple(pixel_size), mode="nearest")[:, 0]


def grey_out_hole(image: torch.Tensor, hole_mask: torch.Tensor) -> torch.Tensor:
    """The picture an inpainting model (SD 9-channel, Flux Fill) sees beside its noisy latent: mid-grey where
    the rounded hole is, the image elsewhere; as ComfyUI's InpaintModelConditioning makes it. [B, H, W, C]."""
    hole = hole_mask.round()[..., None].to(image.dtype)
    return image * (1.0 - hole) + 0.5 * hole


def paste_weights(hole_mask: torch.Tensor, feather_px: float) -> torch.Tensor:
    """Per-pixel weight of the generated image in a paste-back, [B, H, W, 1].

    A linear ramp over `feather_px` pixels inside the hole (chessboard distance to the nearest
    known pixel), times the hole value: w = 0 wherever hole = 0, so every known pixel of the
    input comes back bit for bit, and w reaches the hole value `feather_px` pixels in.
    """
    hole = hole_mask.to(torch.float32)[:, None]
    width = int(round(feather_px))
    known = (hole <= 0).to(torch.float32)
    ramp = torch.zeros_like(hole)
    for _ in range(max(width, 1)):  # ramp = share of the first `width` erosions of the hole still covering
        ramp += 1.0 - known
        known = F.max_pool2d(known, kernel_size=3, stride=1, padding=1)
    return (hole * ramp / max(width, 1))[:, 0, :, :, None]


def paste_back(original: torch.Tensor, generated: torch.Tensor, hole_mask: torch.Tensor,
               feather_px: float) -> torch.Tensor:
    """Composite IMAGEs [B, H, W, C]: original where known, generated in the (feathered) hole."""
    weight = paste_weights(hole_mask, feather_px).to(original.dtype)
    return torch.where(weight > 0, original * (1 - weight) + generated * weight, original)


OUTPAINT_FILLS = ("edge", "mirror", "grey")


def outpaint_padding(image: torch.Tensor, left: int, top: int, right: int, bottom: int, fill: str = "edge",
                     feathering: int = 0):
    """The image [B, H, W, C] (ComfyUI's IMAGE) grown by the given margins, and its hole mask [B, H', W']
    (1 = generate). The original pixels are copied unchanged and their mask is 0. The margins start as the
    photo's edge continued (`edge`), mirrored (`mirror`) or mid-grey (`grey`); with `feathering` > 0 the
    mask in the margin rises from 0 at the photo's edge to 1 over that many pixels, so the continued edge
    counts as a hint that fades out (a soft observation to DInG); at 0 the margin is simply unknown."""
    if fill not in OUTPAINT_FILLS:
        raise ValueError(f"fill must be one of {OUTPAINT_FILLS}, got {fill!r}")
    channels_first = image.movedim(-1, 1)
    mode = {"edge": "replicate", "mirror": "reflect"}.get(fill)
    if mode == "reflect" and (max(left, right) >= image.shape[2] or max(top, bottom) >= image.shape[1]):
        mode = "replicate"  # reflection needs a margin smaller than the image; farther out the edge continues
    if mode is None:
        padded = F.pad(channels_first, (left, right, top, bottom), value=0.5)
    else:
        padded = F.pad(channels_first, (left, right, top, bottom), mode=mode)
    padded = padded.movedim(1, -1).contiguous()
    padded[:, top:top + image.shape[1], left:left + image.shape[2]] = image  # bit-exact, whatever the padding did
    height, width = padded.shape[1:3]
    rows = torch.arange(height, dtype=torch.float32)[:, None]
    cols = torch.arange(width, dtype=torch.float32)[None, :]
    # pixels outside the photo, per axis (0 inside it)
    outside_rows = (top - rows).clamp_min(0) + (rows - (top + image.shape[1] - 1)).clamp_min(0)
    outside_cols = (left - cols).clamp_min(0) + (cols - (left + image.shape[2] - 1)).clamp_min(0)
    distance = torch.maximum(outside_rows, outside_cols)
    if feathering > 0:
        hole = (distance / (feathering + 1)).clamp(max=1.0)
    else:
        hole = (distance > 0).float()
    return padded, hole.expand(image.shape[0], -1, -1).contiguous()
