"""DInG: decoupled inpainting guidance (Moufad et al., arXiv 2512.18365; spec: docs/ding.md).

Each reverse step σ_t → σ_s is an exact Gaussian posterior transition, per latent coordinate:

1. prior DDIM-η bridge from x̂0 = D(x_t, σ_t):      μ = a_s·x̂0 + √(b_s² − η²)·ε̂_t,  std η     (ding.md §2 (1))
2. an independent proxy z ~ N(μ, η²) and its noise estimate ε̂_z = (z − a_s·D(z, σ_s))/b_s    (§2 (2))
   (frozen_proxy: D(z, σ_s) held at x̂0, one network call per step; ding_restore.md §3)
3. the decoupled observation of x_s on the known set:  ỹ = a_s·y + b_s·ε̂_z,  std τ = a_s·σ_y (§2 (3))
4. the product of the two Gaussians, sampled with fresh noise ξ₂                            (§2 (4))

No gradient of the denoiser is ever taken. Transitions only target σ > 0; a schedule that ends
in 0 finishes with one Tweedie step x̂0 = D(x, σ_last) (§2, pitfall 2), conditioned on y like every
other step (ding_restore.md §1). `sample_posterior` is the one loop; it takes any `Observation`:
`MaskObservation` here, the linear-operator ones in ding_restore.py.
"""
import math
from typing import Callable, Optional, Protocol, Union

import torch

from .parameterisation import Parameterisation, as_scalar

ETA_SCHEDULES = ("fm_square", "fm_sqrt", "ddpm", "ddim", "vp_native")
VARIANTS = ("ding", "frozen_proxy", "delayed")
ONE_CALL_VARIANTS = ("frozen_proxy", "delayed")  # 1 network call per transition instead of 2

# denoise(x, sigma) -> x̂0, in the same coordinates as x
Denoiser = Callable[[torch.Tensor, float], torch.Tensor]


def relative_eta(schedule: str, param: Parameterisation, sigma_t: float, sigma_s: float,
                 eta_scale: float = 1.0) -> float:
    """ρ = η_s / b_s ∈ [0, 1], the bridge noise relative to the target noise level.

    Written through ρ so that every schedule is invariant to rescaling the state (ding.md §5.1),
    which gives VE models the flow-equivalent behaviour instead of η = 0 (pitfall 1).
    """
    if schedule == "fm_square":  # the paper's η = σ(1 − α): ρ = s in flow time
        rho = param.flow_level(sigma_s)
    elif schedule == "fm_sqrt":  # ablation (D): η = σ√(1 − α)
        rho = math.sqrt(param.flow_level(sigma_s))
    elif schedule in ("ddpm", "ddim"):
        ratio = (param.signal_scale(sigma_t) * param.noise_scale(sigma_s)
                 / (param.signal_scale(sigma_s) * param.noise_scale(sigma_t)))
        rho = math.sqrt(max(0.0, 1.0 - ratio * ratio))
        if schedule == "ddim":
            rho *= 0.01
    elif schedule == "vp_native":  # η = σ_vp(1 − α_vp) of the VP process with the same SNR
        rho = 1.0 - 1.0 / math.sqrt(1.0 + param.ve_sigma(sigma_s) ** 2)
    else:
        raise ValueError(f"eta_schedule must be one of {ETA_SCHEDULES}, got {schedule!r}")
    return min(1.0, max(0.0, eta_scale * rho))


def prior_bridge(x: torch.Tensor, x0: torch.Tensor, sigma_t: float, sigma_s: float,
                 param: Parameterisation, rho: float):
    """Mean and std of the DDIM-η prior transition p(x_s | x_t) with x̂0 plugged in (ding.md §5.1)."""
    b_s = param.noise_scale(sigma_s)
    eta = rho * b_s
    eps = param.noise_estimate(x, x0, sigma_t)
    mean = param.signal_scale(sigma_s) * x0 + math.sqrt(max(0.0, b_s * b_s - eta * eta)) * eps
    return mean, eta


def posterior_moments(prior_mean: torch.Tensor, prior_std: float, target: torch.Tensor,
                      target_std: float, observed_mask: torch.Tensor):
    """Per-coordinate product N(x; μ, η²) · N(M·x; M·ỹ, τ²).

    Precision P = 1/η² + M²/τ², mean (μ/η² + M²·ỹ/τ²)/P. Written with the gain
    γ = M²η²/(M²η² + τ²), so that mean = μ + γ(ỹ − μ) and variance = η²(1 − γ): this form
    stays finite for η → 0 and for τ = 0, and uses M² so soft masks are exact (pitfall 8).
    """
    weighted_prior = (observed_mask * observed_mask) * (prior_std * prior_std)
    denominator = weighted_prior + target_std * target_std
    gain = torch.where(denominator > 0, weighted_prior / denominator.clamp_min(1e-30),
                       torch.zeros_like(denominator))
    mean = prior_mean + gain * (target - prior_mean)
    std = prior_std * torch.sqrt((1.0 - gain).clamp_min(0.0))
    return mean, std


