"""Decoupled refinement: DCDP (Li et al., arXiv 2403.06054; spec: docs/dcdp.md B, C.1–C.2).

K outer iterations of
  (i)  data consistency in pixel space: argmin_x ½‖A(x) − y‖² + ½μ‖x − v‖², warm-started at the last
       purified image v, by momentum gradient steps (the paper's solver; the step is normalised by
       ‖A‖², so it depends on neither the image size nor the operator's scale, B.4) or, for linear A,
       exactly (solvers/linear_gaussian.proximal_solve: closed form or conjugate gradients); both stop
       at a relative-residual tolerance and record how far they got in a SolveStats;
  (ii) diffusion purification: encode, noise to σ_k (a strength on the model's own schedule that
       decays linearly over the iterations), denoise by one Tweedie step or a short deterministic
       ODE (n Euler/DDIM steps; 1–4 for LCM / Turbo / Lightning / consistency models), decode.
No gradient ever flows through the denoiser or the autoencoder.
"""
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from . import linear_gaussian, pixel_fit
from .linear_gaussian import SolveStats
from .parameterisation import Parameterisation, as_scalar

PURIFICATIONS = ("tweedie", "ode")
DC_SOLVERS = ("auto", "cg", "momentum")  # auto: the exact solve (cg) for linear operators, momentum otherwise


@dataclass
class DCDPOptions:
    """Defaults: the nodes' defaults, chosen by benchmarks/sweep_spin_dcdp.py."""
    outer_iterations: int = 10         # K
    inner_steps: int = 100             # τ: most gradient steps, or CG iterations
    tolerance: float = 1e-3            # stop a fit once ‖∇‖ ≤ tolerance·‖∇ at its start‖
    step_size: float = 0.1             # η / ‖A‖² on the summed loss (heavy-ball momentum 0.9)
    proximal_weight: float = 0.1       # μ: pull toward the last purified image (0 only when σ_y = 0)
    start_strength: float = 0.1        # share of the schedule re-noised at the first purification
    end_strength: float = 0.0          # … and at the last (0 = the schedule's smallest σ)
    purification: str = "ode"          # "tweedie" (1 call) or "ode" (purification_steps calls)
    purification_steps: int = 4
    dc_solver: str = "auto"
    skip_final_purification: bool = False  # the authors' advice when σ_y = 0
    first_guess: bool = True           # start from A's y-based guess instead of mid-grey
    encoder_correction: bool = True    # latent + Enc(fit) − Enc(Dec latent) instead of Enc(fit): one more encode


def check_options(options: DCDPOptions):
    """Reject settings the algorithm has no meaning for (the names are the nodes' widget names)."""
    if options.purification not in PURIFICATIONS:
        raise ValueError(f"purification must be one of {PURIFICATIONS}, got {options.purification!r}")
    if options.dc_solver not in DC_SOLVERS:
        raise ValueError(f"dc_solver must be one of {DC_SOLVERS}, got {options.dc_solver!r}")
    if options.tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {options.tolerance:g}")
    if options.end_strength > options.start_strength:
        raise ValueError(f"end_strength ({options.end_strength:g}) is above start_strength "
                         f"({options.start_strength:g}): the purification noise decays from start_strength to end_strength over the rounds; set "
                         "end_strength <= start_strength (equal values purify every round at one level)")
    return options


def operator_norm_squared(operator, shape, generator: torch.Generator, iterations: int = 20) -> float:
    """‖A‖² = largest eigenvalue of AᵀA by power iteration (1 for nonlinear operators)."""
    if not operator.linear:
        return 1.0
    vector = torch.randn(shape, generator=generator, dtype=torch.float32)
    value = 1.0
    for _ in range(iterations):
        if float(vector.norm()) == 0:
            raise ValueError(f"operator: {operator.describe()} maps every image to zero (e.g. an inpainting mask "
                             "with no known pixel): there is nothing to fit")
        vector = vector / vector.norm()
        image = operator.adjoint(operator.forward(vector))
        value = float((vector * image).sum())
        vector = image
    if not math.isfinite(value):
        raise ValueError(f"operator: could not estimate the norm of {operator.describe()} (got {value})")
    return max(value, 1e-12)


def uses_exact_fit(operator, options: DCDPOptions) -> bool:
    return (pixel_fit.uses_exact_solve(operator, options.dc_solver, "dc_solver")
            or pixel_fit.uses_projection(operator, options.dc_solver))


