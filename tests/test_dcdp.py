"""Decoupled refinement (DCDP): the exact oracle (Gaussian-mixture prior, lossless RGB autoencoder in
ComfyUI's VAE class) against the naive baselines, and the nodes on tiny models of every family."""
import pytest
import torch

from conftest import cancelling_operator, expect_cancelled_run

from oracle_problems import PixelOracle, pixel_operators

N_SAMPLES = 300
STEPS = 20
# How far below the best naive baseline DCDP must land, per task and purification. Measured (fork, these
# seeds): 4-step ODE 0.40 / 0.75–0.80 / 0.83–0.92 (inpaint / blur / SR), 1 Tweedie step per round 0.31 /
# 0.59 / 0.63–0.68. DCDP is weakest on noisy deblurring and SR, as the spec's third-party table shows.
MARGIN = {"ode": {"inpaint": 0.5, "blur": 0.85, "sr_box_x2": 0.95},
          "tweedie": {"inpaint": 0.4, "blur": 0.7, "sr_box_x2": 0.75}}
DEFAULTS = dict(outer_iterations=10, inner_steps=100, step_size=0.1, proximal_weight=0.0, start_strength=0.7,
                end_strength=0.0, purification="ode", purification_steps=4, dc_solver="momentum",
                skip_final_purification=False)


def dcdp_sampler(engine, vae, measurement, operator, **overrides):
    return engine.nodes["InverseDCDPSampler"]().get_sampler(vae, measurement, operator, **dict(DEFAULTS, **overrides))[0]


@pytest.mark.parametrize("prediction", ["eps", "flow"])
@pytest.mark.parametrize("task", ["inpaint", "blur", "sr_box_x2"])
def test_dcdp_approaches_exact_posterior_better_than_naive_baselines(engine, pack, prediction, task):
    oracle = PixelOracle(engine, pack, pixel_operators(pack)[task], prediction, N_SAMPLES, STEPS)
    noisy = dict(proximal_weight=1.0)  # σ_y > 0: anchor each fit to the purified image (spec B.1, pitfall 3)
    samples = {
        "dcdp (ode, 4 steps)": oracle.sample(dcdp_sampler(engine, oracle.vae, oracle.measurement, oracle.operator,
                                                          **noisy)),
        "dcdp (1 step per round)": oracle.sample(dcdp_sampler(engine, oracle.vae, oracle.measurement, oracle.operator,
                                                              purification="tweedie", **noisy)),
        **oracle.naive_baselines(DEFAULTS["start_strength"])}
    distances = oracle.distances(samples, torch.Generator().manual_seed(0))
    print(f"\n{task} {prediction}: sliced W2 to the exact posterior: "
          + ", ".join(f"{k} {v:.4f}" for k, v in distances.items()))
    best_naive = min(distances["prior"], distances["sdedit"])
    assert distances["dcdp (ode, 4 steps)"] < MARGIN["ode"][task] * best_naive
    assert distances["dcdp (1 step per round)"] < MARGIN["tweedie"][task] * best_naive


def test_cg_solver_matches_the_normal_equations(pack, generator):
    dcdp, ops = pack.solvers.dcdp, pack.solvers.operators
    operator = ops.gaussian_blur(3, 1.0)
    y = torch.randn(1, 3, 8, 8, generator=generator)
    start = torch.randn(1, 3, 8, 8, generator=generator)
    options = dcdp.DCDPOptions(dc_solver="cg", inner_steps=300, proximal_weight=0.5, tolerance=1e-6)
    solution = dcdp.data_consistency(start, y, operator, options, 1.0)
    gradient = operator.adjoint(operator.forward(solution) - y) + 0.5 * (solution - start)
    assert float(gradient.abs().max()) < 1e-4
    momentum = dcdp.data_consistency(start, y, operator, dcdp.DCDPOptions(
        dc_solver="momentum", inner_steps=500, proximal_weight=0.5, step_size=0.1, tolerance=1e-5), 1.0)
    torch.testing.assert_close(momentum, solution, atol=2e-3, rtol=0)


