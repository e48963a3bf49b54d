"""The two ways ComfyUI writes a noisy latent: x = a(σ)·x0 + b(σ)·n.

* ``VE``  (EPS and v-prediction models in k-diffusion form): a = 1, b = σ.
* ``FLOW`` (ComfyUI CONST: SD3, SD3.5, Flux):               a = 1 − σ, b = σ.

Every solver works through this pair, so one implementation serves both families.
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Parameterisation:
    name: str  # "ve" or "flow"

    def signal_scale(self, sigma):
        """a(σ): the weight of the clean latent in x_σ."""
        return 1.0 - sigma if self.name == "flow" else 1.0 + 0.0 * sigma

    def noise_scale(self, sigma):
        """b(σ): the weight of the unit noise in x_σ."""
        return sigma

    def flow_level(self, sigma):
        """The flow time s ∈ [0, 1] with the same signal-to-noise ratio (ding.md §5.3): s = b/(a+b)."""
        return self.noise_scale(sigma) / (self.signal_scale(sigma) + self.noise_scale(sigma))

    def ve_sigma(self, sigma):
        """The k-diffusion σ̃ = b/a with the same signal-to-noise ratio (infinite at flow σ = 1)."""
        return self.noise_scale(sigma) / self.signal_scale(sigma)

    def noise_estimate(self, x, x0, sigma):
        """ε̂ = (x − a·x̂0)/b."""
        return (x - self.signal_scale(sigma) * x0) / self.noise_scale(sigma)

    def add_noise(self, x0, noise, sigma):
        return self.signal_scale(sigma) * x0 + self.noise_scale(sigma) * noise


VE = Parameterisation("ve")
FLOW = Parameterisation("flow")


def as_scalar(sigma) -> float:
    """Sigmas arrive as 0-d or 1-element tensors; solvers keep them as Python floats (float64)."""
    return float(sigma.reshape(-1)[0]) if isinstance(sigma, torch.Tensor) else float(sigma)