def data_consistency(start, y, operator, options: DCDPOptions, lipschitz: float,
                     check_interrupt: Optional[Callable[[], None]] = None, stats: Optional[SolveStats] = None):
    """Step (i) from `start` (which is also the proximal anchor)."""
    stats = SolveStats() if stats is None else stats
    if pixel_fit.uses_projection(operator, options.dc_solver):
        stats.add(0, 0.0)
        return operator.project(start, y)
    if uses_exact_fit(operator, options):
        return linear_gaussian.proximal_solve(operator, start, y, options.proximal_weight, stats,
                                              tolerance=options.tolerance, max_iterations=options.inner_steps,
                                              check_interrupt=check_interrupt)
    step = options.step_size / (lipschitz + options.proximal_weight)
    return pixel_fit.fit_to_measurement(start, y, operator, options.inner_steps,
                                        lambda params: torch.optim.SGD(params, lr=step, momentum=0.9),
                                        0.5, 0.5 * options.proximal_weight, check_interrupt,
                                        tolerance=options.tolerance, stats=stats)


def purification_levels(sigmas, options: DCDPOptions):
    """Index into `sigmas` (descending, ending in 0) of σ_k for k = 1..K: the strength decays
    linearly from start_strength to end_strength; strength s sits at index round((1 − s)·n)."""
    steps = len(sigmas) - 1
    last = steps - 1  # the smallest nonzero σ
    if options.outer_iterations == 1:
        strengths = [options.start_strength]
    else:
        strengths = [options.start_strength + (options.end_strength - options.start_strength) * k
                     / (options.outer_iterations - 1) for k in range(options.outer_iterations)]
    return [min(last, max(0, round((1.0 - s) * steps))) for s in strengths]


def purify(denoise, latent, sigmas, index, param: Parameterisation, options: DCDPOptions, noise,
           check_interrupt: Optional[Callable[[], None]] = None):
    """Step (ii): noise to sigmas[index], then Tweedie or a short deterministic ODE down to 0.
    check_interrupt runs before every network call."""
    def network(state, level):
        if check_interrupt is not None:
            check_interrupt()
        return denoise(state, level)

    sigma = as_scalar(sigmas[index])
    x = param.add_noise(latent, noise, sigma)
    if options.purification == "tweedie":
        return network(x, sigma)
    steps = len(sigmas) - 1
    path = torch.linspace(index, steps, options.purification_steps + 1).round().long().unique().tolist()
    for current, following in zip(path[:-1], path[1:]):
        sigma, sigma_next = as_scalar(sigmas[current]), as_scalar(sigmas[following])
        x0 = network(x, sigma)
        x = x0 if sigma_next <= 0 else param.add_noise(x0, param.noise_estimate(x, x0, sigma), sigma_next)
    return x


def sample_dcdp(denoise: Callable, decode: Callable, encode: Callable, operator, measurement: torch.Tensor,
                sigmas, param: Parameterisation, generator: torch.Generator, options: DCDPOptions,
                callback: Optional[Callable] = None,
                check_interrupt: Optional[Callable[[], None]] = None, stats: Optional[SolveStats] = None):
    """Run K rounds; returns (pixels [B, C, H, W] in [−1, 1], the last purified latent or None).
    stats (if given) receives every fit's iterations and relative residual."""
    check_options(options)
    uses_exact_fit(operator, options)  # a bad solver/operator pair fails before any network call
    pixel_shape = operator.input_shape(measurement.shape)
    lipschitz = operator_norm_squared(operator, pixel_shape, generator)
    if options.first_guess:
        image = operator.initial_guess(measurement).float()
    else:
        image = torch.zeros(pixel_shape, dtype=torch.float32, device=measurement.device)
    latent = purified = None   # the last purified latent and its decoding
    levels = purification_levels(sigmas, options)
    for k, index in enumerate(levels):
        image = data_consistency(image, measurement, operator, options, lipschitz, check_interrupt, stats)
        if k == len(levels) - 1 and options.skip_final_purification:
            latent = None
            break
        clean = encode(image.clamp(-1, 1))
        if options.encoder_correction and latent is not None:  # the round-trip error Enc(Dec z) − z cancels
            clean = latent + clean - encode(purified)
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32).to(clean.device, clean.dtype)
        latent = purify(denoise, clean, sigmas, index, param, options, noise, check_interrupt)
        image = purified = decode(latent).clamp(-1, 1)
        if callback is not None:
            callback(k, latent, latent, as_scalar(sigmas[index]))
    return image.clamp(-1, 1), latent


def network_calls(options: DCDPOptions, sigmas) -> int:
    rounds = options.outer_iterations - (1 if options.skip_final_purification else 0)
    if options.purification == "tweedie":
        return rounds
    steps = len(sigmas) - 1
    total = 0
    for index in purification_levels(sigmas, options)[:rounds]:
        total += len(torch.linspace(index, steps, options.purification_steps + 1).round().long().unique()) - 1
    return total
