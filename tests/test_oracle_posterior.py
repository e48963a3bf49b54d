"""DInG through ComfyUI's SamplerCustom on the exact Gaussian-mixture oracle, against the exact
posterior, side by side with ComfyUI's own inpainting (SetLatentNoiseMask + euler / euler_ancestral)
at the same number of steps, in EPS, v-prediction and flow sampling."""
import pytest
import torch

LATENT_SHAPE = (2, 3, 3)   # 18 latent coordinates
N_SAMPLES = 400
STEPS = 20
OBS_STD = 0.01


def hidden_coordinates(observed):
    return (observed.reshape(-1) == 0).nonzero()[:, 0]


# (seed, spread of the means, scale of the covariances): separated modes, and strongly correlated
# overlapping ones; both have full (non-diagonal) covariances.
PROBLEMS = {"separated_modes": (3, 2.5, 0.5), "correlated": (7, 1.2, 0.8)}


def oracle_problem(pack, problem):
    """A full-covariance mixture, one draw x0 from it, and its half-observed latent."""
    seed, spread, scale = PROBLEMS[problem]
    generator = torch.Generator().manual_seed(seed)
    mixture = pack.solvers__gaussian_mixture.random_mixture(18, 3, generator, spread=spread, scale=scale)
    truth = mixture.sample(1, generator)
    observation = truth + OBS_STD * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    observed = torch.zeros(LATENT_SHAPE)
    observed[:, :, :2] = 1.0     # columns 0–1 known, column 2 to inpaint
    rows = (observed.reshape(-1) == 1).nonzero()[:, 0]
    operator = torch.eye(18, dtype=torch.float64)[rows]
    posterior = mixture.condition(operator, observation[0, rows], OBS_STD)
    return mixture, observation.float().reshape(1, *LATENT_SHAPE), observed, posterior


def sample_with_sampler_custom(engine, model, sampler, observation, observed, seed):
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    latent = {"samples": observation.repeat(N_SAMPLES, 1, 1, 1), "noise_mask": (1.0 - observed)[None]}
    no_prompt = [[torch.zeros(1, 1, 1), {}]]
    output, _ = engine.nodes["SamplerCustom"]().sample(model, True, seed, 1.0, no_prompt, no_prompt, sampler,
                                                       sigmas, latent)
    return output["samples"].reshape(N_SAMPLES, -1).double()


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("prediction", ["eps", "v_prediction", "flow"])
def test_ding_matches_exact_posterior_better_than_comfy_inpainting(engine, pack, prediction, problem):
    mixture, observation, observed, posterior = oracle_problem(pack, problem)
    model = pack.nodes__oracle_model.mixture_model(mixture, LATENT_SHAPE, prediction)
    generator = torch.Generator().manual_seed(0)
    hidden = hidden_coordinates(observed)
    exact = posterior.sample(N_SAMPLES, generator)[:, hidden]
    floor = pack.solvers__metrics.sliced_wasserstein(exact, posterior.sample(N_SAMPLES, generator)[:, hidden], generator)

    ding_sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, OBS_STD)[0]
    ding_samples = sample_with_sampler_custom(engine, model, ding_sampler, observation, observed, seed=1)
    distances = {"ding": pack.solvers__metrics.sliced_wasserstein(ding_samples[:, hidden], exact, generator)}
    for name in ("euler", "euler_ancestral"):
        baseline = engine.nodes["KSamplerSelect"]().get_sampler(name)[0]
        samples = sample_with_sampler_custom(engine, model, baseline, observation, observed, seed=1)
        distances[name] = pack.solvers__metrics.sliced_wasserstein(samples[:, hidden], exact, generator)
    print(f"\n{prediction} {problem}: sliced W2 to the exact posterior (floor {floor:.4f}): "
          + ", ".join(f"{k} {v:.4f}" for k, v in distances.items()))

    assert distances["ding"] < 0.75 * min(distances["euler"], distances["euler_ancestral"])
    assert distances["ding"] < 5.0 * floor
    known = observed.reshape(-1) == 1
    known_error = (ding_samples[:, known] - observation.reshape(-1)[known].double()).abs()
    assert known_error.mean() < 0.05, f"observed region drifted by {known_error.mean():.4f} on average"
