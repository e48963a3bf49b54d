"""Measurement-operator sockets, a degradation simulator and a noise-level estimator.

Noise levels on these nodes are in IMAGE units (pixel values 0..1); the solvers work on [−1, 1]
images, where the same noise is twice as large.
"""
import torch

from ..solvers import jpeg, operators
from .checks import check_image
from .vae_bridge import image_to_pixels, pixels_to_image

OPERATOR = "INVERSE_OPERATOR"
CATEGORY = "image/inverse"


class _OperatorNode:
    CATEGORY = CATEGORY
    RETURN_TYPES = (OPERATOR,)
    RETURN_NAMES = ("operator",)
    OUTPUT_TOOLTIPS = ("The measurement operator: connect to a restore node's or sampler's operator input, and to "
                       "Degrade Image to simulate a measurement.",)
    FUNCTION = "build"


class InpaintOperator(_OperatorNode):
    DESCRIPTION = ("Inpainting: the photo is the clean image with holes. The MASK is white (1) where pixels are "
                   "missing; soft values weight the pixels.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK", {"tooltip": "White (1) where pixels are missing and must be generated; "
                                                         "soft values weight the pixels."})}}

    def build(self, mask):
        hole = mask[None] if mask.ndim == 2 else mask
        if not torch.isfinite(hole).all() or hole.min() < 0 or hole.max() > 1:
            raise ValueError("mask: values must be finite and lie in [0, 1]")
        unobserved = ~(hole < 1).flatten(1).any(1)
        if unobserved.any():
            index = int(unobserved.nonzero()[0, 0])
            raise ValueError(f"mask: image {index + 1} of {hole.shape[0]} has no known pixel (the mask is white "
                             "everywhere), so there is nothing to fit; leave the known region black")
        return (operators.Inpainting((1.0 - hole.to(torch.float32))[:, None]),)


class GaussianBlurOperator(_OperatorNode):
    DESCRIPTION = ("Deblurring: the photo is the clean image blurred by a Gaussian kernel (normalised; the photo "
                   "keeps the image's size, with mid-grey assumed beyond the border).")
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"kernel_size": ("INT", {"default": 9, "min": 3, "max": 101, "step": 2, "tooltip":
                                             "Side of the square kernel in pixels (odd); about 6 x std covers the blur."}),
                             "std": ("FLOAT", {"default": 2.0, "min": 0.1, "max": 30.0, "step": 0.1, "tooltip":
                                     "Standard deviation of the Gaussian in pixels: how strong the blur is."})}}

    def build(self, kernel_size, std):
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be odd, got {kernel_size}")
        return (operators.gaussian_blur(kernel_size, std),)


class MotionBlurOperator(_OperatorNode):
    DESCRIPTION = "Camera shake: a random kernel drawn from the seed, or a kernel given as an image (bright = weight)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"kernel_size": ("INT", {"default": 15, "min": 3, "max": 101, "step": 2, "tooltip":
                                             "Side of the random shake kernel in pixels (odd); ignored with kernel_image."}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "tooltip":
                                      "Which random shake trajectory to draw."})},
                "optional": {"kernel_image": ("IMAGE", {"tooltip": "A measured blur kernel as one image with odd "
                                                                   "sides (bright = weight, scaled to sum 1; the "
                                                                   "grey level of its colour channels)."})}}

    def build(self, kernel_size, seed, kernel_image=None):
        if kernel_image is not None:
            check_image(kernel_image, "kernel_image", rgb=False)
            if kernel_image.shape[1] % 2 == 0 or kernel_image.shape[2] % 2 == 0:
                raise ValueError(f"kernel_image: sides must be odd, got {kernel_image.shape[2]}x{kernel_image.shape[1]}")
            try:
                return (operators.kernel_from_image(kernel_image),)
            except ValueError as error:
                raise ValueError(f"kernel_image: {error}") from None
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be odd, got {kernel_size}")
        return (operators.motion_blur(kernel_size, torch.Generator().manual_seed(seed)),)


