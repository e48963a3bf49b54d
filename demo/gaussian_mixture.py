"""A Gaussian-mixture prior whose denoiser and posteriors are exact: the pack's oracle.

Component k has weight w_k, mean μ_k and a full covariance Σ_k = U_k diag(λ_k) U_kᵀ + v_k·I with
orthonormal U_k (d×r). r = d with v_k = 0 is a general covariance; r ≪ d is the low-rank-plus-
isotropic form fitted to data (PCA). Everything here runs in float64.
"""
import math
from dataclasses import dataclass

import torch

from ..solvers.parameterisation import Parameterisation


@dataclass
class GaussianMixture:
    weights: torch.Tensor    # [K]
    means: torch.Tensor      # [K, d]
    basis: torch.Tensor      # [K, d, r], orthonormal columns
    basis_var: torch.Tensor  # [K, r], variance along the basis on top of iso_var
    iso_var: torch.Tensor    # [K]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def covariances(self) -> torch.Tensor:
        scaled = self.basis * self.basis_var[:, None, :]
        eye = torch.eye(self.dim, dtype=self.means.dtype)
        return scaled @ self.basis.transpose(1, 2) + self.iso_var[:, None, None] * eye

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        rank = self.basis.shape[2]
        along_basis = torch.randn(n, rank, generator=generator, dtype=torch.float64)
        isotropic = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        basis, basis_std = self.basis[components], self.basis_var[components].sqrt()
        return (self.means[components]
                + (basis @ (basis_std * along_basis)[:, :, None])[:, :, 0]
                + self.iso_var[components].sqrt()[:, None] * isotropic)

    def denoise_ve(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """E[x0 | x0 + σn = x] for x of shape [N, d]."""
        x = x.to(torch.float64)
        log_resp, weighted_inverse = self._noisy_marginals(x, sigma)
        resp = torch.softmax(log_resp, dim=1)                        # [N, K]
        per_component = x[:, None, :] - sigma * sigma * weighted_inverse  # x − σ²(Σ + σ²I)⁻¹(x − μ)
        return (resp[:, :, None] * per_component).sum(1)

    def denoise(self, x: torch.Tensor, sigma: float, param: Parameterisation) -> torch.Tensor:
        """E[x0 | a(σ)x0 + b(σ)n = x]: divide by a to reach VE coordinates (σ̃ = b/a)."""
        signal = param.signal_scale(sigma)
        if signal <= 1e-12:  # pure noise: the posterior mean is the prior mean
            return self.mean().expand(x.shape[0], -1).clone()
        return self.denoise_ve(x.to(torch.float64) / signal, param.noise_scale(sigma) / signal)

    def _noisy_marginals(self, x, sigma):
        """log w_k N(x; μ_k, Σ_k + σ²I) and (Σ_k + σ²I)⁻¹(x − μ_k), through the eigenbasis (Woodbury)."""
        floor_var = self.iso_var + sigma * sigma                      # [K]
        residual = x[:, None, :] - self.means[None]                  # [N, K, d]
        coords = torch.einsum("nkd,kdr->nkr", residual, self.basis)  # [N, K, r]
        shrink = 1.0 / floor_var[:, None] - 1.0 / (self.basis_var + floor_var[:, None])  # [K, r]
        inverse = (residual / floor_var[None, :, None]
                   - torch.einsum("kdr,nkr->nkd", self.basis, shrink[None] * coords))
        mahalanobis = (residual * inverse).sum(-1)
        rank = self.basis.shape[2]
        log_det = (torch.log(self.basis_var + floor_var[:, None]).sum(1)
                   + (self.dim - rank) * torch.log(floor_var))
        log_resp = (torch.log(self.weights)[None] - 0.5 * mahalanobis - 0.5 * log_det[None]
                    - 0.5 * self.dim * math.log(2 * math.pi))
        return log_resp, inverse

    def condition(self, operator: torch.Tensor, measurement: torch.Tensor, noise_std: float) -> "GaussianMixture":
        """The exact posterior p(x0 | y) for y = A x0 + noise_std·n, A of shape [m, d]: again a mixture."""
        A = operator.to(torch.float64)
        y = measurement.to(torch.float64).reshape(-1)
        covs = self.covariances()
        noise_cov = noise_std * noise_std * torch.eye(A.shape[0], dtype=torch.float64)
        log_weights, means, post_covs = [], [], []
        for k in range(len(self.weights)):
            predicted_cov = A @ covs[k] @ A.T + noise_cov
            chol = torch.linalg.cholesky(predicted_cov)
            residual = y - A @ self.means[k]
            gain = torch.cholesky_solve(A @ covs[k], chol).T          # Σ Aᵀ S⁻¹
            means.append(self.means[k] + gain @ residual)
            post_cov = covs[k] - gain @ A @ covs[k]
            post_covs.append(0.5 * (post_cov + post_cov.T))
            whitened = torch.cholesky_solve(residual[:, None], chol)[:, 0]
            log_weights.append(torch.log(self.weights[k]) - 0.5 * residual @ whitened
                               - torch.log(torch.diagonal(chol)).sum())
        eigvals, eigvecs = torch.linalg.eigh(torch.stack(post_covs))
        return GaussianMixture(torch.softmax(torch.stack(log_weights), 0), torch.stack(means),
                               eigvecs, eigvals.clamp_min(0.0), torch.zeros(len(self.weights), dtype=torch.float64))


def random_mixture(dim: int, n_components: int, generator: torch.Generator, spread: float = 1.5,
                   scale: float = 0.6) -> GaussianMixture:
    """Well-separated components with random full (non-diagonal) covariances."""
    means = spread * torch.randn(n_components, dim, generator=generator, dtype=torch.float64)
    factors = torch.randn(n_components, dim, dim, generator=generator, dtype=torch.float64) / math.sqrt(dim)
    covs = scale * scale * (factors @ factors.transpose(1, 2) + 0.05 * torch.eye(dim, dtype=torch.float64))
    eigvals, eigvecs = torch.linalg.eigh(covs)
    weights = torch.softmax(0.5 * torch.randn(n_components, generator=generator, dtype=torch.float64), 0)
    return GaussianMixture(weights, means, eigvecs, eigvals, torch.zeros(n_components, dtype=torch.float64))


def fit_lowrank_mixture(data: torch.Tensor, n_components: int, rank: int, generator: torch.Generator,
                        iterations: int = 50, min_var: float = 1e-4,
                        residual_correlation: torch.Tensor = None) -> GaussianMixture:
    """k-means clusters, then per cluster a rank-r PCA covariance plus the mean residual variance.

    The residual is isotropic (v·I) by default. With `residual_correlation` C ([d, d], unit diagonal,
    positive definite; e.g. a Gaussian kernel over pixel positions) it is v·C instead: the same
    per-coordinate variance, but spatially correlated, so samples carry smooth variation rather than
    white speckle. The covariance is then full rank: stored as its eigenbasis (r = d) plus `min_var`·I.
    """
    if residual_correlation is not None:
        return _fit_correlated_residual(data, n_components, rank, generator, iterations, min_var,
                                        residual_correlation)
    data = data.to(torch.float64)
    labels = _kmeans(data, n_components, generator, iterations)
    weights, means, bases, basis_vars, iso_vars = [], [], [], [], []
    for k in range(n_components):
        members = data[labels == k]
        principal, eigvals, residual_var = _cluster_pca(members, rank, min_var)
        kept = principal.shape[1]
        basis = torch.zeros(data.shape[1], rank, dtype=torch.float64)
        basis_var = torch.zeros(rank, dtype=torch.float64)
        basis[:, :kept] = principal
        basis_var[:kept] = (eigvals - residual_var).clamp_min(0.0)
        weights.append(len(members) / len(data))
        means.append(members.mean(0))
        bases.append(basis)
        basis_vars.append(basis_var)
        iso_vars.append(residual_var)
    return GaussianMixture(torch.tensor(weights, dtype=torch.float64), torch.stack(means), torch.stack(bases),
                           torch.stack(basis_vars), torch.tensor(iso_vars, dtype=torch.float64))


def _fit_correlated_residual(data, n_components, rank, generator, iterations, min_var, correlation):
    data = data.to(torch.float64)
    correlation = correlation.to(torch.float64)
    labels = _kmeans(data, n_components, generator, iterations)
    weights, means, bases, basis_vars = [], [], [], []
    for k in range(n_components):
        members = data[labels == k]
        principal, eigvals, residual_var = _cluster_pca(members, rank, min_var)
        cov = (principal * (eigvals - residual_var).clamp_min(0.0)) @ principal.T + residual_var * correlation
        eigvals_full, eigvecs = torch.linalg.eigh(0.5 * (cov + cov.T))
        weights.append(len(members) / len(data))
        means.append(members.mean(0))
        bases.append(eigvecs)
        basis_vars.append((eigvals_full - min_var).clamp_min(0.0))
    return GaussianMixture(torch.tensor(weights, dtype=torch.float64), torch.stack(means), torch.stack(bases),
                           torch.stack(basis_vars), torch.full((n_components,), min_var, dtype=torch.float64))


def _cluster_pca(members, rank, min_var):
    """The cluster's top-`rank` principal directions [d, kept], their variances, and the mean variance
    left over per remaining dimension (at least min_var)."""
    centred = members - members.mean(0)
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    eigvals = singular ** 2 / max(len(members) - 1, 1)
    kept = min(rank, len(eigvals))
    residual_var = max((eigvals[kept:].sum() / (members.shape[1] - kept)).item(), min_var)
    return vh[:kept].T, eigvals[:kept], residual_var


def gaussian_kernel_correlation(height: int, width: int, length: float) -> torch.Tensor:
    """exp(−|p − q|² / (2ℓ²)) between the pixel positions of an height×width grid: [h·w, h·w]."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    positions = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1)
    return torch.exp(-torch.cdist(positions, positions) ** 2 / (2 * length * length))


def _kmeans(data, n_clusters, generator, iterations):
    # k-means++ seeding, then Lloyd iterations; an emptied cluster keeps its previous centre
    centres = data[torch.randint(len(data), (1,), generator=generator)]
    while len(centres) < n_clusters:
        distance = torch.cdist(data, centres).min(1).values ** 2
        pick = torch.multinomial(distance / distance.sum(), 1, generator=generator)
        centres = torch.cat([centres, data[pick]])
    for _ in range(iterations):
        labels = torch.cdist(data, centres).argmin(1)
        for k in range(n_clusters):
            if (labels == k).sum() > 1:
                centres[k] = data[labels == k].mean(0)
    labels = torch.cdist(data, centres).argmin(1)
    if torch.bincount(labels, minlength=n_clusters).min() < 2:
        raise ValueError("a cluster has fewer than 2 members; use fewer components")
    return labels
