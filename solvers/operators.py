"""Measurement operators y = A(x) + σ_y·n on pixel images x [B, C, H, W] in [−1, 1].

Every operator is differentiable (solvers take gradients through A only), knows its adjoint Aᵀ
when linear, gives a y-based first guess of x (initial_guess) and simulates measurements with a
seeded generator. Kernels come from kornia.
"""
import copy
import math
from typing import Optional

import kornia
import torch
import torch.nn.functional as F

DOWNSAMPLE_MODES = ("bicubic", "box")


class Operator:
    linear = True
    shift_invariant = False  # A Aᵀ commutes with shifts of the measurement grid (away from the border)
    projects = False  # has project(x, y): the restorers' fits take it in place of gradient steps
    name = "operator"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Aᵀy. Linear operators without a closed form use the vector-Jacobian product of A,
        which for a linear map is its adjoint exactly."""
        if not self.linear:
            raise TypeError(f"{self.name} is not linear and has no adjoint")
        # plain autograd on ordinary tensors: ComfyUI runs under inference mode, and torch.func.vjp
        # there returned NaN with torch 2.11 (seen on the GPU machine)
        with torch.inference_mode(False), torch.enable_grad():
            probe = torch.zeros(self.input_shape(y.shape), dtype=y.dtype, device=y.device, requires_grad=True)
            image = self.autograd_ready().forward(probe)
            (gradient,) = torch.autograd.grad(image, probe, grad_outputs=y.clone())
        return gradient

    def input_shape(self, measurement_shape):
        """The image shape [B, C, H, W] whose measurement has `measurement_shape`."""
        return tuple(measurement_shape)

    def check_fits(self, image_shape, socket: str):
        """Raise a clear error, naming the socket, when this operator cannot apply to images of this shape."""

    def gram_diagonal(self, measurement_like: torch.Tensor) -> Optional[torch.Tensor]:
        """A Aᵀ as a tensor broadcastable to the measurement where it is diagonal (solved in closed form),
        else None."""
        return None

    def mask_form(self, measurement: torch.Tensor):
        """(known values, their weight m) when A is a per-pixel weight, y = m ⊙ x: DInG's closed-form step
        (ding.MaskObservation); else None."""
        return None

    def measurement_shape(self, image_shape):
        return tuple(image_shape)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """An image near x whose measurement is y, in closed form, where `projects` says there is one."""
        raise NotImplementedError(f"{self.name} has no closed-form projection")

    def measurement_from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """The measurement y from a measurement IMAGE's RGB pixels [B, 3, h, w] (IMAGEs always carry three
        channels): the pixels themselves unless the operator measures fewer channels."""
        return pixels

    def measurement_as_pixels(self, y: torch.Tensor) -> torch.Tensor:
        """y as RGB pixels to show as an IMAGE: the inverse of measurement_from_pixels on y's channels."""
        return y

    def initial_guess(self, y: torch.Tensor) -> torch.Tensor:
        """An image consistent with y to start from: Aᵀy by default."""
        return self.adjoint(y).clamp(-1, 1) if self.linear else y.clamp(-1, 1)

    def simulate(self, x: torch.Tensor, noise_std: float, generator: torch.Generator) -> torch.Tensor:
        y = self.forward(x)
        noise = torch.randn(y.shape, generator=generator, dtype=torch.float32).to(y.device, y.dtype)
        return y + noise_std * noise

    def describe(self) -> str:
        return self.name

    def hidden_pixels(self) -> Optional[torch.Tensor]:
        """The pixels it hides from the measurement as a hole mask [B or 1, 1, H, W] (1 = hidden), for an
        inpainting model's mask input; None for operators that hide no region."""
        return None

    def autograd_ready(self) -> "Operator":
        """A copy whose tensors are ordinary ones: tensors made under torch.inference_mode (as in a
        ComfyUI run) cannot enter an autograd graph, even as constants."""
        ready = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(ready, name, value.clone())
        return ready


class Identity(Operator):
    """Denoising: y = x + noise."""
    name = "denoise"

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y

    def gram_diagonal(self, measurement_like):
        return torch.ones_like(measurement_like)

    def mask_form(self, measurement):
        return measurement, torch.ones_like(measurement)


