"""Spin's and DCDP's data-consistency fits solve what they claim to (issue 8).

* The exact proximal solve (solvers/linear_gaussian.proximal_solve) against explicit matrices.
* The gradient fits (Adam, momentum) stop at their tolerance and report the relative residual they reached.
* Each method at the nodes' defaults, run through ComfyUI's SamplerCustom on the exact oracle, against
  the same method with dense-matrix proximal solves (same schedule, seeds and defaults): within 15% in
  sliced W2 to the exact posterior, EPS and flow, inpainting, blur and super-resolution.
* The all-in-one nodes report in `info` how far the fits got.
"""
import re

import pytest
import torch

from oracle_problems import RESTORE_NOISE, RestoreOracle, dense_proximal_solve, node_defaults, restore_operators

N_SAMPLES = 200
STEPS = 30
TASKS = ("inpaint", "gaussian_blur", "sr_x2")


def spin_defaults(engine):
    knobs = node_defaults(engine.nodes["InverseSpinSampler"])
    knobs["measurement_noise"] = RESTORE_NOISE / 2  # the oracle's σ_y, in the node's 0..1 units
    return knobs


def dcdp_defaults(engine):
    return node_defaults(engine.nodes["InverseDCDPSampler"])


@pytest.mark.parametrize("name", ["identity", "inpaint", "gaussian_blur", "motion_blur", "sr_x2", "sr_box_x2"])
@pytest.mark.parametrize("weight", [0.0, 0.05, 1.0])
def test_proximal_solve_matches_explicit_matrices(pack, generator, name, weight):
    ops, linear_gaussian = pack.solvers.operators, pack.solvers.linear_gaussian
    operators = dict(restore_operators(pack), identity=ops.Identity(), sr_box_x2=ops.Downsample(2, "box"))
    operator = operators[name]
    if weight == 0.0 and name in ("gaussian_blur", "motion_blur"):
        pytest.skip("λ = 0 on a blur is a deconvolution with near-zero singular values: no well-posed reference")
    start = torch.rand(2, 3, 8, 8, generator=generator) * 2 - 1
    y = operator.forward(torch.rand(2, 3, 8, 8, generator=generator) * 2 - 1)
    stats = linear_gaussian.SolveStats()
    solved = linear_gaussian.proximal_solve(operator, start, y, weight, stats, tolerance=1e-6, max_iterations=200)
    reference = dense_proximal_solve(operator, start, y, weight, linear_gaussian.SolveStats())
    torch.testing.assert_close(solved, reference, atol=2e-4, rtol=0)
    assert stats.solves == 1 and stats.worst_residual < 1e-4


def test_proximal_solve_refuses_nonlinear_operators(pack, generator):
    linear_gaussian, ops = pack.solvers.linear_gaussian, pack.solvers.operators
    with pytest.raises(ValueError, match="needs a linear operator"):
        linear_gaussian.proximal_solve(ops.ClipHDR(2.0), torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), 0.1,
                                       linear_gaussian.SolveStats())


@pytest.mark.parametrize("operator_name", ["gaussian_blur", "hdr"])
def test_gradient_fit_stops_at_its_tolerance_and_reports_the_residual(pack, generator, operator_name):
    pixel_fit, linear_gaussian, ops = pack.solvers.pixel_fit, pack.solvers.linear_gaussian, pack.solvers.operators
    operator = ops.ClipHDR(1.5) if operator_name == "hdr" else restore_operators(pack)[operator_name]
    start = torch.rand(2, 3, 8, 8, generator=generator) - 0.5
    y = operator.forward(torch.rand(2, 3, 8, 8, generator=generator) - 0.5)

    def fit(steps, tolerance):
        stats = linear_gaussian.SolveStats()
        x = pixel_fit.fit_to_measurement(start, y, operator, steps, lambda p: torch.optim.Adam(p, lr=0.01), 1.0, 0.5,
                                         tolerance=tolerance, stats=stats)
        return x, stats

    def relative_gradient(x):  # recomputed here by autograd, independently of the fit's bookkeeping
        def gradient(v):
            v = v.clone().requires_grad_(True)
            loss = (operator.forward(v) - y).square().sum() + 0.5 * (v - start).square().sum()
            return torch.autograd.grad(loss, v)[0].flatten(1).norm(dim=1)
        return float((gradient(x) / gradient(start)).max())

    converged, stats = fit(2000, 1e-2)
    assert stats.iterations < 2000 and stats.worst_residual <= 1e-2
    assert relative_gradient(converged) == pytest.approx(stats.worst_residual, rel=1e-3)
    short, short_stats = fit(5, 1e-2)
    assert short_stats.iterations == 5 and short_stats.worst_residual > 1e-2  # an unfinished fit says so
    assert relative_gradient(short) == pytest.approx(short_stats.worst_residual, rel=1e-3)