class DownsampleOperator(_OperatorNode):
    DESCRIPTION = "Super-resolution: the photo is the clean image shrunk by a whole-number factor."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"factor": ("INT", {"default": 4, "min": 2, "max": 16, "tooltip":
                                        "Upscaling factor of the restoration: the measurement is this many times "
                                        "smaller per side."}),
                             "mode": (list(operators.DOWNSAMPLE_MODES), {"default": "bicubic", "tooltip":
                                      "How the low-resolution image was made: bicubic (antialiased, like most "
                                      "resizers) or box (averages of factor x factor blocks)."})}}

    def build(self, factor, mode):
        return (operators.Downsample(factor, mode),)


class DenoiseOperator(_OperatorNode):
    DESCRIPTION = "Denoising: the photo is the clean image itself, plus its noise."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def build(self):
        return (operators.Identity(),)


class HDRClipOperator(_OperatorNode):
    DESCRIPTION = ("A nonlinear sensor: the photo is the image with its contrast raised by scale (around "
                   "mid-grey) and clipped, so highlights and shadows are lost (Spin and DCDP only; DInG Restore "
                   "refuses it).")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"scale": ("FLOAT", {"default": 2.0, "min": 1.0, "max": 8.0, "step": 0.1, "tooltip":
                                       "Contrast gain before clipping: 1 loses nothing, larger = more highlights "
                                       "and shadows lost."})}}

    def build(self, scale):
        return (operators.ClipHDR(scale),)


class JPEGOperator(_OperatorNode):
    DESCRIPTION = ("JPEG artefacts: the photo is the clean image saved as a JPEG at this quality (blocks, ringing, "
                   "smeared colour), modelled as libjpeg / Pillow do it. Nonlinear: Spin and DCDP only.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"quality": ("INT", {"default": 10, "min": 1, "max": 100, "tooltip":
                                         "The JPEG quality the photo was saved at (1..100, as in image editors); "
                                         "guess low for heavy blocking: 5-20."}),
                             "chroma_subsampling": ("BOOLEAN", {"default": True, "tooltip":
                                                    "Whether colour was stored at half resolution (most JPEGs: "
                                                    "cameras, the web, Pillow's default)."}),
                             "rounding": (list(jpeg.ROUNDINGS), {"default": "straight-through", "tooltip":
                                          "Only for step-by-step fits (Spin's adam, DCDP's momentum, or JPEG inside "
                                          "Combine; auto fits a JPEG exactly without it): how they see through "
                                          "JPEG's rounding. straight-through (default): as if it were not there; "
                                          "smooth: a softened rounding."})}}

    def build(self, quality, chroma_subsampling, rounding):
        return (jpeg.JPEG(quality, chroma_subsampling, rounding),)


class GreyscaleOperator(_OperatorNode):
    DESCRIPTION = ("Colourisation: the photo is the clean colour image turned black and white (its grey level, "
                   "a weighted mix of red, green and blue). Restoring brings back colours that fit the grey.")

    @classmethod
    def INPUT_TYPES(cls):
        weight = {"min": 0.0, "max": 1.0, "step": 0.001}
        return {"required": {"weights": (list(operators.LUMINANCE_WEIGHTS) + ["custom"], {"tooltip":
                                         "How the black-and-white photo mixed the colours: Rec. 601 is what most "
                                         "editors and old conversions use; custom takes the three weights below."}),
                             "red": ("FLOAT", dict(weight, default=0.299, tooltip="Weight of red (custom only); "
                                                   "the three are scaled to sum 1.")),
                             "green": ("FLOAT", dict(weight, default=0.587, tooltip="Weight of green (custom only).")),
                             "blue": ("FLOAT", dict(weight, default=0.114, tooltip="Weight of blue (custom only)."))}}

    def build(self, weights, red, green, blue):
        if weights == "custom":
            try:
                return (operators.Greyscale((red, green, blue)),)
            except ValueError as error:
                raise ValueError(f"red, green, blue: {error}") from None
        if weights not in operators.LUMINANCE_WEIGHTS:
            choices = list(operators.LUMINANCE_WEIGHTS) + ["custom"]
            raise ValueError(f"weights: must be one of {choices}, got {weights!r}")
        return (operators.Greyscale(operators.LUMINANCE_WEIGHTS[weights]),)