class Inpainting(Operator):
    """y = m ⊙ x with m ∈ [0, 1] the known-pixel weight (soft masks allowed), m [B or 1, 1, H, W]."""
    name = "inpaint"

    def __init__(self, observed_mask: torch.Tensor):
        self.observed_mask = observed_mask

    def forward(self, x):
        return self.observed_mask.to(x.device, x.dtype) * x

    def adjoint(self, y):
        return self.observed_mask.to(y.device, y.dtype) * y

    def check_fits(self, image_shape, socket):
        mask_shape = tuple(self.observed_mask.shape)
        if mask_shape[-2:] != tuple(image_shape[-2:]) or mask_shape[0] not in (1, image_shape[0]):
            raise ValueError(f"{socket}: size {image_shape[-1]}x{image_shape[-2]} (batch {image_shape[0]}) does not "
                             f"match the inpainting mask {mask_shape[-1]}x{mask_shape[-2]} (batch {mask_shape[0]})")

    def gram_diagonal(self, measurement_like):
        mask = self.observed_mask.to(measurement_like.device, measurement_like.dtype)
        return (mask * mask).expand_as(measurement_like)

    def mask_form(self, measurement):
        mask = self.observed_mask.to(measurement.device, measurement.dtype)
        known = torch.where(mask > 0, measurement / mask.clamp_min(1e-12), torch.zeros_like(measurement))
        return known, mask

    def describe(self):
        return f"inpaint ({float((self.observed_mask < 1).float().mean()) * 100:.0f}% of pixels unknown)"

    def hidden_pixels(self):
        return 1.0 - self.observed_mask