def conditioned_steps(sigmas, exact_every: int = 1) -> set:
    """Indices i of the steps σ_i → σ_{i+1} that condition on y. exact_every = 1: all of them. Above 1
    (docs/ding_restore.md §2, sparse steps): the final step into σ = 0, the last transition, and every
    exact_every-th transition counting back from it; the others take the plain prior bridge."""
    if exact_every < 1:
        raise ValueError(f"exact_every must be at least 1, got {exact_every}")
    values = [as_scalar(s) for s in sigmas]
    moves = [i for i in range(len(values) - 1) if values[i + 1] != values[i]]
    transitions = [i for i in moves if values[i + 1] > 0]
    return set(transitions[::-1][::exact_every]) | {i for i in moves if values[i + 1] <= 0}


def network_calls(sigmas, variant: str = "ding", exact_every: int = 1) -> int:
    """Denoiser evaluations a run over `sigmas` costs: 2 per conditioned transition (1 with frozen_proxy and
    delayed), 1 per plain prior transition, + 1 final."""
    sigma_values = [as_scalar(s) for s in sigmas]
    conditioned = conditioned_steps(sigmas, exact_every)
    per_transition = 1 if variant in ONE_CALL_VARIANTS else 2
    calls = 0
    for i, (sigma_t, sigma_s) in enumerate(zip(sigma_values[:-1], sigma_values[1:])):
        if sigma_s == sigma_t:
            continue
        calls += per_transition if sigma_s > 0 and i in conditioned else 1
    return calls


