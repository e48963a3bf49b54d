"""What a restoration run costs and reports (issue 17): every network call and VAE pass counted in `info`
and checked against counters on the model and the VAE themselves; the VAE in tiles for big images, agreeing
with the untiled step; the linear solves converging at the node defaults."""
import re
import sys
from pathlib import Path

import pytest
import torch

from test_robustness import faces
from oracle_problems import node_defaults
from test_robustness_round3 import DING_RESTORE_OPTIONS

WORK = re.compile(r"(\d+) network calls, (\d+) VAE passes \((\d+) decodes, (\d+) encodes\)")
EXACT_FINAL_WORK = re.compile(r"(\d+) VAE passes \((\d+) decodes, (\d+) encodes, (\d+) decoder JVPs, (\d+) decoder VJPs\)")


class Counted:
    """Counts the calls of one method of one object (an instance attribute shadows the class's method)."""

    def __init__(self, owner, name):
        self.calls, original = 0, getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)
        setattr(owner, name, counted)


def counted_faces(engine):
    model, vae, images, masks, cond = faces(engine)
    counters = {"network": Counted(model.model.diffusion_model, "exact_denoised"),
                "decode": Counted(vae.first_stage_model, "decode"), "encode": Counted(vae.first_stage_model, "encode")}
    return model, vae, images, cond, counters


def run_all_in_one(engine, node_id, model, vae, measurement, operator, cond, **overrides):
    node = engine.nodes[node_id]
    options = {**node_defaults(node), "steps": 6, "cfg": 1.0, "seed": 0, **overrides}
    return getattr(node(), node.FUNCTION)(model=model, positive=cond, negative=cond, vae=vae,
                                          measurement=measurement, operator=operator, **options)[-1]


@pytest.mark.parametrize("node_id,overrides", [("InverseDInGRestore", {}), ("InverseDInGRestore", {"variant": "ding"}),
                                               ("InverseDInGRestore", {"variant": "delayed"}),
                                               ("InverseDInGRestore", {"latent_solver": "pixel"}),
                                               ("InverseSpinRestore", {}), ("InverseDCDPRestore", {})])
def test_info_counts_every_network_call_and_vae_pass(engine, node_id, overrides):
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    info = run_all_in_one(engine, node_id, model, vae, images, blur, cond, **overrides)
    calls, passes, decodes, encodes = map(int, WORK.search(info).groups())
    assert (calls, decodes, encodes) == (counters["network"].calls, counters["decode"].calls,
                                         counters["encode"].calls), info
    assert passes == decodes + encodes and calls > 0 and decodes > 0


def test_the_benchmarks_count_the_network_calls_spin_and_dcdp_make(engine):
    """The NFE columns of the benchmarks come from these counts, at the node defaults, every widget included."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_compare import dcdp_calls
    from bench_spin import spin_calls
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    for node_id, benchmark_count in (("InverseSpinRestore", spin_calls), ("InverseDCDPRestore", dcdp_calls)):
        scheduler = node_defaults(engine.nodes[node_id])["scheduler"]
        sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, scheduler, 6, 1.0)[0]
        before = counters["network"].calls
        run_all_in_one(engine, node_id, model, vae, images, blur, cond)
        assert benchmark_count(engine, sigmas) == counters["network"].calls - before, node_id


def test_the_pixel_solver_costs_two_decodes_and_two_encodes_per_step(engine):
    """latent_solver pixel: 2 decodes and 2 encodes per step."""
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    info = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur, cond, steps=6,
                          latent_solver="pixel")
    # 5 transitions at 2 + 2; the final Gauss-Newton fit: 3 linearizations (a decode and, for the adjoint, 2
    # encodes each) and 2 re-linearized models (a decode each); the gain probe; the node's last decode
    assert WORK.search(info).group(3, 4) == (str(5 * 2 + 3 + 2 + 1 + 1), str(5 * 2 + 3 * 2))


def fitted_probes(pack, vae, images):
    """Probe decodes per refit of the fitted solver at these images' latent size (one encode, counted)."""
    latent = vae.encode(images[..., :3])
    surrogate = pack.solvers.decoder_surrogate.LocalLinearDecoder(latent.shape[1], images.shape[1] // latent.shape[2])
    return surrogate.probes_needed(latent.shape)


def test_the_fitted_solver_costs_one_decode_per_step_and_no_encode(engine, pack):
    """latent_solver fitted (the default), every step decoded: a decode per linearization (5 transitions and the
    final fit's single Gauss–Newton step), the probes of a refit at the 1st and 5th linearization, the node's last
    decode; no encoder, no autograd."""
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    info = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur, cond, steps=6,
                          predict_above_noise=0.0, decode_every=1)
    probes = fitted_probes(pack, vae, images)
    decodes, encodes = map(int, WORK.search(info).group(3, 4))
    assert (decodes, encodes) == (5 + 1 + 2 * probes + 1, 0), info
    assert counters["encode"].calls == 1   # fitted_probes' latent