def spin_sampler(engine, oracle, knobs):
    return engine.nodes["InverseSpinSampler"]().get_sampler(oracle.vae, oracle.measurement, oracle.operator,
                                                            **knobs)[0]


def dcdp_sampler(engine, oracle, knobs):
    return engine.nodes["InverseDCDPSampler"]().get_sampler(oracle.vae, oracle.measurement, oracle.operator,
                                                            **knobs)[0]


METHODS = {"spin": (spin_sampler, spin_defaults, "fit_solver"), "dcdp": (dcdp_sampler, dcdp_defaults, "dc_solver")}


@pytest.mark.parametrize("method", ["spin", "dcdp"])
@pytest.mark.parametrize("prediction", ["eps", "flow"])
@pytest.mark.parametrize("task", TASKS)
def test_defaults_are_within_15_percent_of_the_exact_dense_version(engine, pack, monkeypatch, method, prediction,
                                                                   task):
    make_sampler, defaults, solver_knob = METHODS[method]
    oracle = RestoreOracle(engine, pack, restore_operators(pack)[task], prediction, "identity", N_SAMPLES, STEPS)
    knobs = defaults(engine)
    samples = oracle.sample(make_sampler(engine, oracle, knobs))
    with monkeypatch.context() as patch:  # every proximal solve by explicit matrices, all else unchanged
        patch.setattr(pack.solvers.linear_gaussian, "proximal_solve", dense_proximal_solve)
        dense = oracle.sample(make_sampler(engine, oracle, dict(knobs, **{solver_knob: "cg"})))
    generator = torch.Generator().manual_seed(0)
    distance, dense_distance = oracle.distance(samples, generator), oracle.distance(dense, generator)
    print(f"\n{method} {task} {prediction}: sliced W2 defaults {distance:.4f}, dense exact fits {dense_distance:.4f}, "
          f"floor {oracle.floor:.4f}")
    assert distance <= 1.15 * dense_distance


def test_info_reports_how_far_the_fits_got(engine, pack):
    oracle = RestoreOracle(engine, pack, restore_operators(pack)["gaussian_blur"], "eps", "identity", 1, 12)
    prompt = [[torch.zeros(1, 1, 1), {}]]
    common = (oracle.model, prompt, prompt, oracle.vae, oracle.measurement, oracle.operator, 0, 12, 1.0, "normal")

    def worst_residual(info):
        return float(re.search(r"worst relative residual ([0-9.e+-]+)", info).group(1))
    spin_node, dcdp_node = engine.nodes["InverseSpinRestore"](), engine.nodes["InverseDCDPRestore"]()
    spin_info = spin_node.restore(*common, **spin_defaults(engine))[2]
    assert "CG iterations" in spin_info and worst_residual(spin_info) <= 1e-3
    unfinished = spin_node.restore(*common, **dict(spin_defaults(engine), fit_solver="adam", fit_steps=3))[2]
    assert "Adam steps" in unfinished and worst_residual(unfinished) > 1e-3
    dcdp_info = dcdp_node.restore(*common, **dcdp_defaults(engine))[1]
    assert "CG iterations" in dcdp_info and worst_residual(dcdp_info) <= 1e-3
    momentum = dcdp_node.restore(*common, **dict(dcdp_defaults(engine), dc_solver="momentum", inner_steps=2))[1]
    assert "momentum steps" in momentum and worst_residual(momentum) > 1e-3


def test_exact_fit_on_a_nonlinear_operator_is_a_clear_error(engine, pack):
    oracle = RestoreOracle(engine, pack, restore_operators(pack)["denoise"], "eps", "identity", 1, 12)
    hdr = engine.nodes["InverseOperatorHDRClip"]().build(2.0)[0]
    sampler = engine.nodes["InverseSpinSampler"]().get_sampler(oracle.vae, oracle.measurement, hdr,
                                                               **dict(spin_defaults(engine), fit_solver="cg"))[0]
    with pytest.raises(ValueError, match="fit_solver 'cg' needs a linear operator"):
        oracle.sample(sampler)


def test_solver_defaults_are_the_nodes_defaults(engine, pack):
    """The swept defaults live in two places (the nodes' widgets and the solvers' option classes): the same."""
    spin, dcdp = pack.solvers.spin, pack.solvers.dcdp
    glue = ("warm_start_strength", "tiled_vae")  # the node's, not the solver's: where t* sits, how the VAE runs
    knobs = node_defaults(engine.nodes["InverseSpinSampler"])
    from_node = pack.nodes.spin_nodes.spin_options(**{k: v for k, v in knobs.items() if k not in glue})
    assert from_node == spin.SpinOptions(obs_std=from_node.obs_std)  # σ_y has no solver default: the node's 0.01
    dcdp_knobs = node_defaults(engine.nodes["InverseDCDPSampler"])
    assert dcdp.DCDPOptions(**{k: v for k, v in dcdp_knobs.items() if k not in glue}) == dcdp.DCDPOptions()
