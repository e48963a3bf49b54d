"""A linear surrogate of a VAE decoder's Jacobian, fitted from finite differences (docs/ding_restore.md §2).

    L v = pixel_shuffle(conv(v, K), f)  +  Σᵢ uᵢ ⟨dzᵢ, v⟩

K maps the k×k latent cells around each cell to that cell's f×f pixels (one kernel per image, the same at
every cell); it is the least-squares fit of probes (Dec(z + hδ) − Dec(z))/h ≈ J δ for random δ, with earlier
probes down-weighted as the point moves. The rank-one terms are Broyden's secant updates along the steps the
sampler actually took, L ← L + (Δp − L Δz) Δzᵀ/‖Δz‖², so that L reproduces what the decoder did along them.
L and Lᵀ are exact adjoints of each other, and the fit is exact for a decoder that is linear and local
(pixel_shuffle of a per-cell map within k×k cells).
"""
import torch
import torch.nn.functional as F

KERNEL_SIZE = 3
FORGETTING = 0.5     # weight of the earlier probes at each refit
RIDGE = 1e-3         # Tikhonov weight, relative to the mean diagonal of the probes' Gram matrix


class LocalLinearDecoder:
    def __init__(self, channels: int, factor: int, kernel_size: int = KERNEL_SIZE):
        self.channels, self.factor, self.kernel_size = channels, factor, kernel_size
        self.kernel = None          # [B, 3·f², C·k²] per batch item, float64
        self.gram = self.cross = None
        self.secants = []           # (u [B, 3, H, W], dz [B, C, h, w]) Broyden terms since the last fit

    def probes_needed(self, latent_shape) -> int:
        """Random probes per fit for twice as many equations per output as unknowns (1 from 72 latent cells
        on, i.e. at any real image size)."""
        features = self.channels * self.kernel_size ** 2
        cells = latent_shape[-2] * latent_shape[-1]
        return max(1, -(-2 * features // cells))

    def fit(self, directions: torch.Tensor, differences: torch.Tensor):
        """directions [P, B, C, h, w], differences [P, B, 3, H, W] ≈ J·direction; refits K and drops the
        secant terms."""
        count, batch = directions.shape[:2]
        features = F.unfold(directions.double().flatten(0, 1), self.kernel_size, padding=self.kernel_size // 2)
        features = features.view(count, batch, features.shape[-2], -1)                           # [P, B, F, N]
        targets = F.pixel_unshuffle(differences.double().flatten(0, 1), self.factor).flatten(2)
        targets = targets.view(count, batch, targets.shape[-2], -1)                              # [P, B, O, N]
        gram = torch.einsum("pbin,pbjn->bij", features, features)
        cross = torch.einsum("pbon,pbjn->boj", targets, features)
        if self.gram is not None:
            gram, cross = gram + FORGETTING * self.gram, cross + FORGETTING * self.cross
        self.gram, self.cross = gram, cross
        ridge = RIDGE * gram.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None]
        identity = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        self.kernel = torch.linalg.solve(gram + ridge * identity, cross.transpose(-1, -2)).transpose(-1, -2)
        self.secants = []

    def secant_update(self, latent_step: torch.Tensor, pixel_step: torch.Tensor):
        """Broyden's good update along one step: afterwards L Δz = Δp exactly."""
        latent_step, pixel_step = latent_step.double(), pixel_step.double()
        squared = latent_step.flatten(1).square().sum(1).clamp_min(1e-30)
        miss = pixel_step - self.apply(latent_step)
        self.secants.append((miss / squared.view(-1, 1, 1, 1), latent_step))

    def _grouped_weights(self):
        """K as one grouped convolution's weights: [B·3f², C, k, k]."""
        k = self.kernel_size
        return self.kernel.reshape(-1, self.channels, k, k)

    def apply(self, latent: torch.Tensor) -> torch.Tensor:
        """L v: latents [B, C, h, w] → pixels [B, 3, f·h, f·w], float64."""
        pixels = self._kernel_apply(latent)
        for direction, step in self.secants:
            pixels = pixels + direction * _inner(step, latent)
        return pixels

    def adjoint(self, pixels: torch.Tensor) -> torch.Tensor:
        """Lᵀ p: pixels [B, 3, H, W] → latents [B, C, H/f, W/f], float64."""
        latent = self._kernel_adjoint(pixels)
        for direction, step in self.secants:
            latent = latent + step * _inner(direction, pixels)
        return latent

    def _kernel_apply(self, latent):
        """The kernel's part of L v, without the secant terms."""
        batch, _, height, width = latent.shape
        cells = F.conv2d(latent.double().reshape(1, -1, height, width), self._grouped_weights(),
                         padding=self.kernel_size // 2, groups=batch)
        return F.pixel_shuffle(cells.view(batch, -1, height, width), self.factor)

    def _kernel_adjoint(self, pixels):
        """The kernel's part of Lᵀ p, without the secant terms."""
        cells = F.pixel_unshuffle(pixels.double(), self.factor)
        batch, _, height, width = cells.shape
        return F.conv_transpose2d(cells.reshape(1, -1, height, width), self._grouped_weights(),
                                  padding=self.kernel_size // 2, groups=batch).view(batch, self.channels, height, width)


def _inner(a, b):
    return (a * b.double()).flatten(1).sum(1).view(-1, 1, 1, 1)
