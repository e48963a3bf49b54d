"""Restoration through the trained testbed autoencoder (docs/testbed.md): every restorer, at its node
defaults through SamplerCustom and ComfyUI's VAE class, lands on the measurement like a posterior sample
(data residual ‖A·Dec(x) − y‖ / (σ_y·√m) between 0.8 and 1.3 on every draw) and near the truth.

The truths are encoded held-out photo patches (in the decoder's range), 16×16 px under the testbed's latent
mixture prior, 24 samples per run. Measured on these draws, both families: residuals 0.94–1.13; PSNR of the
mean 38.9–49.7 dB on the blur (DInG 48.1–49.7, DCDP 48.4–49.4, Spin 38.9–42.7), 29.4–35.1 dB on ×4 SR.
Spin and DCDP without encoder_correction land 5–8 noise levels off the measurement (PSNR 10–15 dB), which
the last test keeps visible.
"""
import math

import pytest
import torch

from oracle_problems import node_defaults

SIZE, STEPS, SAMPLES = 16, 20, 24
# (task, σ_y, floor on the PSNR of the mean sample against the truth, dB)
TASKS = [("gaussian_blur", 0.05, 36.0), ("sr_x4", 0.1, 27.0)]
RESTORERS = [("InverseDInGRestoreSampler", {"latent_solver": "pixel"}),
             ("InverseSpinSampler", {}), ("InverseDCDPSampler", {})]


@pytest.fixture(scope="module")
def testbed(pack):
    prior = pack.testbed__latent_prior
    return prior.testbed_vae(), {family: prior.prior_model(family, SIZE) for family in ("eps", "flow")}


def operator_for(pack, task):
    operators = pack.solvers__operators
    return operators.gaussian_blur(5, 1.5) if task == "gaussian_blur" else operators.Downsample(4)


def problem(pack, task, noise_std, draw):
    prior, reference = pack.testbed__latent_prior, pack.testbed__reference
    generator = torch.Generator().manual_seed(100 + draw)
    truth = prior.encode_patches(prior.held_out_truths(SIZE, 1, generator))
    return reference.make_problem(operator_for(pack, task), truth, noise_std, generator)


def restore(engine, pack, testbed, node_id, overrides, problem, family, seed=0):
    vae, models = testbed
    node = engine.nodes[node_id]
    options = {**node_defaults(node), **overrides}
    if "measurement_noise" in options:
        options["measurement_noise"] = problem.noise_std / 2   # 0..1 pixel units
    measurement = pack.nodes__vae_bridge.pixels_to_image(problem.measurement)
    sampler = node().get_sampler(vae=vae, measurement=measurement, operator=problem.operator, **options)[0]
    model = models[family]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    empty = {"samples": torch.zeros(SAMPLES, *pack.testbed__latent_prior.latent_shape(SIZE))}
    no_prompt = [[torch.zeros(1, 1, 1), {}]]
    latents = engine.nodes["SamplerCustom"]().sample(model, True, seed, 1.0, no_prompt, no_prompt, sampler, sigmas,
                                                     empty)[0]["samples"]
    return pack.testbed__reference.Posterior(problem).decode(latents.reshape(len(latents), -1))


def residual_and_psnr(pack, problem, pixels):
    residual = (problem.operator.forward(pixels) - problem.measurement).reshape(len(pixels), -1).norm(dim=1)
    residual = residual / (problem.noise_std * math.sqrt(pack.testbed__reference.measured_count(problem)))
    mean = ((pixels.mean(0) + 1) / 2).clamp(0, 1)
    psnr = -10 * torch.log10((mean - ((problem.truth[0] + 1) / 2).clamp(0, 1)).square().mean())
    return float(residual.mean()), float(psnr)


@pytest.mark.parametrize("family", ["eps", "flow"])
@pytest.mark.parametrize("task,noise_std,psnr_floor", TASKS)
@pytest.mark.parametrize("node_id,overrides", RESTORERS, ids=["ding_pixel", "spin", "dcdp"])
def test_restorers_land_on_the_measurement_through_the_trained_vae(engine, pack, testbed, node_id, overrides, task,
                                                                   noise_std, psnr_floor, family):
    for draw in range(2):
        target = problem(pack, task, noise_std, draw)
        residual, psnr = residual_and_psnr(pack, target, restore(engine, pack, testbed, node_id, overrides, target,
                                                                 family, seed=draw))
        assert 0.8 <= residual <= 1.3, f"draw {draw}: data residual {residual:.2f}"
        assert psnr >= psnr_floor, f"draw {draw}: PSNR of the mean {psnr:.2f} dB"


@pytest.mark.parametrize("node_id", ["InverseSpinSampler", "InverseDCDPSampler"])
def test_without_encoder_correction_the_encoder_error_leaves_the_measurement(engine, pack, testbed, node_id):
    """Why encoder_correction is on by default: Enc(fit) alone carries the encoder's own error."""
    target = problem(pack, "gaussian_blur", 0.05, 0)
    corrected, _ = residual_and_psnr(pack, target, restore(engine, pack, testbed, node_id, {}, target, "eps"))
    plain, _ = residual_and_psnr(pack, target, restore(engine, pack, testbed, node_id,
                                                       {"encoder_correction": False}, target, "eps"))
    assert corrected < 1.3 and plain > 3.0, (corrected, plain)
