"""The silent and the deep-torch cases of issue 9: bad noise masks on the DInG SAMPLER path, degenerate
schedules and strengths, errors that name the socket, interruption inside DCDP's purification ODE,
and the harness's temporary folder."""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import expect_cancelled_run, press_cancel

REPO_ROOT = Path(__file__).resolve().parent.parent
SPIN_OPTIONS = dict(warm_start_strength=0.6, warm_start_iterations=1, guided_steps=1, guidance_end=0.6, fit_steps=2,
                    fit_lr=0.05, proximity=1.0, measurement_noise=0.01, renoise="stochastic")
DCDP_OPTIONS = dict(outer_iterations=2, inner_steps=2, step_size=0.1, proximal_weight=0.0, start_strength=0.7,
                    end_strength=0.0, purification="ode", purification_steps=2, dc_solver="momentum",
                    skip_final_purification=False)
DING_OPTIONS = dict(seed=3, steps=3, cfg=1.0, scheduler="normal", denoise=1.0, variant="ding", eta_schedule="fm_square",
                    eta_scale=1.0, obs_std=0.01, mask_mode="threshold", mask_threshold=0.95, mask_grow=0,
                    mask_feather=0.0, paste_back=False, paste_feather=4.0)


def faces(engine, prediction="eps", count=2):
    """model, vae, faces, masks, conditioning of the demo loader (its masked latent left out)."""
    return engine.nodes["InverseFacePriorLoader"]().load(prediction, count)[:5]


def spin_restore(engine, model, vae, measurement, operator, cond, steps=5, **overrides):
    return engine.nodes["InverseSpinRestore"]().restore(model, cond, cond, vae, measurement, operator, 0, steps, 1.0,
                                                       "normal", **dict(SPIN_OPTIONS, **overrides))


def dcdp_restore(engine, model, vae, measurement, operator, cond, steps=5, **overrides):
    return engine.nodes["InverseDCDPRestore"]().restore(model, cond, cond, vae, measurement, operator, 0, steps, 1.0,
                                                       "normal", **dict(DCDP_OPTIONS, **overrides))


def ding_inpaint(engine, model, vae, image, mask, cond, **overrides):
    return engine.nodes["InverseDInGInpaint"]().inpaint(model, cond, cond, vae, image, mask,
                                                       **dict(DING_OPTIONS, **overrides))


def spin_sampler(engine, vae, measurement, operator, **overrides):
    options = dict(SPIN_OPTIONS, **overrides)
    strength = options.pop("warm_start_strength")
    return engine.nodes["InverseSpinSampler"]().get_sampler(vae, measurement, operator, strength, **options)[0]


def dcdp_sampler(engine, vae, measurement, operator, **overrides):
    return engine.nodes["InverseDCDPSampler"]().get_sampler(vae, measurement, operator,
                                                            **dict(DCDP_OPTIONS, **overrides))[0]


def sampler_custom(engine, model, sampler, steps, latent, cond):
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", steps, 1.0)[0]
    return engine.nodes["SamplerCustom"]().sample(model, True, 0, 1.0, cond, cond, sampler, sigmas, latent)


# 1. the DInG SAMPLER path checks the noise mask it receives

def _hole_of_two(masks):
    return masks * 2.0


def _negative(masks):
    return masks - 0.5


def _nan_in_known_region(masks):
    broken = masks.clone()
    known = (broken[0] == 0).nonzero()[0]
    broken[0, known[0], known[1]] = float("nan")
    return broken


@pytest.mark.parametrize("corrupt", [_hole_of_two, _negative, _nan_in_known_region])
def test_ding_sampler_rejects_a_noise_mask_outside_zero_one(engine, corrupt):
    model, vae, images, masks, cond = faces(engine)
    bad = corrupt(masks)
    bad_copy = bad.clone()
    latent = engine.nodes["SetLatentNoiseMask"]().set_mask(engine.nodes["VAEEncode"]().encode(vae, images)[0], bad)[0]
    sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0]
    with pytest.raises(ValueError, match=r"latent_image noise_mask \(from SetLatentNoiseMask / "
                                         r"InpaintModelConditioning\).*\[0, 1\]"):
        sampler_custom(engine, model, sampler, 3, latent, cond)
    assert torch.equal(torch.nan_to_num(bad, nan=-7.0), torch.nan_to_num(bad_copy, nan=-7.0))  # untouched


# 2. degenerate schedules and strengths

