"""Context-area cropping for inpainting big images ("Crop & Stitch"): sample only the hole's bounding
box plus a context margin, at a resolution the model likes, then stitch the result back.

Pure torch, no ComfyUI import. Conventions as in masks.py: IMAGEs [B, H, W, C] in 0..1, hole masks
[B, H, W] (1 = regenerate). A box is (top, bottom, left, right), half-open: rows top..bottom-1.
"""
import math

import torch
import torch.nn.functional as F

from .masks import paste_weights


def hole_box(hole: torch.Tensor):
    """Bounding box of the pixels with hole > 0 in one [H, W] mask; None if there are none."""
    rows = (hole > 0).any(1).nonzero()[:, 0]
    cols = (hole > 0).any(0).nonzero()[:, 0]
    if len(rows) == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _fit(start, length, size):
    """Shift [start, start + length) inside [0, size) (length <= size)."""
    return min(max(start, 0), size - length)


def context_boxes(hole_masks: torch.Tensor, margin: int):
    """One box per mask [B, H, W]: the hole's bounding box grown by `margin` pixels on every side,
    clipped at the image borders, then every box grown (about its centre, shifted back inside the
    image where it would cross a border) to the largest height and width in the batch, so that all
    crops share one size and sample as one batch. An empty mask gets the box of the others (or the
    whole image if every mask is empty)."""
    height, width = hole_masks.shape[-2:]
    boxes = []
    for hole in hole_masks:
        box = hole_box(hole)
        if box is not None:
            top, bottom, left, right = box
            box = (max(top - margin, 0), min(bottom + margin, height), max(left - margin, 0), min(right + margin, width))
        boxes.append(box)
    present = [b for b in boxes if b is not None]
    if not present:
        return [(0, height, 0, width)] * len(boxes)
    box_h = max(b[1] - b[0] for b in present)
    box_w = max(b[3] - b[2] for b in present)
    common = []
    for box in boxes:
        box = box or present[0]
        centre_y, centre_x = (box[0] + box[1]) / 2, (box[2] + box[3]) / 2
        top = _fit(int(math.floor(centre_y - box_h / 2)), box_h, height)
        left = _fit(int(math.floor(centre_x - box_w / 2)), box_w, width)
        common.append((top, top + box_h, left, left + box_w))
    return common


def crop_size(box_height: int, box_width: int, resolution: int, multiple: int):
    """Size (h, w) the crop is resized to: the longest side becomes `resolution`, aspect kept, each side
    rounded to a multiple of the VAE's scale. resolution 0: the box's own size (native scale)."""
    if resolution <= 0:
        return box_height, box_width
    scale = resolution / max(box_height, box_width)

    def side(length):
        return max(multiple, int(round(length * scale / multiple)) * multiple)
    return side(box_height), side(box_width)


def resize(images: torch.Tensor, size) -> torch.Tensor:
    """Resize [B, H, W, C] images (bicubic, antialiased when shrinking, clamped to 0..1); the same size
    returns the input untouched."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    out = F.interpolate(images.movedim(-1, 1).to(torch.float32), size=tuple(size), mode="bicubic",
                        antialias=True, align_corners=False)
    return out.clamp(0.0, 1.0).movedim(1, -1).to(images.dtype)


def resize_mask(masks: torch.Tensor, size) -> torch.Tensor:
    """Resize [B, H, W] masks (bilinear, antialiased when shrinking, clamped to 0..1)."""
    if tuple(masks.shape[1:3]) == tuple(size):
        return masks
    out = F.interpolate(masks[:, None].to(torch.float32), size=tuple(size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out[:, 0].clamp(0.0, 1.0)


def crop(tensor: torch.Tensor, boxes) -> torch.Tensor:
    """Stack the box crops of [B, H, W, ...] (boxes of one size; one box per item, or a single item
    cropped with the first box, for a mask shared by the batch)."""
    if tensor.shape[0] == 1:
        boxes = boxes[:1]
    return torch.stack([item[top:bottom, left:right] for item, (top, bottom, left, right) in zip(tensor, boxes)])


def stitch(original: torch.Tensor, generated: torch.Tensor, hole_masks: torch.Tensor, boxes,
           feather_px: float) -> torch.Tensor:
    """Composite generated box crops [B, h, w, C] (at box size) into the original IMAGE [B, H, W, C].

    The weight is masks.paste_weights (a `feather_px` ramp inside the hole, times the hole value),
    computed on a window around each box as wide as the ramp can reach, so it equals the weight of a
    whole-image paste-back: every pixel with hole = 0 (and every pixel outside the boxes) is the
    original bit for bit."""
    out = original.clone()
    height, width = original.shape[1:3]
    reach = int(round(feather_px)) + 1
    for index, (top, bottom, left, right) in enumerate(boxes):
        hole = hole_masks[index if hole_masks.shape[0] > 1 else 0]
        win_top, win_left = max(top - reach, 0), max(left - reach, 0)
        window = hole[win_top:min(bottom + reach, height), win_left:min(right + reach, width)]
        weight = paste_weights(window[None], feather_px)[0]
        weight = weight[top - win_top:bottom - win_top, left - win_left:right - win_left].to(original.dtype)
        region = original[index, top:bottom, left:right]
        blended = region * (1 - weight) + generated[index].to(original.dtype) * weight
        out[index, top:bottom, left:right] = torch.where(weight > 0, blended, region)
    return out
