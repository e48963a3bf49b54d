"""Spin: sparse scheduled guidance (Shtanchaev et al., arXiv 2603.07860), as reconstructed in
docs/spin.md A.2 / C.3 (no official code exists: every choice below is a knob).

1. Warm start at σ*: x = a·E(u0) + b·ε with u0 a y-based image; then N_w times
   z0 = D(x, σ*) → decode → pixel fit to y → encode → re-noise with fresh noise.
2. A deterministic (DDIM / Euler) reverse sampler from σ* whose x̂0 is corrected the same way, and
   the state re-noised, only at a sparse set of guided steps.

The pixel fit minimises ‖A(x) − y‖²/(2σ_y²) + ‖x − u‖²/(2ρ²) from x = u: exactly for a linear A (the
proximal solve of solvers/linear_gaussian.py: closed form or conjugate gradients), by Adam with a
convergence check otherwise; gradients flow through A only, never through the denoiser or the
autoencoder. How far each fit got (relative residual) is recorded in a SolveStats.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from . import linear_gaussian, pixel_fit
from .linear_gaussian import SolveStats
from .parameterisation import Parameterisation, as_scalar

MIN_DATA_STD = 1e-3  # σ_y floor in the fit's weighting, so σ_y = 0 stays finite
FIT_SOLVERS = ("auto", "cg", "adam")  # auto: the exact solve for linear operators, Adam for the others


@dataclass
class SpinOptions:
    """Defaults: chosen by benchmarks/sweep_spin_dcdp.py (the nodes' defaults are the same; warm_start_strength,
    the node's t*, 0.45)."""
    warm_start_iterations: int = 0      # N_w
    guided_steps: int = 8               # |G|, spread over the guidance window
    guidance_window: tuple = (0.0, 0.6)  # fraction of the reverse steps where guidance may happen
    fit_solver: str = "auto"            # one of FIT_SOLVERS
    fit_steps: int = 50                 # most CG iterations or Adam steps of one fit
    fit_lr: float = 0.05                # Adam step on [−1, 1] images
    fit_tolerance: float = 1e-3         # stop once ‖∇‖ ≤ tolerance·‖∇ at the start‖
    proximity: float = 0.5              # ρ = proximity · σ̃/√(1+σ̃²); 0 switches the proximity term off
    obs_std: float = 0.0                # σ_y of the measurement, in [−1, 1] units
    stochastic_renoise: bool = False    # fresh noise at guided steps; else reuse the DDIM noise estimate
    encoder_correction: bool = True     # x̂0 + Enc(fit) − Enc(Dec x̂0) instead of Enc(fit): one more encode


def guided_step_indices(n_steps: int, options: SpinOptions) -> set:
    """Which of the n reverse steps get the correction: evenly spread over the window, never the last."""
    if options.guided_steps <= 0 or n_steps <= 1:
        return set()
    first = int(round(options.guidance_window[0] * n_steps))
    last = min(n_steps - 2, int(round(options.guidance_window[1] * n_steps)))
    if last < first:
        return set()
    count = min(options.guided_steps, last - first + 1)
    positions = torch.linspace(first, last, count).round().long().tolist()
    return set(positions)


def check_options(options: SpinOptions) -> SpinOptions:
    """Reject settings the algorithm has no meaning for (the names are the nodes' widget names)."""
    if options.fit_solver not in FIT_SOLVERS:
        raise ValueError(f"fit_solver must be one of {FIT_SOLVERS}, got {options.fit_solver!r}")
    return options


def uses_exact_fit(operator, options: SpinOptions) -> bool:
    return (pixel_fit.uses_exact_solve(operator, options.fit_solver, "fit_solver")
            or pixel_fit.uses_projection(operator, options.fit_solver))


def fit_to_measurement(start: torch.Tensor, y: torch.Tensor, operator, options: SpinOptions, proximity_std: float,
                       check_interrupt: Optional[Callable[[], None]] = None,
                       stats: Optional[SolveStats] = None) -> torch.Tensor:
    """argmin_x ‖A(x) − y‖²/(2σ_y²) + ‖x − start‖²/(2ρ²) from `start`, then clamp to [−1, 1]."""
    stats = SolveStats() if stats is None else stats
    data_std = max(options.obs_std, MIN_DATA_STD)
    use_proximity = options.proximity > 0 and proximity_std > 0
    if pixel_fit.uses_projection(operator, options.fit_solver):
        fitted = operator.project(start, y)
        stats.add(0, 0.0)
    elif uses_exact_fit(operator, options):
        # × 2σ_y²: ‖A x − y‖² + (σ_y/ρ)²‖x − start‖²
        weight = (data_std / proximity_std) ** 2 if use_proximity else 0.0
        fitted = linear_gaussian.proximal_solve(operator, start, y, weight, stats, tolerance=options.fit_tolerance,
                                                max_iterations=options.fit_steps, check_interrupt=check_interrupt)
    else:
        prox_weight = 0.5 / proximity_std ** 2 if use_proximity else 0.0
        fitted = pixel_fit.fit_to_measurement(start, y, operator, options.fit_steps,
                                              lambda params: torch.optim.Adam(params, lr=options.fit_lr),
                                              0.5 / data_std ** 2, prox_weight, check_interrupt,
                                              tolerance=options.fit_tolerance, stats=stats)
    return fitted.clamp(-1, 1)


def sample_spin(denoise: Callable, decode: Callable, encode: Callable, operator, measurement: torch.Tensor,
                sigmas, param: Parameterisation, generator: torch.Generator, options: SpinOptions,
                callback: Optional[Callable] = None,
                check_interrupt: Optional[Callable[[], None]] = None,
                warm_start_callback: Optional[Callable] = None,
                stats: Optional[SolveStats] = None) -> torch.Tensor:
    """Run Spin over `sigmas` = [σ*, …, 0] (already cut at the warm-start level).

    callback(i, x, x̂0, σ) after reverse step i; warm_start_callback(r, x, x̂0, σ*) after warm-start round r;
    stats (if given) receives every fit's iterations and relative residual.

    denoise(x, σ) → x̂0 in latent space; decode(z) → pixels [B, C, H, W] in [−1, 1]; encode inverse;
    measurement y in the operator's output space. Returns the final latent x̂0.
    """
    check_options(options)
    uses_exact_fit(operator, options)  # a bad solver/operator pair fails before any network call
    sigma_values = [as_scalar(s) for s in sigmas]
    sigma_start = sigma_values[0]

    def noise_like(z):
        return torch.randn(z.shape, generator=generator, dtype=torch.float32).to(z.device, z.dtype)

    def correct(x0, sigma):
        ve_sigma = param.ve_sigma(sigma) if param.signal_scale(sigma) > 0 else float("inf")
        rho = options.proximity * (ve_sigma / (1 + ve_sigma ** 2) ** 0.5 if ve_sigma != float("inf") else 1.0)
        pixels = decode(x0)
        fitted = encode(fit_to_measurement(pixels, measurement, operator, options, rho, check_interrupt, stats))
        if options.encoder_correction:  # the encoder's round-trip error Enc(Dec x̂0) − x̂0 cancels
            return x0 + fitted - encode(pixels)
        return fitted

    latent = encode(operator.initial_guess(measurement))
    x = param.add_noise(latent, noise_like(latent), sigma_start)
    for r in range(options.warm_start_iterations):                  # phase 1: sample p_{σ*}(x | y)
        if check_interrupt is not None:
            check_interrupt()
        x0 = correct(denoise(x, sigma_start), sigma_start)
        x = param.add_noise(x0, noise_like(x0), sigma_start)
        if warm_start_callback is not None:
            warm_start_callback(r, x, x0, sigma_start)

    guided = guided_step_indices(len(sigma_values) - 1, options)
    for i, (sigma, sigma_next) in enumerate(zip(sigma_values[:-1], sigma_values[1:])):  # phase 2
        if check_interrupt is not None:
            check_interrupt()
        x0 = denoise(x, sigma)
        noise_estimate = param.noise_estimate(x, x0, sigma)
        if i in guided:
            x0 = correct(x0, sigma)
            if options.stochastic_renoise:
                noise_estimate = noise_like(x0)
        x = x0 if sigma_next <= 0 else param.add_noise(x0, noise_estimate, sigma_next)
        if callback is not None:
            callback(i, x, x0, sigma)
    return x


def network_calls(sigmas, options: SpinOptions) -> int:
    return options.warm_start_iterations + len(sigmas) - 1