def test_fitted_steps_above_predict_above_noise_skip_their_decode(engine, pack):
    """predict_above_noise: a fitted transition to a noise level above it predicts the decoded image from the
    fitted model instead of decoding (the first transition always decodes); the decoded ones refit every 4th."""
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 6, 1.0)[0].tolist()
    threshold = sigmas[3]   # the face prior is an EPS model: its sigma is the noise-to-signal ratio
    predicted = sum(1 for sigma in sigmas[2:-1] if sigma > threshold)
    assert 0 < predicted < 4
    probes = fitted_probes(pack, vae, images)
    infos = {}
    for predict_above_noise, skipped in ((threshold, predicted), (0.0, 0)):
        info = infos[predict_above_noise] = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur,
                                                           cond, steps=6, predict_above_noise=predict_above_noise,
                                                           decode_every=1)
        decoded = 5 - skipped + 1   # the transitions that decode, and the final fit
        refits = len(range(0, decoded, 4))
        assert tuple(map(int, WORK.search(info).group(3, 4))) == (decoded + refits * probes + 1, 0), info
    assert f", fitted, predicted above noise {threshold:g}):" in infos[threshold]
    assert ", fitted):" in infos[0.0]


def test_fitted_decode_every_n_decodes_one_step_in_n_below_predict_above_noise(engine, pack):
    """decode_every n: of the fitted transitions below predict_above_noise, the 1st, (n+1)-th, ... decode and the
    others predict the decoded image from the fitted model; the final fit always decodes."""
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    probes = fitted_probes(pack, vae, images)
    for decode_every, decoded_transitions in ((2, 3), (3, 2), (10, 1)):   # of 5: 1st 3rd 5th / 1st 4th / 1st
        info = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur, cond, steps=6,
                              predict_above_noise=0.0, decode_every=decode_every)
        linearizations = decoded_transitions + 1
        refits = len(range(0, linearizations, 4))
        assert tuple(map(int, WORK.search(info).group(3, 4))) == (linearizations + refits * probes + 1, 0), info
        assert f", fitted, 1 in {decode_every} steps decoded below):" in info


def test_the_exact_final_fit_costs_one_decode_and_a_jvp_and_vjp_per_cg_iteration(engine):
    """final_fit exact: the steps as above, the last fit through the decoder's derivatives: one decode with its
    graph, per CG iteration a JVP and a VJP, and the VJP of the result."""
    model, vae, images, cond, counters = counted_faces(engine)   # (the decoder's counter sees every JVP too)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    info = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur, cond, steps=6,
                          latent_solver="pixel", final_fit="exact")
    passes, decodes, encodes, jvps, vjps = map(int, EXACT_FINAL_WORK.search(info).groups())
    # 5 transitions at 2 + 2, the gain probe, the node's last decode, and the final fit's decode with its graph
    assert (decodes, encodes) == (5 * 2 + 1 + 1 + 1, 5 * 2) and counters["encode"].calls == encodes, info
    assert jvps >= 1 and vjps == jvps + 1 and passes == decodes + encodes + jvps + vjps, info