def test_sampler_forms_refuse_a_one_step_schedule(engine):
    model, vae, images, masks, cond = faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    latent = {"samples": torch.zeros(2, 1, 25, 25)}
    with pytest.raises(ValueError, match=r"sigmas: .*1 step.*sigma_max.*at least 2 steps"):
        sampler_custom(engine, model, spin_sampler(engine, vae, images, blur), 1, latent, cond)
    with pytest.raises(ValueError, match=r"sigmas: .*1 step.*sigma_max.*at least 2 steps"):
        sampler_custom(engine, model, dcdp_sampler(engine, vae, images, blur), 1, latent, cond)


def test_spin_warns_when_the_schedule_leaves_no_step_to_guide(engine, caplog):
    model, vae, images, masks, cond = faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    latent = {"samples": torch.zeros(2, 1, 25, 25)}
    with caplog.at_level("WARNING"):
        sampler_custom(engine, model, spin_sampler(engine, vae, images, blur, guided_steps=2), 2, latent, cond)
    assert "no reverse step gets a correction" in caplog.text


def test_dcdp_rejects_end_strength_above_start_strength(engine):
    model, vae, images, masks, cond = faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    message = r"end_strength \(0.8\) is above start_strength \(0.3\)"
    with pytest.raises(ValueError, match=message):
        dcdp_restore(engine, model, vae, images, blur, cond, start_strength=0.3, end_strength=0.8)
    with pytest.raises(ValueError, match=message):
        dcdp_sampler(engine, vae, images, blur, start_strength=0.3, end_strength=0.8)
    image, _ = dcdp_restore(engine, model, vae, images, blur, cond, start_strength=0.4, end_strength=0.4)
    assert torch.isfinite(image).all()  # equal strengths: one fixed level, allowed


# 3. clear errors that name the socket

def test_one_channel_images_are_refused_by_name(engine, tiny):
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    image, mask = tiny.TinyLoadImage().load(64, 1)
    grey = image[..., :1]
    cond = tiny.tiny_conditioning("a")
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    one_channel = r"1 channel.*3 \(RGB\) or 4 \(RGBA\)"
    with pytest.raises(ValueError, match="measurement: .*" + one_channel):
        spin_restore(engine, model, vae, grey, blur, cond)
    with pytest.raises(ValueError, match="measurement: .*" + one_channel):
        dcdp_restore(engine, model, vae, grey, blur, cond)
    with pytest.raises(ValueError, match="measurement: .*" + one_channel):
        spin_sampler(engine, vae, grey, blur)
    with pytest.raises(ValueError, match="image: .*" + one_channel):
        ding_inpaint(engine, model, vae, grey, mask, cond)
    with pytest.raises(ValueError, match="image: .*" + one_channel):
        engine.nodes["InverseDegradeImage"]().degrade(grey, blur, 0.0, 0)


def test_model_and_vae_of_different_families(engine, tiny):
    sd3, _, _ = tiny.TinyCheckpointLoader().load("sd3", 0)
    _, _, sd15_vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a")
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    mismatch = r"vae: its latents have 4 channels but the model works on 16-channel latents"
    with pytest.raises(ValueError, match=mismatch):
        ding_inpaint(engine, sd3, sd15_vae, image, mask, cond)
    with pytest.raises(ValueError, match=mismatch):
        spin_restore(engine, sd3, sd15_vae, image, blur, cond)
    with pytest.raises(ValueError, match=mismatch):
        dcdp_restore(engine, sd3, sd15_vae, image, blur, cond)
    latent = {"samples": torch.zeros(1, 16, 8, 8)}
    with pytest.raises(ValueError, match=mismatch):
        sampler_custom(engine, sd3, spin_sampler(engine, sd15_vae, image, blur), 4, latent, cond)


def test_images_too_small_for_the_vae(engine, tiny):
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a")
    with pytest.raises(ValueError, match=r"image: 4x4 px is too small for the VAE: it needs at least 16x16 px"):
        ding_inpaint(engine, model, vae, image[:, :4, :4], mask[:, :4, :4], cond)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    with pytest.raises(ValueError, match=r"measurement: the restored size 8x8 px is too small for the VAE: "
                                         r"it needs at least 16x16 px"):
        spin_restore(engine, model, vae, image[:, :8, :8], blur, cond)
    sr = engine.nodes["InverseOperatorDownsample"]().build(4, "box")[0]
    with pytest.raises(ValueError, match=r"measurement: the restored size 8x8 px is too small"):
        dcdp_restore(engine, model, vae, image[:, :2, :2], sr, cond)
    latent = {"samples": torch.zeros(1, 4, 1, 1)}
    with pytest.raises(ValueError, match=r"latent_image: 1x1 latent cells \(8x8 px\) is too small for the VAE"):
        sampler_custom(engine, model, spin_sampler(engine, vae, image[:, :8, :8], blur), 4, latent, cond)


