"""Compare Images: results side by side in one labelled grid, enlarged for the screen."""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from . import checks, comfy_compat

SLOTS = 8
LABEL_HEIGHT = 28
GAP = 4


class CompareImages:
    DESCRIPTION = ("Puts up to 8 images side by side in one labelled grid (one column per image, one row per image "
                   "of a batch), each enlarged without smoothing so small results are easy to see, and shows it in "
                   "the node. Connect the input, the results and the original; label them in order, separated by "
                   "commas.")
    CATEGORY = "image/inverse"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("comparison",)
    OUTPUT_TOOLTIPS = ("One image: the labelled grid, also shown in the node (connect Save Image to keep it).",)
    FUNCTION = "compare"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "labels": ("STRING", {"default": "", "tooltip":
                       "One label per connected image, in the order of the image inputs, separated by commas."}),
            "scale": ("INT", {"default": 8, "min": 1, "max": 64, "tooltip":
                      "How many times to enlarge the largest image (every column is shown at that size; "
                      "pixels stay sharp squares)."}),
        }, "optional": {f"image_{k}": ("IMAGE", {"tooltip": f"Column {k}."}) for k in range(1, SLOTS + 1)}}

    def compare(self, labels, scale, **images):
        columns = [(name, checks.check_image(image, name)) for name, image in sorted(
            images.items(), key=lambda item: int(item[0].split("_")[1])) if image is not None]
        if not columns:
            raise ValueError("image_1: connect at least one image to compare")
        names = [label.strip() for label in labels.split(",")]
        rows = max(image.shape[0] for _, image in columns)
        for name, image in columns:
            if image.shape[0] not in (1, rows):
                raise ValueError(f"{name}: batch of {image.shape[0]} images beside a batch of {rows}; give every "
                                 "input the same batch size (or a single image)")
        tile_h = max(image.shape[1] for _, image in columns) * scale
        tile_w = max(image.shape[2] for _, image in columns) * scale
        tiles = [enlarged(image, tile_h, tile_w).expand(rows, -1, -1, -1) for _, image in columns]
        grid = torch.ones(rows * (tile_h + GAP) - GAP, len(tiles) * (tile_w + GAP) - GAP, 3)
        for c, tile in enumerate(tiles):
            left = c * (tile_w + GAP)
            for r in range(rows):
                top = r * (tile_h + GAP)
                grid[top:top + tile_h, left:left + tile_w] = tile[r]
        header = label_band([names[c] if c < len(names) else name for c, (name, _) in enumerate(columns)],
                            tile_w, grid.shape[1])
        comparison = torch.cat([header, grid], 0)[None]
        return {"ui": comfy_compat.preview_images(comparison), "result": (comparison,)}


def enlarged(image, height, width):
    """Nearest-neighbour enlargement to fit height × width, aspect kept, centred on white: [B, h, w, 3]."""
    rgb = image[..., :3].to(torch.float32).cpu()
    factor = min(height / rgb.shape[1], width / rgb.shape[2])
    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[2] * factor)))
    scaled = F.interpolate(rgb.movedim(-1, 1), size=size, mode="nearest-exact").movedim(1, -1)
    tile = torch.ones(rgb.shape[0], height, width, 3)
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    tile[:, top:top + size[0], left:left + size[1]] = scaled.clamp(0, 1)
    return tile


def label_band(labels, column_width, width):
    """A white band with each label centred over its column: [LABEL_HEIGHT, width, 3]."""
    band = Image.new("RGB", (width, LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(band)
    font = ImageFont.load_default(size=16)
    for c, label in enumerate(labels):
        text = fitted(draw, label, font, column_width - 4)
        text_width = draw.textlength(text, font=font)
        draw.text((c * (column_width + GAP) + (column_width - text_width) / 2, 5), text, fill="black", font=font)
    return torch.from_numpy(np.asarray(band, dtype=np.float32) / 255.0)


def fitted(draw, text, font, width):
    """The label, shortened with an ellipsis until it fits the column."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
