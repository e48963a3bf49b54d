"""DInG beyond masks: exact Gaussian steps for any linear operator (spec: docs/ding_restore.md).

The loop is DInG's (`ding.sample_posterior`); only the observation changes. For y = A x0 + σ_y·n
with a linear A on the state, each step σ_t → σ_s draws

    x_s ~ N(μ, η² I) · N(ỹ; A x_s, τ² I),   ỹ = a_s·y + b_s·A ε̂_z,  τ = a_s·σ_y        (§1)

exactly, by perturb-and-MAP in the measurement-space (Kalman) form:

    μ' = μ + η ξ₂,   w = (τ² I + η² A Aᵀ)⁻¹ (ỹ + τ ξ₃ − A μ'),   x_s = μ' + η² Aᵀ w.

The last step conditions Tweedie's x̂0 on y the same way, with prior N(x̂0, σ̃² I) (σ̃ of the level
before the last) and only the likelihood's perturbation ξ₃: no fresh prior noise, so the directions
A does not see stay at x̂0.

Latent models see the operator through the decoder (§2): y = A(Dec(x0)) + noise. Each step then
linearizes Dec at its own x̂0, A_z = A·J, and the measurement becomes y − A(Dec(x̂0)) + A_z x̂0:
* `linearized`: J v by forward-mode differentiation of the decoder (a finite difference where a kernel
  has no forward rule), Jᵀ w by a vector-Jacobian product through the decoder only (never the
  denoiser), conjugate gradients on the composed system. Exact for linear decoders.
* `pixel`: no autograd in the steps. The decoder is taken as an isometry up to scale, JᵀJ ≈ g² I
  (g² = ‖Jξ‖²/‖ξ‖², probed once), so Jᵀ ≈ g²·J⁺ with J⁺ a finite difference of the encoder, and the system
  is solved in pixel space with A alone and prior variance g²η² (see DecoderGainObservation). Exact when
  JᵀJ = g² I and A maps the decoder's range into itself (a pixel model, a grey decoder under a per-channel
  A); approximate otherwise. Through a trained decoder most of the approximation's error is made in the
  low-noise steps and the last one, which decides the output (docs/testbed.md): `exact_final` gives the
  last step to the linearized fit (one Gauss–Newton step, a JVP and a VJP through the decoder per CG
  iteration), `exact_below` also every transition whose target noise-to-signal ratio b_s/a_s is below it.
* `fitted`: no autograd, no encoder. J is replaced by a linear model L of the decoder fitted from its own
  finite differences (`decoder_surrogate.LocalLinearDecoder`), A_z = A·L, one unclamped decode per step for
  the data residual (FittedDecoderObservation), or none where the noise outweighs the data (`predict_above`:
  Dec(x̂0) predicted from the last decoded point through L). `exact_final` and `exact_below` apply to it as to `pixel`
  (ExactLowNoiseSteps); on the testbed its exact last step alone brings it within 1.25× of `linearized`'s
  distance except on inpainting.
"""
import logging
from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from .ding import MaskObservation, _standard_normal
from .decoder_surrogate import LocalLinearDecoder
from .linear_gaussian import SolveStats, conjugate_gradient, solve_measurement_system

log = logging.getLogger("inverse_samplers")

LATENT_SOLVERS = ("linearized", "pixel", "fitted")
APPROXIMATE_SOLVERS = ("pixel", "fitted")  # those whose steps `exact_final` / `exact_below` can make exact
MIN_OBS_STD = 1e-3  # σ_y floor ([−1, 1] units): τ = 0 makes the system singular where A has zero rows


@dataclass
class SolveOptions:
    tolerance: float = 1e-4       # relative residual at which CG stops
    max_iterations: int = 100     # CG iterations per solve
    finite_difference: float = 0.02  # RMS size of the perturbation of finite-difference Jacobian products
    final_iterations: int = 3     # Gauss–Newton steps of the last fit through a nonlinear decoder