def test_the_fitted_solver_takes_an_exact_final_fit_too(engine, pack):
    """latent_solver fitted with final_fit exact: the fitted transitions (a decode each, the probes of a refit
    at the 1st and 5th), then the last fit through the decoder's derivatives (a decode with its graph, a JVP
    and a VJP per CG iteration, the VJP of the result); still no encoder."""
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    info = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur, cond, steps=6,
                          latent_solver="fitted", final_fit="exact", predict_above_noise=0.0,
                          decode_every=1)
    probes = fitted_probes(pack, vae, images)
    passes, decodes, encodes, jvps, vjps = map(int, EXACT_FINAL_WORK.search(info).groups())
    assert (decodes, encodes) == (5 + 2 * probes + 1 + 1, 0), info
    assert jvps >= 1 and vjps == jvps + 1 and passes == decodes + jvps + vjps, info
    assert ", fitted, exact final fit):" in info


def test_exact_low_noise_steps_cost_one_decode_and_no_encode_each(engine):
    """exact_below_noise: the transitions to a noise level below it go through the decoder's derivatives, like
    the final fit (a decode with its graph, a JVP and a VJP per CG iteration); the others stay at 2 + 2."""
    model, vae, images, cond, counters = counted_faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 6, 1.0)[0].tolist()
    threshold = sigmas[3]   # the face prior is an EPS model: its sigma is the noise-to-signal ratio
    below = sum(1 for sigma in sigmas[1:-1] if sigma < threshold)
    assert 0 < below < 5
    info = run_all_in_one(engine, "InverseDInGRestore", model, vae, images, blur, cond, steps=6,
                          latent_solver="pixel", exact_below_noise=threshold)
    passes, decodes, encodes, jvps, vjps = map(int, EXACT_FINAL_WORK.search(info).groups())
    above = 5 - below
    # the pixel transitions, the gain probe, the node's last decode, one decode per exact transition and the final's
    assert (decodes, encodes) == (above * 2 + 1 + 1 + below + 1, above * 2) and counters["encode"].calls == encodes
    # per CG iteration a JVP and a VJP; each exact transition one JVP more (its right-hand side) and one VJP more
    # (the step itself), the final fit only the VJP
    assert vjps == jvps + 1 and jvps >= 2 * below + 1 and passes == decodes + encodes + jvps + vjps, info
    assert f"exact below noise {threshold:g} and final fit" in info


def test_sparse_exact_steps_cost_what_network_calls_says(pack):
    ding = pack.solvers.ding
    param = pack.solvers.parameterisation.VE
    sigmas = [14.6, 6.0, 3.0, 1.5, 0.7, 0.3, 0.1, 0.0]
    calls = []

    def denoise(x, sigma):
        calls.append(sigma)
        return 0.5 * x / (1.0 + sigma ** 2)
    for exact_every in (1, 2, 3):
        for variant in ding.VARIANTS:
            calls.clear()
            observation = ding.MaskObservation(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), 0.01)
            ding.sample_posterior(denoise, torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0)),
                                  sigmas, observation, param, torch.Generator().manual_seed(1), variant=variant,
                                  exact_every=exact_every)
            assert len(calls) == ding.network_calls(sigmas, variant, exact_every)
    assert ding.conditioned_steps(sigmas, 3) == {6, 5, 2}   # final, last transition, every 3rd back from it
    with pytest.raises(ValueError, match="exact_every must be at least 1"):
        ding.conditioned_steps(sigmas, 0)


