"""Distances between sample sets, used to compare a sampler with an exact posterior."""
import torch


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator,
                       n_projections: int = 256) -> torch.Tensor:
    """Sliced 2-Wasserstein distance between the empirical laws of a [N, d] and b [M, d].

    Each random direction reduces both sets to 1-D, where W2 compares sorted samples (quantiles
    at min(N, M) levels when the sizes differ); the result is the root mean over directions.
    """
    a, b = a.reshape(len(a), -1).to(torch.float64), b.reshape(len(b), -1).to(torch.float64)
    directions = torch.randn(a.shape[1], n_projections, generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    proj_a, proj_b = (a @ directions).sort(0).values, (b @ directions).sort(0).values
    if len(a) != len(b):
        levels = (torch.arange(min(len(a), len(b)), dtype=torch.float64) + 0.5) / min(len(a), len(b))
        proj_a, proj_b = torch.quantile(proj_a, levels, dim=0), torch.quantile(proj_b, levels, dim=0)
    return ((proj_a - proj_b) ** 2).mean().sqrt()