class LinearObservation:
    """y = A_z x0 + σ_y·n around each step's linearization point (a `ding.Observation`);
    subclasses provide A_z.

    linearize(x0) sets data_residual = y − A(Dec(x̂0)); apply(v) = A_z v; adjoint(w) = A_zᵀ w;
    solve(τ², v, r) = (τ² I + v·A_z A_zᵀ)⁻¹ r.
    """

    def __init__(self, operator, measurement: torch.Tensor, obs_std: float, options: SolveOptions = SolveOptions(),
                 check_interrupt: Optional[Callable[[], None]] = None):
        if operator is not None:
            require_linear(operator)
        self.operator, self.y = operator, measurement
        self.obs_std = max(float(obs_std), MIN_OBS_STD)
        self.options, self.check_interrupt = options, check_interrupt
        self.stats = SolveStats()
        self.data_residual = None

    def transition(self, x0, prior_mean, prior_std, signal, noise, noise_guess, generator):
        self.linearize(x0)
        prior_draw = prior_mean + prior_std * _standard_normal(prior_mean, generator)
        tau = signal * self.obs_std
        # ỹ + τξ₃ − A_z μ' with ỹ = a_s·y + b_s·A_z ε̂_z, written around the linearization point x̂0,
        # where A(Dec(x̂0)) = y − data_residual
        rhs = (signal * self.data_residual + self.apply(signal * x0 + noise * noise_guess - prior_draw)
               + tau * _standard_normal(self.data_residual, generator))
        self.stats.level = prior_std / signal  # the step's noise, in x0 units
        w = self.solve(tau * tau, prior_std * prior_std, rhs)
        return prior_draw + prior_std * prior_std * self.adjoint(w)

    def final(self, x0, x0_std, generator):
        """argmin ‖x − x̂0‖²/σ̃² + ‖A(Dec(x)) − y − σ_y ξ₃‖²/σ_y² by Gauss–Newton: one step is exact for a
        linear decoder; a nonlinear one is re-linearized at each iterate (final_iterations)."""
        x = x0
        for iteration in range(self.final_iterations):
            self.linearize(x)
            if iteration == 0:
                perturbation = self.obs_std * _standard_normal(self.data_residual, generator)
                rhs = self.data_residual + perturbation
            else:  # the model A(Dec(x)) + A_z (x' − x) of A(Dec(x')), around the current iterate
                rhs = self.data_residual + perturbation - self.apply(x0 - x)
            self.stats.level = x0_std
            w = self.solve(self.obs_std ** 2, x0_std * x0_std, rhs)
            x = x0 + x0_std * x0_std * self.adjoint(w)
        self.release()
        return x

    @property
    def final_iterations(self):
        return self.options.final_iterations

    def release(self):
        """Drop what the last linearization holds (a decoder graph, cached images)."""

    def _pixel_solve(self, noise_var, prior_var, rhs):
        """(τ² I + v·A Aᵀ)⁻¹ rhs with the pixel-space operator alone (closed form or CG)."""
        return solve_measurement_system(self.operator, noise_var, prior_var, rhs, self.stats,
                                        tolerance=self.options.tolerance,
                                        max_iterations=self.options.max_iterations,
                                        check_interrupt=self.check_interrupt)

    def _conjugate_gradient(self, noise_var, prior_var, rhs):
        """CG on the composed system, its vectors in float64 (the decoder runs in its own dtype)."""
        def system(w):
            return noise_var * w + prior_var * self.apply(self.adjoint(w).to(rhs.dtype)).double()
        w, iterations, residual = conjugate_gradient(system, rhs.double(), tolerance=self.options.tolerance,
                                                     max_iterations=self.options.max_iterations,
                                                     check_interrupt=self.check_interrupt)
        self.stats.add(iterations, residual)
        return w.to(rhs.dtype)


class StateObservation(LinearObservation):
    """A acts on the state itself: pixel-space models, or latents through a linear map."""
    final_iterations = 1  # linear: one Gauss–Newton step is the exact solution

    def linearize(self, x0):
        self.data_residual = self.y.to(x0.dtype) - self.operator.forward(x0)

    def apply(self, v):
        return self.operator.forward(v)

    def adjoint(self, w):
        return self.operator.adjoint(w)

    def solve(self, noise_var, prior_var, rhs):
        return self._pixel_solve(noise_var, prior_var, rhs)


def _finite_difference_step(direction: torch.Tensor, size: float) -> torch.Tensor:
    """Per batch item, h with RMS(h·direction) = size (h = 1 for a zero direction)."""
    rms = direction.flatten(1).square().mean(1).sqrt()
    step = torch.where(rms > 0, size / rms.clamp_min(1e-30), torch.ones_like(rms))
    return step.view(-1, *([1] * (direction.ndim - 1)))


def _decoder_difference(decode, point, pixels, direction, size):
    """(Dec(point + h·direction) − Dec(point))/h with RMS(h·direction) = size: J·direction by a finite
    difference, `pixels` being Dec(point)."""
    step = _finite_difference_step(direction, size)
    return (decode(point + step * direction) - pixels) / step


def probe_squared_gain(decode, point, pixels, size):
    """g² = ‖Jξ‖²/‖ξ‖² of the decoder at `point`, from one random finite difference."""
    probe = torch.randn(point.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float32).to(point)
    image = _decoder_difference(decode, point, pixels, probe, size)
    return float(image.square().sum() / probe.square().sum())


