"""JPEG compression as a differentiable measurement operator: y = JPEG_q(x), what a baseline JPEG encoder
and decoder at quality q do to an image, written in torch so that Spin and DCDP can fit it by gradients.

The steps are libjpeg's (what Pillow uses): RGB → YCbCr (JFIF, full range), level shift by 128, chroma
averaged over 2×2 pixels (4:2:0), the image extended to whole 16×16 blocks by repeating its last row and
column, an orthonormal 8×8 DCT per block, each coefficient rounded to a multiple of its quantisation step
(the standard tables of ITU T.81 Annex K scaled by quality as libjpeg's jpeg_set_quality does), the
inverse DCT, chroma brought back to full size by libjpeg's "fancy" (triangle) up-sampling, which is a
bilinear interpolation, and YCbCr → RGB clipped to [0, 255]. What it leaves out: the integer arithmetic
of libjpeg's fixed-point DCT and colour conversion, so outputs differ from Pillow's by under one grey level
on average (44–52 dB apart), more where a coefficient sits on a rounding border.

Spin's and DCDP's `auto` fits use `JPEG.project` in place of gradient steps. For the others: rounding has
no useful derivative; the forward pass always rounds, and `rounding` chooses what the gradient sees:
`straight-through` (as if nothing were rounded) or `smooth` (the derivative of round(u) + (u − round(u))³,
which vanishes at the integers and is 3/4 half-way between them).
"""
import math

import torch
import torch.nn.functional as F

from .operators import Operator, require_rgb

ROUNDINGS = ("straight-through", "smooth")
BLOCK = 8

LUMA_TABLE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float64)
CHROMA_TABLE = torch.full((8, 8), 99.0, dtype=torch.float64)
CHROMA_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                                    dtype=torch.float64)

# JFIF's YCbCr (ITU-R BT.601, full range), on [0, 255] values; Cb and Cr offset by 128
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
                            dtype=torch.float64)


