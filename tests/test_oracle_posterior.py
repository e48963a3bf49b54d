"""DInG through ComfyUI's SamplerCustom on the exact Gaussian-mixture oracle, against the exact
posterior, side by side with ComfyUI's own inpainting (SetLatentNoiseMask + euler / euler_ancestral)
at the same number of steps, in EPS, v-prediction and flow sampling."""
import pytest
import torch

from oracle_problems import PROBLEMS, hidden_coordinates, oracle_problem, sample_with_sampler_custom

N_SAMPLES = 400
STEPS = 20
# How far below the best baseline DInG must land. With separated modes replacement sampling picks
# the wrong mode and DInG is ~8x closer; on the strongly correlated problem all samplers are far
# from exact at 20 steps and DInG's margin is ~20% (upstream's flow euler_ancestral is the closest).
MARGIN = {"separated_modes": 0.25, "correlated": 0.9}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("prediction", ["eps", "v_prediction", "flow"])
def test_ding_matches_exact_posterior_better_than_comfy_inpainting(engine, pack, prediction, problem):
    mixture, observation, observed, posterior = oracle_problem(pack, problem)
    model = pack.demo.oracle_model.mixture_model(mixture, observation.shape[1:], prediction)
    generator = torch.Generator().manual_seed(0)
    distance = pack.demo.metrics.sliced_wasserstein
    hidden = hidden_coordinates(observed)
    exact = posterior.sample(N_SAMPLES, generator)[:, hidden]
    floor = distance(exact, posterior.sample(N_SAMPLES, generator)[:, hidden], generator)

    def draw(sampler):
        return sample_with_sampler_custom(engine, model, sampler, observation, observed, N_SAMPLES, STEPS, seed=1)

    ding_samples = draw(engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0])
    distances = {"ding": distance(ding_samples[:, hidden], exact, generator)}
    for name in ("euler", "euler_ancestral"):
        samples = draw(engine.nodes["KSamplerSelect"]().get_sampler(name)[0])
        distances[name] = distance(samples[:, hidden], exact, generator)
    print(f"\n{prediction} {problem}: sliced W2 to the exact posterior (floor {floor:.4f}): "
          + ", ".join(f"{k} {v:.4f}" for k, v in distances.items()))

    assert distances["ding"] < MARGIN[problem] * min(distances["euler"], distances["euler_ancestral"])
    assert distances["ding"] < 5.0 * floor
    known = observed.reshape(-1) == 1
    known_error = (ding_samples[:, known] - observation.reshape(-1)[known].double()).abs()
    assert known_error.mean() < 0.05, f"observed region drifted by {known_error.mean():.4f} on average"