class Convolution(Operator):
    """Blur: per-channel convolution with a normalised kernel, zero ('same') padding, so that the
    adjoint is the transposed convolution exactly."""
    shift_invariant = True

    def __init__(self, kernel: torch.Tensor, name: str):
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"blur kernel must be 2-D with odd sides, got {tuple(kernel.shape)}")
        self.kernel = normalised_kernel(kernel)
        self.name = name

    def _weight(self, x):
        return self.kernel.to(x.device, x.dtype)[None, None].expand(x.shape[1], 1, -1, -1)

    def _padding(self):
        return (self.kernel.shape[0] // 2, self.kernel.shape[1] // 2)

    def forward(self, x):
        return F.conv2d(x, self._weight(x), padding=self._padding(), groups=x.shape[1])

    def adjoint(self, y):
        return F.conv_transpose2d(y, self._weight(y), padding=self._padding(), groups=y.shape[1])

    def initial_guess(self, y):
        return y.clamp(-1, 1)  # the blurred image itself is the natural start

    def describe(self):
        return f"{self.name} ({self.kernel.shape[0]}x{self.kernel.shape[1]} kernel)"


def gaussian_blur(kernel_size: int, std: float) -> Convolution:
    kernel = kornia.filters.get_gaussian_kernel2d((kernel_size, kernel_size), (std, std))[0]
    return Convolution(kernel, f"gaussian blur std {std:g}")


def motion_blur(kernel_size: int, generator: torch.Generator) -> Convolution:
    """A random camera-shake kernel: a smooth random walk rasterised on the grid (seeded)."""
    steps = 4 * kernel_size
    angles = torch.cumsum(0.3 * torch.randn(steps, generator=generator, dtype=torch.float64), 0)
    angles += 2 * math.pi * torch.rand(1, generator=generator, dtype=torch.float64)
    path = torch.cumsum(torch.stack([angles.cos(), angles.sin()], 1), 0)
    path = path - path.mean(0)
    path = path / max(path.abs().max().item(), 1e-6) * (kernel_size // 2)
    kernel = torch.zeros(kernel_size, kernel_size, dtype=torch.float64)
    centre = kernel_size // 2
    for px, py in path.tolist():  # bilinear splat of every point of the path
        x, y = px + centre, py + centre
        x0, y0 = math.floor(x), math.floor(y)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            xi, yi = x0 + dx, y0 + dy
            if 0 <= xi < kernel_size and 0 <= yi < kernel_size:
                kernel[yi, xi] += (1 - abs(x - xi)) * (1 - abs(y - yi))
    return Convolution(kernel.to(torch.float32), "motion blur")


def normalised_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """The kernel scaled to sum 1 (a blur keeps the image's mean), summed in float64 so that large weights
    cannot overflow the sum. Signed weights are kept (a sharpened lens response is still a linear
    operator); a kernel whose weights cancel out cannot be normalised and is refused."""
    weights = kernel.to(torch.float64)
    total, magnitude = float(weights.sum()), float(weights.abs().sum())
    if not math.isfinite(magnitude) or magnitude == 0:
        raise ValueError("the kernel is empty (all weights 0) or not finite: nothing to blur with")
    if total <= 1e-6 * magnitude:
        raise ValueError(f"the kernel's weights sum to {total:.3g} (their magnitudes to {magnitude:.3g}): a blur "
                         "kernel must have a positive sum to be normalised to 1")
    return (weights / total).to(torch.float32)


def kernel_from_image(image: torch.Tensor) -> Convolution:
    """A blur kernel drawn as one IMAGE [1, h, w, C] (odd sides): its grey level (mean of the colour
    channels), normalised to sum 1; signed values are kept as signed weights."""
    if image.shape[0] != 1:
        raise ValueError(f"a batch of {image.shape[0]} kernel images, but the operator takes one kernel: pick "
                         "one (e.g. with ImageFromBatch)")
    return Convolution(image[0, :, :, :3].to(torch.float64).mean(-1), "blur (kernel image)")


class Downsample(Operator):
    """Super-resolution: y = down_f(x), bicubic with antialiasing or box (mean over f×f blocks)."""
    shift_invariant = True

    def __init__(self, factor: int, mode: str = "bicubic"):
        if mode not in DOWNSAMPLE_MODES:
            raise ValueError(f"downsampling mode must be one of {DOWNSAMPLE_MODES}, got {mode!r}")
        self.factor, self.mode = int(factor), mode
        self.name = f"{mode} downsampling x{factor}"

    def forward(self, x):
        if x.shape[-2] % self.factor or x.shape[-1] % self.factor:
            raise ValueError(f"image size {x.shape[-1]}x{x.shape[-2]} is not a multiple of the factor {self.factor}")
        if self.mode == "box":
            return F.avg_pool2d(x, self.factor)
        size = (x.shape[-2] // self.factor, x.shape[-1] // self.factor)
        return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)

    def adjoint(self, y):
        if self.mode == "box":
            return F.interpolate(y, scale_factor=self.factor, mode="nearest") / self.factor ** 2
        return super().adjoint(y)

    def input_shape(self, measurement_shape):
        b, c, h, w = measurement_shape
        return (b, c, h * self.factor, w * self.factor)

    def check_fits(self, image_shape, socket):
        if image_shape[-2] % self.factor or image_shape[-1] % self.factor:
            raise ValueError(f"{socket}: size {image_shape[-1]}x{image_shape[-2]} is not a multiple of the "
                             f"downsampling factor {self.factor}")

    def gram_diagonal(self, measurement_like):
        if self.mode != "box":
            return None
        # A = mean over f×f blocks, Aᵀ = copy / f²: A Aᵀ = I / f²
        return torch.full_like(measurement_like, 1.0 / self.factor ** 2)

    def measurement_shape(self, image_shape):
        b, c, h, w = image_shape
        return (b, c, h // self.factor, w // self.factor)

    def initial_guess(self, y):
        return F.interpolate(y, scale_factor=self.factor, mode="bicubic", align_corners=False).clamp(-1, 1)


def require_rgb(image_shape, socket: str, operator_name: str):
    """A clear error, naming the socket, where an operator that mixes the colour channels meets another count."""
    channels = image_shape[1]
    if channels != 3:
        raise ValueError(f"{socket}: {channels} channel{'' if channels == 1 else 's'}, but the {operator_name} "
                         "operator takes RGB images")


LUMINANCE_WEIGHTS = {"Rec. 601 (SD video, most photo editors)": (0.299, 0.587, 0.114),
                     "Rec. 709 (HD video, sRGB)": (0.2126, 0.7152, 0.0722),
                     "equal (average of R, G, B)": (1.0, 1.0, 1.0)}


class Greyscale(Operator):
    """Colourisation: y = wᵀx per pixel, the grey level of an RGB image (one channel), with weights w ≥ 0
    scaled to sum 1 so that the grey of [0, 1] pixels maps to the grey of [−1, 1] ones (an affine offset
    otherwise). A Aᵀ = ‖w‖² I, so every exact solve is in closed form."""
    shift_invariant = True  # A Aᵀ is a multiple of the identity

    def __init__(self, weights=LUMINANCE_WEIGHTS["Rec. 601 (SD video, most photo editors)"]):
        values = torch.tensor([float(w) for w in weights], dtype=torch.float64)
        if values.shape != (3,) or not torch.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
            raise ValueError(f"greyscale weights must be three finite, non-negative numbers (red, green, blue) "
                             f"with a positive sum, got {tuple(weights)}")
        self.weights = (values / values.sum()).to(torch.float32)
        self.name = "greyscale (weights " + ", ".join(f"{w:.3g}" for w in self.weights.tolist()) + ")"

    def _weights(self, like):
        return self.weights.to(like.device, like.dtype).view(1, 3, 1, 1)

    def forward(self, x):
        self.check_fits(x.shape, "image")
        return (x * self._weights(x)).sum(1, keepdim=True)

    def adjoint(self, y):
        return y * self._weights(y)

    def input_shape(self, measurement_shape):
        b, _, h, w = measurement_shape
        return (b, 3, h, w)

    def measurement_shape(self, image_shape):
        b, _, h, w = image_shape
        return (b, 1, h, w)

    def check_fits(self, image_shape, socket):
        require_rgb(image_shape, socket, "greyscale")

    def gram_diagonal(self, measurement_like):
        return torch.full_like(measurement_like, float(self.weights.double().square().sum()))

    def measurement_from_pixels(self, pixels):
        # a black-and-white photo has R = G = B = its grey, which any weights summing to 1 give back; a
        # colour photo gives its own grey level under these weights, as the forward model would
        return self.forward(pixels) if pixels.shape[1] == 3 else pixels

    def measurement_as_pixels(self, y):
        return y.expand(-1, 3, -1, -1)

    def initial_guess(self, y):
        return y.expand(-1, 3, -1, -1).clamp(-1, 1)  # the grey image itself: A of it is y exactly


class Composed(Operator):
    """Degradations applied in order, y = A_k(… A_2(A_1(x))) (a blur, then a down-sampling, then …): linear
    when every stage is, with adjoint A_1ᵀ(… A_kᵀ(y)); differentiable always, so Spin and DCDP take any mix."""

    def __init__(self, stages):
        flat = []
        for stage in stages:
            flat.extend(stage.stages if isinstance(stage, Composed) else [stage])
        if not flat:
            raise ValueError("a composed operator needs at least one stage")
        self.stages = flat
        self.linear = all(stage.linear for stage in flat)
        self.shift_invariant = all(stage.shift_invariant for stage in flat)
        self.name = " then ".join(stage.name for stage in flat)

    def forward(self, x):
        for stage in self.stages:
            x = stage.forward(x)
        return x

    def adjoint(self, y):
        if not self.linear:
            raise TypeError(f"{self.name} is not linear and has no adjoint")
        for stage in reversed(self.stages):
            y = stage.adjoint(y)
        return y

    def input_shape(self, measurement_shape):
        for stage in reversed(self.stages):
            measurement_shape = stage.input_shape(measurement_shape)
        return tuple(measurement_shape)

    def measurement_shape(self, image_shape):
        for stage in self.stages:
            image_shape = stage.measurement_shape(image_shape)
        return tuple(image_shape)

    def check_fits(self, image_shape, socket):
        for index, stage in enumerate(self.stages):
            before = " then ".join(earlier.describe() for earlier in self.stages[:index])
            where = f"{socket} after {before}" if before else socket
            stage.check_fits(image_shape, where)
            image_shape = stage.measurement_shape(image_shape)

    def measurement_from_pixels(self, pixels):
        return self.stages[-1].measurement_from_pixels(pixels)

    def measurement_as_pixels(self, y):
        return self.stages[-1].measurement_as_pixels(y)

    def initial_guess(self, y):
        for stage in reversed(self.stages):
            y = stage.initial_guess(y)
        return y

    def describe(self):
        return " then ".join(stage.describe() for stage in self.stages)

    def autograd_ready(self):
        return Composed([stage.autograd_ready() for stage in self.stages])


class ClipHDR(Operator):
    """A nonlinear operator: y = clip(s·x, −1, 1), a sensor that saturates (HDR reconstruction)."""
    linear = False

    def __init__(self, scale: float = 2.0):
        self.scale = float(scale)
        self.name = f"HDR clip x{scale:g}"

    def forward(self, x):
        return (self.scale * x).clamp(-1, 1)

    def initial_guess(self, y):
        return (y / self.scale).clamp(-1, 1)


def estimate_noise_std(image: torch.Tensor) -> torch.Tensor:
    """Noise std per image of [B, C, H, W] by the wavelet MAD rule (Donoho & Johnstone): the median
    absolute finest diagonal Haar coefficient / 0.6745, averaged over channels."""
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    x = image[..., :h, :w].to(torch.float64)
    diagonal = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    mad = diagonal.abs().flatten(2).median(-1).values / 0.6745
    return mad.mean(1)
