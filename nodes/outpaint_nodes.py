"""Outpainting: grow the canvas and mark the new margin for DInG Inpaint (or any inpainting sampler)."""
import torch

from ..solvers import masks
from .checks import check_image

MAX_MARGIN = 8192


class OutpaintPad:
    DESCRIPTION = ("Grow an image for outpainting: adds margins and returns the bigger image with its mask (white = "
                   "to generate). The photo's own pixels stay exactly as they are (mask 0), so DInG Inpaint with "
                   "paste_back returns them untouched and fills only the margins.")
    CATEGORY = "image/inverse"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "mask")
    OUTPUT_TOOLTIPS = ("The grown image: connect to DInG Inpaint's image (or VAEEncode).",
                       "White on the new margins: connect to DInG Inpaint's mask (or SetLatentNoiseMask).")
    FUNCTION = "pad"

    @classmethod
    def INPUT_TYPES(cls):
        def margin(side):
            return ("INT", {"default": 128 if side in ("left", "right") else 0, "min": 0, "max": MAX_MARGIN,
                            "step": 8, "tooltip": f"Pixels to add on the {side} (a multiple of 8 keeps the "
                                                  "VAE's grid)."})
        return {"required": {"image": ("IMAGE", {"tooltip": "The photo to extend."}),
                             "left": margin("left"), "top": margin("top"), "right": margin("right"),
                             "bottom": margin("bottom"),
                             "fill": (list(masks.OUTPAINT_FILLS), {"default": "edge", "tooltip":
                                      "What the new margins hold before sampling: the photo's edge continued "
                                      "(edge), mirrored (mirror) or mid-grey. DInG ignores it unless feathering "
                                      "is on; other inpainting samplers start from it."}),
                             "feathering": ("INT", {"default": 0, "min": 0, "max": 512, "tooltip":
                                            "0 (default): the margins are simply unknown. Above 0: over this many "
                                            "pixels outside the photo the mask rises gradually, so the filled "
                                            "margin counts as a fading hint (with DInG Inpaint's mask_mode soft) "
                                            "and is blended into the result there; the photo itself is never "
                                            "changed."})}}

    def pad(self, image, left, top, right, bottom, fill, feathering):
        image = check_image(image)
        for name, value in (("left", left), ("top", top), ("right", right), ("bottom", bottom)):
            if value < 0:
                raise ValueError(f"{name}: must be 0 or more, got {value}")
        if left + top + right + bottom == 0:
            raise ValueError("left, top, right, bottom: all margins are 0, so there is nothing to outpaint; "
                             "give at least one side a margin")
        padded, hole = masks.outpaint_padding(image.to(torch.float32), left, top, right, bottom, fill, feathering)
        return (padded, hole)
