"""Inpainting problems on the exact Gaussian-mixture oracle, shared by the tests and the benchmark:
a full-covariance mixture over latents [2, 3, 3], one draw from it observed on columns 0–1
(σ_y = 0.01), and the exact posterior of the hidden column."""
import torch

LATENT_SHAPE = (2, 3, 3)
OBS_STD = 0.01
# (seed, spread of the means, scale of the covariances): separated modes, and strongly correlated
# overlapping ones; both have full (non-diagonal) covariances.
PROBLEMS = {"separated_modes": (3, 2.5, 0.5), "correlated": (7, 1.2, 0.8)}
NO_PROMPT = [[torch.zeros(1, 1, 1), {}]]


def oracle_problem(pack, problem):
    """(mixture, observation [1, C, h, w], observed mask [C, h, w], exact posterior over all coordinates)."""
    seed, spread, scale = PROBLEMS[problem]
    generator = torch.Generator().manual_seed(seed)
    dim = LATENT_SHAPE[0] * LATENT_SHAPE[1] * LATENT_SHAPE[2]
    mixture = pack.solvers__gaussian_mixture.random_mixture(dim, 3, generator, spread=spread, scale=scale)
    truth = mixture.sample(1, generator)
    observation = truth + OBS_STD * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    observed = torch.zeros(LATENT_SHAPE)
    observed[:, :, :2] = 1.0
    rows = (observed.reshape(-1) == 1).nonzero()[:, 0]
    posterior = mixture.condition(torch.eye(dim, dtype=torch.float64)[rows], observation[0, rows], OBS_STD)
    return mixture, observation.float().reshape(1, *LATENT_SHAPE), observed, posterior


def hidden_coordinates(observed):
    return (observed.reshape(-1) == 0).nonzero()[:, 0]


def sample_with_sampler_custom(engine, model, sampler, observation, observed, n_samples, steps, seed):
    """n_samples draws through ComfyUI's SamplerCustom node, the mask given as the latent's noise_mask."""
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", steps, 1.0)[0]
    latent = {"samples": observation.repeat(n_samples, 1, 1, 1), "noise_mask": (1.0 - observed)[None]}
    output, _ = engine.nodes["SamplerCustom"]().sample(model, True, seed, 1.0, NO_PROMPT, NO_PROMPT, sampler,
                                                       sigmas, latent)
    return output["samples"].reshape(n_samples, -1).double()