def test_step_is_normalised_by_the_operator_norm(pack, generator):
    dcdp, ops = pack.solvers.dcdp, pack.solvers.operators
    operator = ops.Downsample(4, "box")  # ‖A‖² = 1/16
    assert dcdp.operator_norm_squared(operator, (1, 3, 32, 32), generator) == pytest.approx(1 / 16, rel=1e-3)
    assert dcdp.operator_norm_squared(ops.ClipHDR(2.0), (1, 3, 32, 32), generator) == 1.0


def test_purification_levels_decay_linearly(pack):
    dcdp = pack.solvers.dcdp
    sigmas = torch.linspace(1, 0, 21)
    levels = dcdp.purification_levels(sigmas, dcdp.DCDPOptions(outer_iterations=5, start_strength=0.8, end_strength=0.0))
    assert levels == [4, 8, 12, 16, 19]  # strength 0.8 → index 4 … strength 0 → the last nonzero σ
    options = dcdp.DCDPOptions(outer_iterations=5, purification="tweedie")
    assert dcdp.network_calls(options, sigmas) == 5
    assert dcdp.network_calls(dcdp.DCDPOptions(outer_iterations=5, purification="tweedie",
                                               skip_final_purification=True), sigmas) == 4


@pytest.mark.parametrize("family", ["sd15", "sd2_v", "unet_flow", "sd3", "flux"])
def test_restore_node_on_every_family(engine, tiny, family):
    if family == "flux" and engine.name == "fork":
        pytest.skip("the PyPI fork comfyui==0.0.1 has no Flux model; the Flux cases run on the upstream pass")
    model, _, vae = tiny.TinyCheckpointLoader().load(family, 0)
    image, _ = tiny.TinyLoadImage().load(64, 2)
    operator = engine.nodes["InverseOperatorDownsample"]().build(2, "box")[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(image, operator, 0.01, 0)[0]
    cond = tiny.tiny_conditioning("a")
    restored, info = engine.nodes["InverseDCDPRestore"]().restore(
        model, cond, cond, vae, measurement, operator, 0, 6, 1.0, "normal",
        **dict(DEFAULTS, outer_iterations=2, inner_steps=3, purification_steps=2))
    assert restored.shape == image.shape and torch.isfinite(restored).all() and "network calls" in info


def test_seeds_cg_skip_final_and_untouched_inputs(engine):
    model, vae, faces, masks, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 2)
    operator = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(faces, operator, 0.0, 0)[0]
    measurement_copy = measurement.clone()
    node = engine.nodes["InverseDCDPRestore"]()

    def restore(seed, **overrides):
        options = dict(DEFAULTS, outer_iterations=3, inner_steps=20, **overrides)
        return node.restore(model, cond, cond, vae, measurement, operator, seed, 10, 1.0, "normal", **options)[0]
    first = restore(1)
    assert torch.equal(first, restore(1)) and not torch.equal(first, restore(2))
    skipped = restore(1, skip_final_purification=True, dc_solver="cg")
    fitted = engine.nodes["InverseDegradeImage"]().degrade(skipped, operator, 0.0, 0)[0]
    assert (fitted - measurement).abs().mean() < (engine.nodes["InverseDegradeImage"]().degrade(
        first, operator, 0.0, 0)[0] - measurement).abs().mean()  # ending on a fit fits the measurement closer
    assert torch.equal(measurement, measurement_copy)


def test_errors_and_interruption_inside_the_fit(engine):
    model, vae, faces, masks, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 1)
    hdr = engine.nodes["InverseOperatorHDRClip"]().build(2.0)[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(faces, hdr, 0.0, 0)[0]
    node = engine.nodes["InverseDCDPRestore"]()
    with pytest.raises(ValueError, match="dc_solver 'cg' needs a linear operator"):
        node.restore(model, cond, cond, vae, measurement, hdr, 0, 10, 1.0, "normal", **dict(DEFAULTS, dc_solver="cg"))

    operator, calls = cancelling_operator(hdr, "forward", 5)
    with expect_cancelled_run():
        node.restore(model, cond, cond, vae, measurement, operator, 0, 10, 1.0, "normal", **DEFAULTS)
    assert calls["n"] == 5