def quantisation_table(base: torch.Tensor, quality: int) -> torch.Tensor:
    """libjpeg's jpeg_set_quality with force_baseline: the table scaled by 5000/q (q < 50) or 200 − 2q
    percent, each step rounded and kept within 1..255."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return torch.clamp(torch.floor((base * scale + 50) / 100), 1, 255)


def dct_matrix() -> torch.Tensor:
    """The orthonormal 8-point DCT-II, D[k, n] = c_k cos((2n + 1)kπ/16): D x D ᵀ is JPEG's 2-D DCT."""
    k = torch.arange(BLOCK, dtype=torch.float64)[:, None]
    n = torch.arange(BLOCK, dtype=torch.float64)[None, :]
    matrix = torch.cos((2 * n + 1) * k * math.pi / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    matrix[0] /= math.sqrt(2)
    return matrix


def straight_through_round(u: torch.Tensor) -> torch.Tensor:
    return u + (torch.round(u) - u).detach()


def smooth_round(u: torch.Tensor) -> torch.Tensor:
    """round(u) in value; the gradient of round(u) + (u − round(u))³."""
    nearest = torch.round(u).detach()
    cubic = (u - nearest) ** 3
    return nearest + cubic - cubic.detach()


def _blocks(channel: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] (H, W multiples of 8) → [B, C, H/8, W/8, 8, 8]."""
    b, c, h, w = channel.shape
    return channel.reshape(b, c, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(3, 4)


def _unblocks(blocks: torch.Tensor) -> torch.Tensor:
    b, c, rows, cols = blocks.shape[:4]
    return blocks.transpose(3, 4).reshape(b, c, rows * BLOCK, cols * BLOCK)


def _bilinear_up_matrix(size: int) -> torch.Tensor:
    """The [2·size, size] matrix of the ×2 bilinear up-sampling (align_corners=False) along one axis."""
    return F.interpolate(torch.eye(size, dtype=torch.float64)[None], scale_factor=2, mode="linear",
                         align_corners=False)[0].T


class JPEG(Operator):
    """y = JPEG_q(x) on [−1, 1] RGB images (nonlinear: Spin and DCDP only).

    `project(x, y)` moves every DCT coefficient of x into the quantisation cell that y's coefficient occupies
    (the nearest such image in the YCbCr coefficients, in closed form), alternating with clipping to [−1, 1]:
    an image near x whose JPEG is y."""
    linear = False
    projects = True

    def __init__(self, quality: int = 10, chroma_subsampling: bool = True, rounding: str = "straight-through"):
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality must be 1..100, got {quality}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"JPEG rounding must be one of {ROUNDINGS}, got {rounding!r}")
        self.quality, self.chroma_subsampling, self.rounding = int(quality), bool(chroma_subsampling), rounding
        self.luma_table = quantisation_table(LUMA_TABLE, self.quality)
        self.chroma_table = quantisation_table(CHROMA_TABLE, self.quality)
        self.name = f"JPEG quality {self.quality}" + ("" if self.chroma_subsampling else " (no chroma subsampling)")

    def _round(self, u):
        return straight_through_round(u) if self.rounding == "straight-through" else smooth_round(u)

    def _padded_ycbcr(self, x):
        """[−1, 1] RGB → YCbCr on [0, 255] values, Cb and Cr centred on 0, extended to whole blocks."""
        height, width = x.shape[-2:]
        unit = 2 * BLOCK if self.chroma_subsampling else BLOCK  # libjpeg's MCU
        pixels = F.pad((x + 1) * 127.5, (0, -width % unit, 0, -height % unit), mode="replicate")
        return torch.einsum("ij,bjhw->bihw", RGB_TO_YCBCR.to(x.device, x.dtype), pixels)

    def _to_rgb(self, ycbcr, height, width):
        rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(RGB_TO_YCBCR).to(ycbcr.device, ycbcr.dtype), ycbcr)
        return rgb[..., :height, :width]

    def _coefficients(self, channels):
        """The 8×8-block DCT coefficients [B, C, H/8, W/8, 8, 8] of [B, C, H, W] channels."""
        dct = dct_matrix().to(channels.device, channels.dtype)
        return dct @ _blocks(channels) @ dct.T

    def _pixels(self, coefficients):
        dct = dct_matrix().to(coefficients.device, coefficients.dtype)
        return _unblocks(dct.T @ coefficients @ dct)

    def _quantise(self, channels: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """DCT per 8×8 block, each coefficient rounded to a multiple of its step, inverse DCT."""
        steps = table.to(channels.device, channels.dtype)
        return self._pixels(self._round(self._coefficients(channels) / steps) * steps)

    def forward(self, x):
        self.check_fits(x.shape, "image")
        ycbcr = self._padded_ycbcr(x)
        luma = self._quantise(ycbcr[:, :1] - 128, self.luma_table) + 128  # the level shift (Cb, Cr are centred)
        chroma = ycbcr[:, 1:]
        if self.chroma_subsampling:
            chroma = F.avg_pool2d(chroma, 2)
        chroma = self._quantise(chroma, self.chroma_table)
        if self.chroma_subsampling:
            chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
        return self._to_rgb(torch.cat([luma, chroma], 1), *x.shape[-2:]).clamp(0, 255) / 127.5 - 1

    def project(self, x, y, max_rounds: int = 100):
        """An image in [−1, 1] whose JPEG is y (up to y's own 8-bit rounding), near x: alternate projections
        onto y's quantisation cells and onto [−1, 1] (pixels the cells push past black or white change the
        JPEG once clipped), until no pixel needs clipping."""
        cells = self._measured_cells(y.double())
        x = x.double()
        for _ in range(max_rounds):
            projected = self._project_cells(x, cells)
            x = projected.clamp(-1, 1)
            if torch.equal(x, projected):
                break
        return x.to(y.dtype)

    def _measured_cells(self, y):
        """The quantisation cell (integer k of k·q) of every coefficient of y. Its chroma, up-sampled by the
        decoder, is brought back to the coded half size by the up-sampling's pseudo-inverse."""
        ycbcr = self._padded_ycbcr(y)
        chroma = ycbcr[:, 1:]
        if self.chroma_subsampling:
            rows, cols = (torch.linalg.pinv(_bilinear_up_matrix(n // 2)).to(y) for n in chroma.shape[-2:])
            chroma = rows @ chroma @ cols.T
        return (torch.round(self._coefficients(ycbcr[:, :1] - 128) / self.luma_table.to(y)),
                torch.round(self._coefficients(chroma) / self.chroma_table.to(y)))

    def _project_cells(self, x, cells):
        """x with each DCT coefficient moved into its measured cell k·q ± q/2 (a hair inside, so that rounding
        lands on k): each change made in the coefficients, brought back to pixels."""
        ycbcr = self._padded_ycbcr(x)
        chroma = F.avg_pool2d(ycbcr[:, 1:], 2) if self.chroma_subsampling else ycbcr[:, 1:]
        luma_change = self._cell_change(ycbcr[:, :1] - 128, cells[0], self.luma_table)
        chroma_change = self._cell_change(chroma, cells[1], self.chroma_table)
        if self.chroma_subsampling:  # the pseudo-inverse of the 2×2 average: the same change on each pixel
            chroma_change = F.interpolate(chroma_change, scale_factor=2, mode="nearest")
        return x + self._to_rgb(torch.cat([luma_change, chroma_change], 1), *x.shape[-2:]) / 127.5

    def _cell_change(self, channels, cells, table):
        steps, coefficients = table.to(channels), self._coefficients(channels)
        half = 0.499 * steps
        moved = torch.minimum(torch.maximum(coefficients, cells * steps - half), cells * steps + half)
        return self._pixels(moved - coefficients)

    def check_fits(self, image_shape, socket):
        require_rgb(image_shape, socket, "JPEG")

    def initial_guess(self, y):
        return y.clamp(-1, 1)  # the decoded JPEG itself
