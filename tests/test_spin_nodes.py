"""Spin and the operator nodes inside ComfyUI: every model family, SamplerCustom(Advanced),
batches, seeds, interruption inside the pixel fit, clear errors."""
import comfy.model_management
import pytest
import torch

from conftest import cancelling_operator, expect_cancelled_run

SPIN_OPTIONS = dict(warm_start_strength=0.6, warm_start_iterations=2, guided_steps=2, guidance_end=0.6, fit_steps=5,
                    fit_lr=0.05, proximity=1.0, measurement_noise=0.01, renoise="stochastic")


def tiny_family(engine, tiny, family):
    if family == "flux" and engine.name == "fork":
        pytest.skip("the PyPI fork comfyui==0.0.1 has no Flux model; the Flux cases run on the upstream pass")
    return tiny.TinyCheckpointLoader().load(family, 0)


def restore(engine, model, vae, measurement, operator, cond, seed=0, steps=5, **overrides):
    return engine.nodes["InverseSpinRestore"]().restore(model, cond, cond, vae, measurement, operator, seed, steps, 1.0,
                                                       "normal", **dict(SPIN_OPTIONS, **overrides))


def degrade(engine, image, operator, noise=0.01, seed=0):
    return engine.nodes["InverseDegradeImage"]().degrade(image, operator, noise, seed)[0]


@pytest.mark.parametrize("family", ["sd15", "sd2_v", "unet_flow", "sd3", "flux"])
def test_spin_sampler_in_sampler_custom_and_advanced(engine, tiny, family):
    model, _, vae = tiny_family(engine, tiny, family)
    image, _ = tiny.TinyLoadImage().load(64, 2)
    operator = engine.nodes["InverseOperatorDownsample"]().build(4, "bicubic")[0]
    measurement = degrade(engine, image, operator)
    assert measurement.shape == (2, 16, 16, 3)
    cond = tiny.tiny_conditioning("a")
    options = dict(SPIN_OPTIONS)
    strength = options.pop("warm_start_strength")
    sampler = engine.nodes["InverseSpinSampler"]().get_sampler(vae, measurement, operator, strength, **options)[0]
    latent = {"samples": torch.zeros(2, model.model.latent_format.latent_channels, 8, 8)}
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 5, 1.0)[0]
    out, _ = engine.nodes["SamplerCustom"]().sample(model, True, 3, 1.0, cond, cond, sampler, sigmas, latent)
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    guider = engine.nodes["CFGGuider"]().get_guider(model, cond, cond, 1.0)[0]
    advanced, _ = engine.nodes["SamplerCustomAdvanced"]().sample(
        engine.nodes["RandomNoise"]().get_noise(3)[0], guider, sampler, sigmas, latent)
    # bit-exact on the CPU; CUDA's atomic-add backward of the bicubic resize (inside the pixel fit) is not deterministic
    on_gpu = comfy.model_management.get_torch_device().type == "cuda"
    torch.testing.assert_close(advanced["samples"], out["samples"], atol=0.05 if on_gpu else 1e-5, rtol=0)


@pytest.mark.parametrize("operator_node, args", [
    ("InverseOperatorGaussianBlur", (5, 1.5)), ("InverseOperatorMotionBlur", (7, 3)),
    ("InverseOperatorDenoise", ()), ("InverseOperatorHDRClip", (2.0,)),
    ("InverseOperatorJPEG", (10, True, "straight-through"))])
def test_restore_node_runs_every_operator(engine, tiny, operator_node, args):
    model, _, vae = tiny_family(engine, tiny, "sd15")
    image, _ = tiny.TinyLoadImage().load(64, 1)
    operator = engine.nodes[operator_node]().build(*args)[0]
    restored, latent, info = restore(engine, model, vae, degrade(engine, image, operator), operator,
                                     tiny.tiny_conditioning("x"))
    assert restored.shape == image.shape and torch.isfinite(restored).all() and "network calls" in info


def test_spin_inpainting_with_a_mask_per_image_and_reproducible_seeds(engine, tiny):
    model, vae, faces, masks, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("flow", 4)
    faces_copy, masks_copy = faces.clone(), masks.clone()
    operator = engine.nodes["InverseOperatorInpaint"]().build(masks)[0]
    measurement = degrade(engine, faces, operator, noise=0.0)
    first = restore(engine, model, vae, measurement, operator, cond, seed=5, steps=10)[0]
    again = restore(engine, model, vae, measurement, operator, cond, seed=5, steps=10)[0]
    other = restore(engine, model, vae, measurement, operator, cond, seed=6, steps=10)[0]
    assert first.shape == faces.shape
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(faces, faces_copy) and torch.equal(masks, masks_copy)
    known = (masks == 0)[..., None].expand_as(faces)
    assert (first - faces)[known].abs().mean() < (first - faces)[~known].abs().mean()