def test_estimate_noise_on_a_one_pixel_image(engine):
    with pytest.raises(ValueError, match=r"image: 1x1 px is too small to estimate the noise level"):
        engine.nodes["InverseEstimateNoise"]().estimate(torch.full((1, 1, 1, 3), 0.5))


def test_inpainting_mask_with_no_known_pixel(engine, pack):
    model, vae, images, masks, cond = faces(engine)
    all_unknown = torch.ones_like(masks)
    all_unknown[0, :3, :3] = 0.0  # image 1 has known pixels, image 2 none
    with pytest.raises(ValueError, match=r"mask: image 2 of 2 has no known pixel"):
        engine.nodes["InverseOperatorInpaint"]().build(all_unknown)
    zero = pack.solvers.operators.Inpainting(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"operator: inpaint .* maps every image to zero"):
        pack.solvers.dcdp.operator_norm_squared(zero, (1, 3, 8, 8), torch.Generator().manual_seed(0))


class NaNDecoder(torch.nn.Module):
    """A VAE's autoencoder whose encode works and whose decode returns NaN (a broken fp16 VAE)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def encode(self, pixels, **options):
        return self.inner.encode(pixels, **options)

    def decode(self, latent, **options):
        return torch.full_like(self.inner.decode(latent, **options), float("nan"))


def test_a_vae_that_decodes_to_nan_is_blamed_on_the_vae(engine):
    model, vae, images, masks, cond = faces(engine)
    broken = copy.copy(vae)
    broken.first_stage_model = NaNDecoder(vae.first_stage_model)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    blamed = r"vae: decoding returned NaN or infinite values"
    with pytest.raises(ValueError, match=blamed):
        spin_restore(engine, model, broken, images, blur, cond)
    with pytest.raises(ValueError, match=blamed):
        dcdp_restore(engine, model, broken, images, blur, cond)
    with pytest.raises(ValueError, match=blamed):
        ding_inpaint(engine, model, broken, images, masks, cond)


# 4. interruption inside DCDP's purification ODE

def test_interrupt_is_checked_before_every_purification_call(engine):
    model, vae, images, masks, cond = faces(engine, count=1)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    calls = []

    def cancel_on_first_call(apply, args):
        calls.append(1)
        if len(calls) == 1:
            press_cancel()
        return apply(args["input"], args["timestep"], **args["c"])
    model = model.clone()
    model.set_model_unet_function_wrapper(cancel_on_first_call)
    with expect_cancelled_run():
        dcdp_restore(engine, model, vae, images, blur, cond, steps=50, purification_steps=40)
    assert len(calls) == 1  # no network call after the cancel


def test_purify_checks_the_interrupt_before_every_network_call(pack):
    dcdp = pack.solvers.dcdp
    calls = []

    class Cancelled(Exception):
        pass

    def denoise(x, sigma):  # the user cancels during the first call
        calls.append(sigma)
        return torch.zeros_like(x)

    def check_interrupt():
        if calls:
            raise Cancelled
    options = dcdp.DCDPOptions(purification="ode", purification_steps=40)
    with pytest.raises(Cancelled):
        dcdp.purify(denoise, torch.zeros(1, 1, 2, 2), torch.linspace(1, 0, 51), 5, pack.solvers.parameterisation.VE,
                    options, torch.zeros(1, 1, 2, 2), check_interrupt)
    assert len(calls) == 1


# 5. the harness removes the folder it creates

def test_harness_removes_its_temporary_custom_nodes_folder():
    script = ("import comfy_harness; folder = comfy_harness._custom_nodes_dir(True); "
              "assert (folder / comfy_harness.PACK_NAME / 'README.md').exists(); print(folder)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "scripts")))
    folder = Path(result.stdout.strip())
    assert folder.name.startswith("inverse_custom_nodes_")
    assert not folder.exists()
    assert (REPO_ROOT / "README.md").exists() and (REPO_ROOT / "tests" / "tiny_nodes" / "__init__.py").exists()