class LinearizedDecoderObservation(LinearObservation):
    """A_z = A·J at x̂0: J v by forward-mode differentiation of the decoder (finite difference as a
    fallback), Jᵀ w by a VJP through the decoder only."""

    def __init__(self, operator, measurement, obs_std, options, decode: Callable, check_interrupt=None):
        super().__init__(operator, measurement, obs_std, options, check_interrupt)
        self.decode = decode            # differentiable latent → pixels [−1, 1], not clamped
        self.point = self.measured = self.pixels = None
        self.forward_mode = True
        self.decoder_passes = {"decodes": 0, "jvps": 0, "vjps": 0}  # what the decoder was asked for

    def linearize(self, x0):
        self.release()
        with torch.inference_mode(False), torch.enable_grad():
            self.point = x0.detach().clone().float().requires_grad_(True)
            self.pixels = self.decode(self.point)
            self.decoder_passes["decodes"] += 1
            self.measured = self.operator.autograd_ready().forward(self.pixels)
        self.data_residual = (self.y.to(self.measured.dtype) - self.measured.detach()).to(x0.dtype)

    def apply(self, v):
        """A J v: a forward-mode Jacobian-vector product through the decoder, or, where a kernel has no
        forward-mode rule (fused attention on some GPUs), a finite difference."""
        point = self.point.detach()
        if self.forward_mode:
            try:
                with torch.inference_mode(False):
                    _, tangent = torch.func.jvp(self.decode, (point.clone(),), (v.detach().clone().float(),))
                self.decoder_passes["jvps"] += 1
                return self.operator.forward(tangent).to(v.dtype)
            except (RuntimeError, NotImplementedError) as error:
                self.forward_mode = False
                log.warning("DInG restore: no forward-mode derivative through the decoder (%s); using finite "
                            "differences", str(error).splitlines()[0][:120])
        with torch.no_grad():
            tangent = _decoder_difference(self.decode, point, self.pixels.detach(), v.float(),
                                          self.options.finite_difference)
        self.decoder_passes["decodes"] += 1
        return self.operator.forward(tangent).to(v.dtype)

    def adjoint(self, w):
        with torch.inference_mode(False), torch.enable_grad():
            (gradient,) = torch.autograd.grad(self.measured, self.point, grad_outputs=w.detach().clone().float(),
                                              retain_graph=True)
        self.decoder_passes["vjps"] += 1
        return gradient.to(w.dtype)

    def solve(self, noise_var, prior_var, rhs):
        return self._conjugate_gradient(noise_var, prior_var, rhs)

    def release(self):
        self.point = self.measured = self.pixels = None


class DecoderGainObservation(LinearObservation):
    """No autograd: the decoder taken as JᵀJ ≈ g² I with Enc ≈ J⁺, so Jᵀ ≈ g²·(finite-difference encoder)
    and J Jᵀ ≈ g²·(projector onto the decoder's range). The step reads the measurement-space solution w
    only through Jᵀ Aᵀ w, so the system is solved in pixel space with J Jᵀ ≈ g² I: exact for A = I and
    wherever A maps the decoder's range into itself. (Matching J Jᵀ's trace instead, g²·latent/pixel
    size, under-weights the prior in the directions the step moves by that ratio and overshoots: ×3 on a
    grey decoder, ×48 on SD's VAE.)"""

    def __init__(self, operator, measurement, obs_std, options, decode: Callable, encode: Callable,
                 check_interrupt=None):
        super().__init__(operator, measurement, obs_std, options, check_interrupt)
        self.decode, self.encode = decode, encode
        self.point = self.pixels = self.encoded = None
        self.squared_gain = None  # g²

    def linearize(self, x0):
        self.point, self.pixels, self.encoded = x0, self.decode(x0), None
        if self.squared_gain is None:
            self.squared_gain = probe_squared_gain(self.decode, x0, self.pixels, self.options.finite_difference)
        self.data_residual = (self.y.to(self.pixels.dtype) - self.operator.forward(self.pixels)).to(x0.dtype)

    def apply(self, v):
        tangent = _decoder_difference(self.decode, self.point, self.pixels, v, self.options.finite_difference)
        return self.operator.forward(tangent).to(v.dtype)

    def adjoint(self, w):
        back = self.operator.adjoint(w.to(self.pixels.dtype))
        step = _finite_difference_step(back, self.options.finite_difference)
        if self.encoded is None:
            self.encoded = self.encode(self.pixels)
        return (self.squared_gain * (self.encode(self.pixels + step * back) - self.encoded) / step).to(w.dtype)

    def solve(self, noise_var, prior_var, rhs):
        return self._pixel_solve(noise_var, self.squared_gain * prior_var, rhs)

    def release(self):
        self.point = self.pixels = self.encoded = None