@pytest.mark.parametrize("fit_solver", ["auto", "adam"])  # the exact (CG) fit and the gradient fit
def test_interrupt_is_checked_inside_the_pixel_fit(engine, pack, fit_solver):
    model, vae, faces, masks, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 1)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    measurement = degrade(engine, faces, blur)

    operator, calls = cancelling_operator(blur, "forward", 3)  # inside the first pixel fit
    with expect_cancelled_run():
        restore(engine, model, vae, measurement, operator, cond, fit_steps=50, fit_solver=fit_solver)
    assert calls["n"] == 3  # stopped at the next check, inside the fit loop


def test_clear_errors(engine, tiny):
    model, vae, faces, masks, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 2)
    sr = engine.nodes["InverseOperatorDownsample"]().build(4, "box")[0]
    with pytest.raises(ValueError, match="image: size 25x25 is not a multiple of the downsampling factor 4"):
        degrade(engine, faces, sr)
    with pytest.raises(ValueError, match="vae: a VAE is required"):
        restore(engine, model, None, faces, sr, cond)
    options = dict(SPIN_OPTIONS)
    strength = options.pop("warm_start_strength")
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    sampler = engine.nodes["InverseSpinSampler"]().get_sampler(vae, faces[:, :20, :20], blur, strength, **options)[0]
    latent = {"samples": torch.zeros(2, 1, 25, 25)}
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 4, 1.0)[0]
    with pytest.raises(ValueError, match="measurement: size 20x20 does not fit gaussian blur"):
        engine.nodes["SamplerCustom"]().sample(model, True, 0, 1.0, cond, cond, sampler, sigmas, latent)
    sampler = engine.nodes["InverseSpinSampler"]().get_sampler(vae, faces.repeat(2, 1, 1, 1)[:3], blur, strength, **options)[0]
    with pytest.raises(ValueError, match="measurement: batch of 3 images for a latent batch of 2"):
        engine.nodes["SamplerCustom"]().sample(model, True, 0, 1.0, cond, cond, sampler, sigmas, latent)
    inpaint = engine.nodes["InverseOperatorInpaint"]().build(masks[:, :24, :24])[0]
    with pytest.raises(ValueError, match="does not match the inpainting mask 24x24"):
        degrade(engine, faces, inpaint)
    with pytest.raises(ValueError, match="kernel_size: must be odd"):
        engine.nodes["InverseOperatorGaussianBlur"]().build(4, 1.0)


def test_noise_estimate_node_reads_a_degraded_image(engine):
    identity = engine.nodes["InverseOperatorDenoise"]().build()[0]
    flat = torch.full((2, 128, 128, 3), 0.5)
    noisy = degrade(engine, flat, identity, noise=0.05, seed=1)
    value, info = engine.nodes["InverseEstimateNoise"]().estimate(noisy)  # pixel units in, pixel units out
    assert value == pytest.approx(0.05, rel=0.05) and info.count("0.0") == 2


def test_no_autograd_graph_through_model_or_vae_outside_inference_mode(engine, tiny):
    """Called from a script (grad mode on, weights requiring grad), the samplers still build no graph."""
    model, _, vae = tiny_family(engine, tiny, "sd15")
    assert any(p.requires_grad for p in model.model.parameters())
    image, mask = tiny.TinyLoadImage().load(64, 1)
    operator = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    cond = tiny.tiny_conditioning("a")
    with torch.enable_grad():
        restored, latent, _ = restore(engine, model, vae, degrade(engine, image, operator), operator, cond)
        assert not latent["samples"].requires_grad
        sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0]
        masked = engine.nodes["SetLatentNoiseMask"]().set_mask(engine.nodes["VAEEncode"]().encode(vae, image)[0], mask)[0]
        sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 3, 1.0)[0]
        out, _ = engine.nodes["SamplerCustom"]().sample(model, True, 0, 1.0, cond, cond, sampler, sigmas, masked)
        assert not out["samples"].requires_grad


def test_progress_bar_covers_the_warm_start(engine, tiny):
    """ComfyUI's bar counts the schedule's steps; Spin's warm-start rounds advance it too, and it ends full."""
    import comfy.sample
    model, _, vae = tiny_family(engine, tiny, "sd15")
    image, _ = tiny.TinyLoadImage().load(32, 1)
    operator = engine.nodes["InverseOperatorDownsample"]().build(2, "box")[0]
    measurement = degrade(engine, image, operator)
    options = dict(SPIN_OPTIONS, warm_start_iterations=4)
    strength = options.pop("warm_start_strength")
    sampler = engine.nodes["InverseSpinSampler"]().get_sampler(vae, measurement, operator, strength, **options)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 10, 1.0)[0]
    latent = torch.zeros(1, 4, 4, 4)
    seen = []
    cond = tiny.tiny_conditioning("a")
    comfy.sample.sample_custom(model, torch.zeros_like(latent), 1.0, sampler, sigmas, cond, cond, latent,
                               callback=lambda i, x0, x, total: seen.append((i, total)), seed=0)
    steps = [i for i, _ in seen]
    assert len(seen) == 4 + 6 and all(total == 10 for _, total in seen)  # 4 warm-start rounds + 6 steps from t*
    assert steps == sorted(steps) and steps[-1] == 9 and steps[3] >= 2   # the warm start filled a share of the bar