class ComposeOperators(_OperatorNode):
    DESCRIPTION = ("Several degradations in a row, e.g. blurred, then shrunk, then black and white: the photo is "
                   "first applied to the clean image, then second, then third.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": (OPERATOR, {"tooltip": "The degradation that happened first (to the clean "
                                                             "image)."}),
                             "second": (OPERATOR, {"tooltip": "The degradation applied to the result of first."})},
                "optional": {"third": (OPERATOR, {"tooltip": "Optional: applied to the result of second."})}}

    def build(self, first, second, third=None):
        return (operators.Composed([stage for stage in (first, second, third) if stage is not None]),)


def measurement_image(operator, measurement):
    """A measurement y of `operator` (pixels in [−1, 1]) as the IMAGE a restore node takes: RGB even where the
    operator measures one grey channel."""
    return pixels_to_image(operator.measurement_as_pixels(measurement))


class DegradeImage:
    DESCRIPTION = "Simulate a measurement: apply the operator to a clean IMAGE and add Gaussian noise (seeded)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("measurement",)
    OUTPUT_TOOLTIPS = ("The simulated degraded image: connect to a restore node's measurement input.",)
    FUNCTION = "degrade"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {"tooltip": "A clean image to degrade (bypass this node to "
                                                            "restore a real degraded photo)."}),
                             "operator": (OPERATOR, {"tooltip": "The degradation to apply."}),
                             "noise_std": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.5, "step": 0.001,
                                                     "tooltip": "Strength (standard deviation) of the random noise "
                                                                "added after the operator, in pixel units (0..1); "
                                                                "0 = none."}),
                             "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "tooltip":
                                      "Seed of the added noise."})}}

    def degrade(self, image, operator, noise_std, seed):
        pixels = image_to_pixels(check_image(image), "cpu")
        operator.check_fits(pixels.shape, "image")
        measured = operator.simulate(pixels, 2.0 * noise_std, torch.Generator().manual_seed(seed))
        return (measurement_image(operator, measured),)


class EstimateNoise:
    DESCRIPTION = ("Estimate how noisy a real degraded photo is (noise level as a standard deviation in pixel "
                   "units, 0..1, by the usual wavelet estimate, as scikit-image's estimate_sigma), to set "
                   "measurement_noise without guessing.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("FLOAT", "STRING")
    RETURN_NAMES = ("noise_std", "info")
    OUTPUT_TOOLTIPS = ("Estimated noise std in pixel units (0..1), averaged over the batch: connect to "
                       "measurement_noise.", "The estimate per image, as text (connect Preview Any to read it).")
    FUNCTION = "estimate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {"tooltip": "The degraded photo whose noise level to measure."})}}

    def estimate(self, image):
        image = check_image(image, rgb=False)  # grey images are fine here
        if image.shape[1] < 2 or image.shape[2] < 2:
            raise ValueError(f"image: {image.shape[2]}x{image.shape[1]} px is too small to estimate the noise level: "
                             "it needs at least 2x2 px (64x64 or more for a reliable value)")
        pixels = image_to_pixels(image, "cpu")
        per_image = operators.estimate_noise_std(pixels) / 2.0
        value = float(per_image.mean())
        return (value, "noise std (0..1 units): " + ", ".join(f"{v:.4f}" for v in per_image.tolist()))


OPERATOR_NODES = {
    "InverseOperatorInpaint": (InpaintOperator, "Operator: Inpainting mask"),
    "InverseOperatorGaussianBlur": (GaussianBlurOperator, "Operator: Gaussian blur"),
    "InverseOperatorMotionBlur": (MotionBlurOperator, "Operator: Motion blur"),
    "InverseOperatorDownsample": (DownsampleOperator, "Operator: Downsample (super-resolution)"),
    "InverseOperatorDenoise": (DenoiseOperator, "Operator: Denoise (identity)"),
    "InverseOperatorHDRClip": (HDRClipOperator, "Operator: HDR clip (nonlinear)"),
    "InverseOperatorGreyscale": (GreyscaleOperator, "Operator: Black and white (colourisation)"),
    "InverseOperatorJPEG": (JPEGOperator, "Operator: JPEG compression (nonlinear)"),
    "InverseOperatorCompose": (ComposeOperators, "Operator: Combine (one after another)"),
    "InverseDegradeImage": (DegradeImage, "Degrade Image (simulate measurement)"),
    "InverseEstimateNoise": (EstimateNoise, "Estimate Noise Level"),
}