def _standard_normal(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # drawn on the generator's device (CPU) so a seed gives the same numbers on every device
    return torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


class Observation(Protocol):
    """What the DInG loop asks of a measurement y = A x0 + σ_y·n (ding_restore.md §1): two questions, so one
    loop serves inpainting and every linear restoration operator. Tensors are in the state's coordinates
    and the loop's working dtype; every random draw comes from `generator`."""

    def transition(self, x0: torch.Tensor, prior_mean: torch.Tensor, prior_std: float, signal: float, noise: float,
                   noise_guess: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A draw of x_s from N(μ, η²I)·N(ỹ; A x_s, τ²I): μ = prior_mean, η = prior_std,
        ỹ = a_s·y + b_s·A ε̂_z with a_s = signal, b_s = noise, ε̂_z = noise_guess, and τ = a_s·σ_y.
        x0 is the step's Tweedie estimate (a latent observation linearizes its decoder there)."""

    def final(self, x0: torch.Tensor, x0_std: float, generator: torch.Generator) -> torch.Tensor:
        """The last Tweedie estimate x̂0 conditioned on y: N(x̂0, x0_std²I)·N(y; A x, σ_y²I), its observed
        part drawn, its unobserved part left at x̂0."""


class MaskObservation:
    """y = M ⊙ x0 + σ_y·n on the state's own coordinates (latent inpainting): DInG's closed form, an
    `Observation`."""

    def __init__(self, observation: torch.Tensor, observed_mask: torch.Tensor, obs_std: float):
        self.y, self.mask, self.obs_std = observation, observed_mask, float(obs_std)

    def to(self, device, dtype):
        return MaskObservation(self.y.to(device, dtype), self.mask.to(device, dtype), self.obs_std)

    def transition(self, x0, prior_mean, prior_std, signal, noise, noise_guess, generator):
        target = signal * self.y + noise * noise_guess
        mean, std = posterior_moments(prior_mean, prior_std, target, signal * self.obs_std, self.mask)
        return mean + std * _standard_normal(prior_mean, generator)

    def final(self, x0, x0_std, generator):
        """N(x̂0, σ̃²) · N(M x; M y, σ_y²), σ̃ in x0 units (see sample_posterior): the observed cells
        drawn from this posterior (exactly, for a binary mask), the hidden cells left at Tweedie's x̂0
        (ding_restore.md §1, last step): the paper's plain x̂0 would pull observed values toward the prior."""
        mean, std = posterior_moments(x0, x0_std, self.y, self.obs_std, self.mask)
        return mean + self.mask.abs() * std * _standard_normal(x0, generator)


def sample_ding(denoise: Denoiser, x: torch.Tensor, sigmas, observation: torch.Tensor,
                observed_mask: torch.Tensor, param: Parameterisation, generator: torch.Generator, *,
                obs_std: float = 0.01, observed_mask_at: Optional[Callable[[float], torch.Tensor]] = None,
                **options) -> torch.Tensor:
    """DInG inpainting over `sigmas` (descending) from the state `x` at sigmas[0].

    observation: y in the latent coordinates of x̂0 (clean, not noised); observed_mask: M ∈ [0, 1]
    broadcastable to x, 1 = known. observed_mask_at(σ), if given, is M at each step's noise level σ
    instead (a mask that changes along the schedule, as Differential Diffusion makes it). Options as in
    `sample_posterior`.
    """
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32

    def observing(mask):
        return MaskObservation(observation, mask, obs_std).to(x.device, work_dtype)
    if observed_mask_at is None:
        return sample_posterior(denoise, x, sigmas, observing(observed_mask), param, generator, **options)
    return sample_posterior(denoise, x, sigmas, lambda sigma: observing(observed_mask_at(sigma)), param, generator,
                            **options)


def _reverse_step(x, x0, sigma_t, sigma_s, observation, param, generator, denoised, eta_schedule, eta_scale,
                  variant):
    """One transition σ_t → σ_s > 0 (ding.md §2 (1)–(4)); with no observation, the plain prior bridge."""
    rho = relative_eta(eta_schedule, param, sigma_t, sigma_s, eta_scale)
    prior_mean, prior_std = prior_bridge(x, x0, sigma_t, sigma_s, param, rho)
    if observation is None:  # a sparse step: no proxy, no observation
        return prior_mean + prior_std * _standard_normal(x, generator)
    if variant == "delayed":  # one NFE: the noise estimate of the current state, one level stale (§3)
        noise_guess = param.noise_estimate(x, x0, sigma_t)
    else:
        proxy = prior_mean + prior_std * _standard_normal(x, generator)
        # frozen_proxy: the proxy's noise with the denoiser held at this step's x̂0, no second call:
        # (z − a_s x̂0)/b_s = √(1 − ρ²) ε̂_t + ρ ξ₁, delayed's ε̂_t plus the proxy's fresh share (ding_restore.md §3)
        proxy_x0 = x0 if variant == "frozen_proxy" else denoised(proxy, sigma_s)
        noise_guess = param.noise_estimate(proxy, proxy_x0, sigma_s)
    return observation.transition(x0, prior_mean, prior_std, param.signal_scale(sigma_s), param.noise_scale(sigma_s),
                                  noise_guess, generator)


def sample_posterior(denoise: Denoiser, x: torch.Tensor, sigmas,
                     observation: Union[Observation, Callable[[float], Observation]], param: Parameterisation,
                     generator: torch.Generator, *, eta_schedule: str = "fm_square", eta_scale: float = 1.0,
                     variant: str = "ding", exact_every: int = 1, callback: Optional[Callable] = None,
                     check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """The DInG loop (ding.md §2) for any `Observation`, or for a function of the step's noise level σ_t
    that gives each step's observation (one that changes along the schedule).

    Returns x at sigmas[-1], or the final x̂0 conditioned on y when sigmas[-1] = 0. exact_every > 1
    conditions only the steps `conditioned_steps` names. callback(i, x, x0, sigma) is called once per step.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(work_dtype)
    sigma_values = [as_scalar(s) for s in sigmas]
    conditioned = conditioned_steps(sigmas, exact_every)
    previous_sigma = sigma_values[0]

    def denoised(state, sigma):
        return denoise(state, sigma).to(work_dtype)

    observation_at = observation if callable(observation) else (lambda sigma, fixed=observation: fixed)
    for i, (sigma_t, sigma_s) in enumerate(zip(sigma_values[:-1], sigma_values[1:])):
        if check_interrupt is not None:
            check_interrupt()
        if sigma_s == sigma_t:
            continue
        step_observation = observation_at(sigma_t)
        x0 = denoised(x, sigma_t)
        if sigma_s <= 0:  # final step: transitions never target σ = 0 (§2, pitfall 2)
            # x̂0's prior std: the noise level one step up. The transition into σ_last barely reads y
            # (γ → 0 as η → 0), so x̂0 is only as sure of the observed values as that earlier level;
            # σ̃(σ_last) alone left observed latents 1.7× too far from y on flow schedules (tests).
            x = step_observation.final(x0, param.ve_sigma(previous_sigma), generator)
        else:
            x = _reverse_step(x, x0, sigma_t, sigma_s, step_observation if i in conditioned else None, param,
                              generator, denoised, eta_schedule, eta_scale, variant)
        previous_sigma = sigma_t
        if callback is not None:
            callback(i, x, x0, sigma_t)
    return x
