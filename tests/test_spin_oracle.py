"""Spin through ComfyUI's SamplerCustom on the exact oracle: a Gaussian-mixture prior over RGB
images [3, 4, 4] with a lossless RGB autoencoder in ComfyUI's VAE class, so the exact posterior of
every linear operator is closed form. Side by side: the naive baselines (ignoring y: plain sampling
from the prior; SDEdit from the operator's y-based first guess at the same t*)."""
import pytest
import torch

from oracle_problems import NO_PROMPT

SHAPE = (3, 4, 4)
N_SAMPLES = 300
STEPS = 20
STRENGTH = 0.6
NOISE = 0.05  # measurement noise, [−1, 1] units


def operators_under_test(pack):
    ops = pack.solvers__operators
    observed = torch.ones(1, 1, 4, 4)
    observed[..., :, 2:] = 0.0
    return {"inpaint": ops.Inpainting(observed), "blur": ops.gaussian_blur(3, 1.0),
            "sr_box_x2": ops.Downsample(2, "box"), "sr_bicubic_x2": ops.Downsample(2, "bicubic")}


def dense_matrix(operator, dim):
    basis = torch.eye(dim).reshape(dim, *SHAPE)
    return operator.forward(basis).reshape(dim, -1).T.double()


def spin_sampler(engine, vae, measurement, operator):
    return engine.nodes["InverseSpinSampler"]().get_sampler(
        vae, measurement, operator, STRENGTH, warm_start_iterations=4, guided_steps=4, guidance_end=0.6,
        fit_steps=50, fit_lr=0.05, proximity=1.0, measurement_noise=NOISE / 2, renoise="stochastic")[0]


def run(engine, model, sampler, sigmas, latent, seed=1):
    out, _ = engine.nodes["SamplerCustom"]().sample(model, True, seed, 1.0, NO_PROMPT, NO_PROMPT, sampler, sigmas,
                                                    {"samples": latent})
    return out["samples"].reshape(len(latent), -1).double()


@pytest.mark.parametrize("prediction", ["eps", "flow"])
@pytest.mark.parametrize("task", ["inpaint", "blur", "sr_box_x2", "sr_bicubic_x2"])
def test_spin_approaches_exact_posterior_better_than_naive_baselines(engine, pack, prediction, task):
    generator = torch.Generator().manual_seed(11)
    dim = SHAPE[0] * SHAPE[1] * SHAPE[2]
    mixture = pack.solvers__gaussian_mixture.random_mixture(dim, 3, generator, spread=0.35, scale=0.15)
    operator = operators_under_test(pack)[task]
    truth = mixture.sample(1, generator).float().reshape(1, *SHAPE)
    y = operator.simulate(truth, NOISE, generator)
    posterior = mixture.condition(dense_matrix(operator, dim), y.reshape(-1).double(), NOISE)
    exact = posterior.sample(N_SAMPLES, generator)
    distance = pack.solvers__metrics.sliced_wasserstein
    floor = distance(exact, posterior.sample(N_SAMPLES, generator), generator)

    model = pack.nodes__oracle_model.mixture_model(mixture, SHAPE, prediction)
    vae = pack.nodes__oracle_model.pass_through_vae(3)
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    measurement = pack.nodes__vae_bridge.pixels_to_image(y)
    empty = torch.zeros(N_SAMPLES, *SHAPE)
    spin_samples = run(engine, model, spin_sampler(engine, vae, measurement, operator), sigmas, empty)

    euler = engine.nodes["KSamplerSelect"]().get_sampler("euler")[0]
    prior_samples = run(engine, model, euler, sigmas, empty)
    first_guess = pack.nodes__vae_bridge.pixels_to_image(operator.initial_guess(y).expand(N_SAMPLES, -1, -1, -1))
    sdedit_sigmas = pack.nodes__spin_nodes.warm_start_sigmas(sigmas, STRENGTH)
    sdedit_samples = run(engine, model, euler, sdedit_sigmas, vae.encode(first_guess))

    distances = {name: float(distance(samples, exact, generator)) for name, samples in
                 (("spin", spin_samples), ("prior", prior_samples), ("sdedit", sdedit_samples))}
    print(f"\n{task} {prediction}: sliced W2 to the exact posterior (floor {floor:.4f}): "
          + ", ".join(f"{k} {v:.4f}" for k, v in distances.items()))
    assert distances["spin"] < 0.7 * min(distances["prior"], distances["sdedit"])