def test_frozen_proxy_is_ding_with_the_proxys_denoiser_held_at_the_steps_estimate(pack):
    """variant frozen_proxy draws DInG's proxy z and reads its noise as (z − a_s·x̂0)/b_s, x̂0 the step's own estimate,
    instead of calling the network at z: for a denoiser whose output does not depend on its input the two are the
    same draw for draw (the same random numbers), at one call per transition instead of two."""
    ding = pack.solvers.ding
    param = pack.solvers.parameterisation.VE
    sigmas = [14.6, 6.0, 3.0, 1.5, 0.7, 0.3, 0.1, 0.0]
    constant = torch.tensor([[[[0.4, -0.2], [0.1, 0.3]]]])

    def run(variant, denoise):
        calls = []
        observation = ding.MaskObservation(torch.full((1, 1, 2, 2), 0.3), torch.tensor([[[[1.0, 0.0], [1.0, 0.5]]]]),
                                           0.5)
        sample = ding.sample_posterior(lambda x, sigma: calls.append(sigma) or denoise(x, sigma),
                                       torch.randn(1, 1, 2, 2, generator=torch.Generator().manual_seed(0)), sigmas,
                                       observation, param, torch.Generator().manual_seed(1), variant=variant)
        return sample, len(calls)
    (ding_sample, ding_calls), (frozen_sample, frozen_calls) = (run(v, lambda x, s: constant.clone())
                                                                for v in ("ding", "frozen_proxy"))
    assert torch.allclose(frozen_sample, ding_sample, atol=1e-6) and (ding_calls, frozen_calls) == (13, 7)
    shrink = lambda x, sigma: 0.5 * x / (1.0 + sigma ** 2)  # a denoiser that reads its input: the two differ
    assert not torch.allclose(run("frozen_proxy", shrink)[0], run("ding", shrink)[0], atol=1e-3)


# --- big images: the VAE in tiles ------------------------------------------------------------------

def test_auto_tiles_above_1280_squared(pack):
    use_tiles = pack.nodes.vae_bridge.use_tiles
    assert use_tiles("auto", 2048, 2048) and not use_tiles("auto", 1024, 1024)
    assert use_tiles("on", 16, 16) and not use_tiles("off", 4096, 4096)
    with pytest.raises(ValueError, match="tiled_vae must be one of"):
        use_tiles("sometimes", 8, 8)


def set_tiles(pack, monkeypatch, decode_tile, decode_overlap, encode_tile, encode_overlap):
    bridge = pack.nodes.vae_bridge
    for name, value in [("DECODE_TILE", decode_tile), ("DECODE_OVERLAP", decode_overlap), ("ENCODE_TILE", encode_tile),
                        ("ENCODE_OVERLAP", encode_overlap)]:
        monkeypatch.setattr(bridge, name, value)


