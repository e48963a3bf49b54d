"""Import stub: the names spandrel's LaMa and RestoreFormer architectures import at import time (ComfyUI's
upscale-model nodes import spandrel); calling them is an error."""
import enum


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _missing(*args, **kwargs):
    raise NotImplementedError("torchvision is a stub here (PyPI's torchvision does not load beside the CPU torch)")


rotate = normalize = _missing
