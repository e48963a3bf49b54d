"""A prior with a known density over the testbed autoencoder's latents: a Gaussian mixture fitted to the
latents of photo patches the autoencoder never saw, wrapped as a real ComfyUI MODEL (EPS, v or flow) whose
denoiser is exact.

The patches are size×size crops (stride 8, and their mirror images) of the two held-out photos, each
encoded on its own to its [4, size/8, size/8] posterior mode: chelsea, and coffee left of column 400.
Coffee right of column 400 is kept back for truths the prior never saw (`held_out_truths`). The mixture
(k-means clusters, each its cluster's sample covariance, the smallest eigenvalue as an isotropic floor) is
demo.gaussian_mixture's; the MODEL is demo.oracle_model's. Import this module through the pack
(it needs the booted engine): importlib.import_module(f"{engine.pack.__name__}.testbed.latent_prior").
"""
from functools import lru_cache
from pathlib import Path

import torch

from ..demo.gaussian_mixture import GaussianMixture, fit_lowrank_mixture
from . import photos
from .vae import LATENT_CHANNELS, DOWNSCALE, load_testbed_vae, posterior_mode

SIZES = (16, 32)          # pixel sides with a fitted prior (2×2 and 4×4 latents)
STRIDE = 8
TRUTH_COLUMN = 400        # coffee columns ≥ this are never fitted
N_COMPONENTS = {16: 6, 32: 8}
FLOOR_VAR = 1e-2          # isotropic floor of each component's covariance (latent units²; latent std ≈ 2.3)


@lru_cache(maxsize=1)
def testbed_vae():
    """The shipped autoencoder (one comfy.sd.VAE per process)."""
    return load_testbed_vae()


def latent_shape(size: int):
    return (LATENT_CHANNELS, size // DOWNSCALE, size // DOWNSCALE)


def _crops(image: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    patches = image.unfold(1, size, stride).unfold(2, size, stride)          # [3, nh, nw, size, size]
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, 3, size, size)


def fitting_patches(size: int) -> torch.Tensor:
    """The pixel patches [N, 3, size, size] in [0, 1] the prior is fitted to (mirror images included)."""
    chelsea = photos.photo("chelsea")
    coffee = photos.photo("coffee")[:, :, :TRUTH_COLUMN]
    crops = torch.cat([_crops(chelsea, size, STRIDE), _crops(coffee, size, STRIDE)])
    return torch.cat([crops, crops.flip(-1)])


def held_out_truths(size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random size×size patches [count, 3, size, size] in [0, 1] of coffee right of column 400:
    photos neither the autoencoder nor the prior saw."""
    region = photos.photo("coffee")[:, :, TRUTH_COLUMN:]
    tops = torch.randint(region.shape[1] - size + 1, (count,), generator=generator)
    lefts = torch.randint(region.shape[2] - size + 1, (count,), generator=generator)
    return torch.stack([region[:, t:t + size, l:l + size] for t, l in zip(tops.tolist(), lefts.tolist())])


def encode_patches(patches: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Posterior-mode latents [N, 4, h, w] of each patch encoded on its own."""
    vae = testbed_vae()
    return torch.cat([posterior_mode(vae, part) for part in patches.split(chunk)])


MIXTURE_FILE = Path(__file__).resolve().parent / "latent_prior.safetensors"
FIELDS = ("weights", "means", "basis", "basis_var", "iso_var")


@lru_cache(maxsize=None)
def latent_mixture(size: int = 16) -> GaussianMixture:
    """The prior over flattened latents [C·h·w] of size×size images, as shipped in latent_prior.safetensors
    (fit_latent_mixture's output for the shipped autoencoder; write_mixtures refits both sizes)."""
    if size not in SIZES:
        raise ValueError(f"the testbed prior is fitted for image sides {SIZES}, not {size}")
    from safetensors.torch import load_file
    stored = load_file(str(MIXTURE_FILE))
    return GaussianMixture(*(stored[f"{size}.{name}"] for name in FIELDS))


def write_mixtures(path=MIXTURE_FILE):
    """Fit the prior for every size and store it (float64)."""
    from safetensors.torch import save_file
    tensors = {}
    for size in SIZES:
        mixture = fit_latent_mixture(size)
        tensors.update({f"{size}.{name}": getattr(mixture, name).contiguous() for name in FIELDS})
    save_file(tensors, str(path))
    latent_mixture.cache_clear()


def fit_latent_mixture(size: int) -> GaussianMixture:
    """Fit the prior over flattened latents [C·h·w] of size×size images (deterministic: fixed seeds)."""
    if size not in SIZES:
        raise ValueError(f"the testbed prior is fitted for image sides {SIZES}, not {size}")
    latents = encode_patches(fitting_patches(size)).reshape(-1, LATENT_CHANNELS * (size // DOWNSCALE) ** 2)
    dim = latents.shape[1]
    # rank d − 1: each component's covariance is its sample covariance with the smallest eigenvalue
    # (at least FLOOR_VAR) as the isotropic floor
    return fit_lowrank_mixture(latents.to(torch.float64), N_COMPONENTS[size], dim - 1,
                               torch.Generator().manual_seed(0), min_var=FLOOR_VAR)


def log_density(mixture: GaussianMixture, z: torch.Tensor):
    """log p(z) and ∇ log p(z) for z [N, d] (float64), in closed form: with r_k the responsibilities,
    ∇ log p = −Σ_k r_k Σ_k⁻¹ (z − μ_k)."""
    log_joint, inverse = mixture._noisy_marginals(z.to(torch.float64), 0.0)   # [N, K], [N, K, d]
    log_p = torch.logsumexp(log_joint, dim=1)
    resp = torch.softmax(log_joint, dim=1)
    return log_p, -(resp[:, :, None] * inverse).sum(1)


def prior_model(prediction: str = "eps", size: int = 16, shift: float = 3.0):
    """The prior as a ComfyUI MODEL (ModelPatcher) over latents [4, size/8, size/8]: prediction "eps",
    "v_prediction" or "flow"; ComfyUI's denoised output is the exact E[z0 | z_σ]."""
    from ..demo.oracle_model import mixture_model
    return mixture_model(latent_mixture(size), latent_shape(size), prediction, shift)