def test_tiled_and_untiled_steps_agree_through_a_local_vae(engine, pack, monkeypatch):
    """The demo's VAE is per pixel, so tiles (here 8 px, cutting the 25x25 faces into several) must
    reproduce the untiled run to float precision (x5 box SR: closed-form solves, so no unconverged
    iteration amplifies rounding)."""
    set_tiles(pack, monkeypatch, 8, 2, 16, 4)
    model, vae, images, cond, counters = counted_faces(engine)
    tiled_calls = Counted(vae, "decode_tiled")
    sr = engine.nodes["InverseOperatorDownsample"]().build(5, "box")[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(images, sr, 0.01, 0)[0]
    out = {}
    for mode in ("off", "on"):
        node = engine.nodes["InverseDInGRestore"]
        with torch.inference_mode():  # as in ComfyUI's executor (the fork's tiled passes need it)
            out[mode] = node().restore(model, cond, cond, vae, measurement, sr, 0, 4, 1.0, "normal",
                                       **dict(DING_RESTORE_OPTIONS, tiled_vae=mode))[0]
    assert tiled_calls.calls > 4  # every step decoded in tiles
    torch.testing.assert_close(out["on"], out["off"], atol=1e-4, rtol=0)


def test_the_fitted_solvers_unclamped_decodes_match_vae_decode_tiled_or_not(engine, pack, monkeypatch):
    """latent_solver fitted decodes through the VAE's decoder without VAE.decode's clamp to 0..1, in ComfyUI's
    tiles when big: on the demo's per-pixel VAE, where nothing reaches the clamp, both equal VAE.decode, and a
    latent pushed past white decodes past 1 instead of stopping there."""
    set_tiles(pack, monkeypatch, 8, 2, 16, 4)
    model, vae, images, cond, counters = counted_faces(engine)
    latent_format = model.model.latent_format
    utils, tiled_calls = pack.nodes.comfy_compat.comfy.utils, []
    original = utils.tiled_scale
    monkeypatch.setattr(utils, "tiled_scale", lambda *args, **kwargs: tiled_calls.append(1) or original(*args, **kwargs))
    with torch.inference_mode():
        raw = vae.encode(images[..., :3])
        latent = latent_format.process_in(raw)
        expected = vae.decode(raw).movedim(-1, 1) * 2 - 1
        codecs = {mode: pack.nodes.vae_bridge.LatentCodec(vae, latent_format, model, torch.device("cpu"), 0,
                                                          tiled=mode) for mode in ("off", "on")}
        decoded = {mode: codec.decode_unclamped(latent) for mode, codec in codecs.items()}
        brighter = codecs["off"].decode_unclamped(
            latent_format.process_in(vae.encode(torch.ones_like(images[..., :3]))) * 1.5)
    assert len(tiled_calls) == 1
    for mode, pixels in decoded.items():
        torch.testing.assert_close(pixels, expected.float(), atol=1e-4, rtol=0, msg=mode)
    assert float(brighter.max()) > 1.2


def test_tiled_and_untiled_vae_passes_stay_close_through_the_trained_testbed_vae(engine, pack, monkeypatch):
    """A trained convolutional VAE with GroupNorm sees other statistics and less context in a tile:
    ComfyUI blends three tilings. With tiles of half the image (128 px on a 256 px photo; the codec's
    are 512 px) the passes measured 12% (decode) and 14% (encode) off the untiled ones, relative."""
    set_tiles(pack, monkeypatch, 16, 4, 128, 32)
    vae = pack.testbed.vae.load_testbed_vae()
    image = pack.testbed.photos.photo("chelsea")[:, :256, :256].movedim(0, -1)[None].contiguous()
    bridge = pack.nodes.vae_bridge
    with torch.inference_mode():
        latent = bridge.encode(vae, image, "off")
        pairs = [(bridge.decode(vae, latent, "on"), bridge.decode(vae, latent, "off")),
                 (bridge.encode(vae, image, "on"), latent)]
    for tiled, untiled in pairs:
        assert tiled.shape == untiled.shape
        assert float((tiled - untiled).norm() / untiled.norm()) < 0.2


# --- solves that converge --------------------------------------------------------------------------

WORST = re.compile(r"worst relative residual ([0-9.e+-]+)(?: \(at σ >= 1; ([0-9.e+-]+) below\))?")


@pytest.mark.parametrize("operator_node,inputs", [("InverseOperatorGaussianBlur", {"kernel_size": 9, "std": 2.0}),
                                                  ("InverseOperatorDownsample", {"factor": 5, "mode": "bicubic"}),
                                                  ("InverseOperatorMotionBlur", {"kernel_size": 9, "seed": 0})])
def test_ding_restore_solves_converge_below_sigma_one_at_the_node_defaults(engine, operator_node, inputs):
    """Where the image outweighs the noise (σ < 1) every solve reaches 1e-2 at the node defaults, with the
    default fitted solver and with pixel, and info says where the worst one was (above σ = 1 the blur systems
    reach κ ~ 10⁵; there 10× the iterations changed no measured distance to the posterior: docs/benchmarks.md)."""
    model, vae, images, cond, _ = counted_faces(engine)
    operator = engine.nodes[operator_node]().build(**inputs)[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(images, operator, 0.01, 0)[0]
    for latent_solver in ("fitted", "pixel"):
        info = run_all_in_one(engine, "InverseDInGRestore", model, vae, measurement, operator, cond, steps=20,
                              latent_solver=latent_solver)
        print(info)
        worst, below = WORST.search(info).groups()
        assert float(below if below is not None else worst) <= 1e-2, info