class FittedDecoderObservation(LinearObservation):
    """A_z = A·L with L a linear surrogate of the decoder's Jacobian (`decoder_surrogate.LocalLinearDecoder`):
    refitted to random finite-difference probes every `refit_every` decoded linearizations, and corrected in
    between by secant updates along the steps taken. The data residual y − A(Dec(x̂0)) is the decoder's own,
    one decode per step; no encoder, no autograd. A_z and A_zᵀ are exact adjoints, so each step is the exact
    Gaussian product of the surrogate model, solved by CG on the composed system.
    Transitions to a noise-to-signal ratio b_s/a_s above `predict_above` (when > 0) skip the decode: Dec(x̂0) is
    predicted from the last decoded point u, Dec(u) + L (x̂0 − u) (the first step always decodes). Where the noise
    outweighs the data that costs little (docs/testbed.md). Below it, only every `decode_every`-th transition
    decodes (the first one does) and the others predict the same way; the last step always decodes.
    `decode` should not clamp: a clamped pixel has no derivative, and a fit through one cannot move it.
    The last step is one Gauss–Newton step: on the testbed two more (re-linearized, a decode each) came out no
    closer (docs/testbed.md)."""
    final_iterations = 1

    def __init__(self, operator, measurement, obs_std, options, decode: Callable, refit_every: int = 4,
                 predict_above: float = 0.0, decode_every: int = 1, check_interrupt=None):
        super().__init__(operator, measurement, obs_std, options, check_interrupt)
        self.decode, self.refit_every = decode, max(1, int(refit_every))
        self.predict_above, self.decode_every = float(predict_above), max(1, int(decode_every))
        self.low_noise_transitions = 0   # transitions at or below predict_above so far
        self.surrogate = None
        self.linearizations = 0          # decoded ones
        self.previous = None             # (latent, pixels) of the last decoded linearization
        self.predict = False             # this linearization predicts Dec(x̂0) instead of decoding it
        self.probe_generator = torch.Generator().manual_seed(0)

    def transition(self, x0, prior_mean, prior_std, signal, noise, noise_guess, generator):
        skips_decode = self._skips_decode(signal, noise)
        self.predict = self.previous is not None and skips_decode
        return super().transition(x0, prior_mean, prior_std, signal, noise, noise_guess, generator)

    def _skips_decode(self, signal, noise):
        """Whether this transition's noise level, or below predict_above its place among the low-noise transitions
        (counted here, so called once per transition, before the first decode too), skips the decode."""
        if 0 < self.predict_above * signal < noise:
            return True
        self.low_noise_transitions += 1
        return (self.low_noise_transitions - 1) % self.decode_every != 0

    def final(self, x0, x0_std, generator):
        self.predict = False
        return super().final(x0, x0_std, generator)

    def linearize(self, x0):
        if self.predict:
            anchor, anchor_pixels = self.previous
            pixels = anchor_pixels + self.surrogate.apply(x0 - anchor).to(anchor_pixels.dtype)
        else:
            pixels = self._decoded_linearization(x0)
        self.data_residual = (self.y.to(pixels.dtype) - self.operator.forward(pixels)).to(x0.dtype)

    def _decoded_linearization(self, x0):
        pixels = self.decode(x0)
        if self.surrogate is None:
            self.surrogate = LocalLinearDecoder(x0.shape[1], pixels.shape[-1] // x0.shape[-1])
        if self.linearizations % self.refit_every == 0:
            self._fit(x0, pixels)
        elif self.previous is not None:
            self.surrogate.secant_update(x0 - self.previous[0], pixels - self.previous[1])
        self.linearizations += 1
        self.previous = (x0, pixels)
        return pixels

    def _fit(self, x0, pixels):
        """Fits L to finite differences along random directions around x0, one decode each (one at any real
        image size, `LocalLinearDecoder.probes_needed`)."""
        count, size = self.surrogate.probes_needed(x0.shape), self.options.finite_difference
        directions = torch.randn((count,) + tuple(x0.shape), generator=self.probe_generator,
                                 dtype=torch.float32).to(x0)
        differences = torch.stack([(self.decode(x0 + size * direction) - pixels) / size for direction in directions])
        self.surrogate.fit(directions, differences)

    def apply(self, v):
        return self.operator.forward(self.surrogate.apply(v).to(v.dtype))

    def adjoint(self, w):
        return self.surrogate.adjoint(self.operator.adjoint(w)).to(w.dtype)

    def solve(self, noise_var, prior_var, rhs):
        # no pixel-space preconditioner: A L Lᵀ Aᵀ has the latent's rank, and (τ²I + g²v AAᵀ)⁻¹ assumes the image's
        return self._conjugate_gradient(noise_var, prior_var, rhs)


class ExactLowNoiseSteps:
    """An approximate latent observation (`pixel` or `fitted`) whose last step, and every transition to a
    noise-to-signal ratio b_s/a_s below `exact_below`, is taken by the fit through the decoder's derivatives
    (`exact`, a LinearizedDecoderObservation): through a trained decoder most of an approximation's error is
    made in the low-noise steps and the last one, which decides the output (docs/testbed.md)."""

    def __init__(self, approximate: LinearObservation, exact: LinearizedDecoderObservation, exact_below: float = 0.0):
        self.approximate, self.exact, self.exact_below = approximate, exact, float(exact_below)
        exact.stats = approximate.stats
        self.stats = approximate.stats

    @property
    def decoder_passes(self):
        """What the exact steps asked of the differentiable decoder (the approximate ones' passes go through
        the VAE's codec, counted by the caller)."""
        return self.exact.decoder_passes

    def transition(self, x0, prior_mean, prior_std, signal, noise, noise_guess, generator):
        if noise >= self.exact_below * signal:
            return self.approximate.transition(x0, prior_mean, prior_std, signal, noise, noise_guess, generator)
        self.approximate.release()
        sample = self.exact.transition(x0, prior_mean, prior_std, signal, noise, noise_guess, generator)
        self.exact.release()  # the decoder's graph, not kept through the next network call
        return sample

    def final(self, x0, x0_std, generator):
        self.approximate.release()
        return self.exact.final(x0, x0_std, generator)


def require_linear(operator):
    if not operator.linear:
        raise ValueError(f"operator: {operator.describe()} is not linear, and DInG's exact step needs a linear "
                         "operator; use Spin or DCDP (they only differentiate the operator)")


def state_observation(operator, measurement, obs_std, options: SolveOptions = SolveOptions(),
                      check_interrupt=None):
    """The observation when A acts on the state itself. Masks and the identity take DInG's closed form
    (so inpainting here is DInG, draw for draw); every other linear A the measurement-space solve."""
    require_linear(operator)
    mask_form = operator.mask_form(measurement)
    if mask_form is not None:
        return MaskObservation(*mask_form, max(obs_std, MIN_OBS_STD))
    return StateObservation(operator, measurement, obs_std, options, check_interrupt)


def latent_observation(solver: str, operator, measurement, obs_std, decode: Callable, encode: Callable,
                       unclamped_decode: Callable, differentiable_decode: Optional[Callable],
                       options: SolveOptions = SolveOptions(), check_interrupt=None, exact_final: bool = False,
                       exact_below: float = 0.0, predict_above: float = 0.0, decode_every: int = 1):
    """The observation of a latent model (§2): `linearized`, `fitted` or `pixel`, the latter two with their last
    step through the decoder's derivatives when `exact_final` (one Gauss–Newton step: measured as close as
    three), and their transitions to a noise-to-signal ratio below `exact_below` too (which implies the exact
    final). `decode` / `encode` are the VAE's own passes (clamped pixels, for `pixel`); `unclamped_decode` the
    decoder without the clamp (for `fitted`, which predicts it instead above `predict_above`, and below it between
    every `decode_every`-th transition);
    `differentiable_decode` the same, differentiable (for `linearized` and the exact steps; may be None without
    them)."""
    if solver == "linearized":
        return LinearizedDecoderObservation(operator, measurement, obs_std, options, differentiable_decode,
                                            check_interrupt)
    if solver == "fitted":
        approximate = FittedDecoderObservation(operator, measurement, obs_std, options, unclamped_decode,
                                               predict_above=predict_above, decode_every=decode_every,
                                               check_interrupt=check_interrupt)
    elif solver == "pixel":
        approximate = DecoderGainObservation(operator, measurement, obs_std, options, decode, encode,
                                             check_interrupt)
    else:
        raise ValueError(f"latent_solver must be one of {LATENT_SOLVERS}, got {solver!r}")
    if not (exact_final or exact_below > 0):
        return approximate
    exact = LinearizedDecoderObservation(operator, measurement, obs_std, replace(options, final_iterations=1),
                                         differentiable_decode, check_interrupt)
    return ExactLowNoiseSteps(approximate, exact, exact_below)
