"""Odd widget values and inputs that an adversarial pass found (issue 21): the largest seed a widget allows,
a model that samples one size only, kernel images, NaN typed into FLOAT widgets, the context crop's size
guard, the channel count of an untouched result, measurements far outside 0..1."""
import math

import pytest
import torch

from oracle_problems import node_defaults
from test_robustness import DCDP_OPTIONS, DING_OPTIONS, SPIN_OPTIONS, ding_inpaint, faces, spin_restore

MAX_SEED = 2 ** 64 - 1  # what the seed widgets (and core KSampler's) allow
DING_RESTORE_OPTIONS = dict(measurement_noise=0.02, variant="ding", eta_schedule="fm_square", eta_scale=1.0,
                            latent_solver="pixel", solver_iterations=30, solver_tolerance=1e-4)


def ding_restore(engine, model, vae, measurement, operator, cond, seed=0, steps=4, **overrides):
    return engine.nodes["InverseDInGRestore"]().restore(model, cond, cond, vae, measurement, operator, seed, steps,
                                                       1.0, "normal", **dict(DING_RESTORE_OPTIONS, **overrides))


def face_prompt(engine, restorer, seed, **options):
    """Face prior → blur + noise → a restorer (or DInG Inpaint) at its widget defaults and `seed`, 4 steps,
    captured, through the executor."""
    blur = {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 5, "std": 1.0}}
    sockets = {"model": ["1", 0], "positive": ["1", 4], "negative": ["1", 4], "vae": ["1", 1]}
    sockets.update({"image": ["1", 2], "mask": ["1", 3]} if restorer == "InverseDInGInpaint"
                   else {"measurement": ["3", 0], "operator": ["2", 0]})
    node = {**node_defaults(engine.nodes[restorer]), **sockets, "seed": seed, "steps": 4, "cfg": 1.0, **options}
    return {
        "1": {"class_type": "InverseFacePriorLoader", "inputs": {"prediction": "eps", "faces": 2}},
        "2": blur,
        "3": {"class_type": "InverseDegradeImage", "inputs": {"image": ["1", 2], "operator": ["2", 0],
                                                               "noise_std": 0.02, "seed": MAX_SEED}},
        "4": {"class_type": restorer, "inputs": node},
        "5": {"class_type": "TinyCapture", "inputs": {"images": ["4", 0], "label": "result"}},
    }


RESTORERS = ["InverseDInGRestore", "InverseDInGInpaint", "InverseSpinRestore", "InverseDCDPRestore"]


# 1. every seed the widgets allow

@pytest.mark.parametrize("restorer", RESTORERS)
def test_the_largest_seed_runs_every_all_in_one_node_through_the_executor(engine, tiny, restorer, tmp_path):
    results = []
    for seed in (MAX_SEED, MAX_SEED, MAX_SEED - 1):
        tiny.CAPTURED.clear()
        engine.execute(face_prompt(engine, restorer, seed), output_dir=tmp_path)
        results.append(tiny.CAPTURED["result"].clone())
    assert all(torch.isfinite(result).all() for result in results)
    assert torch.equal(results[0], results[1])          # the same seed, the same image
    assert not torch.equal(results[0], results[2])      # a neighbouring seed, another sample


@pytest.mark.parametrize("sampler_node", ["InverseDInGRestoreSampler", "InverseSpinSampler", "InverseDCDPSampler",
                                          "InverseDInGSampler"])
def test_the_largest_noise_seed_runs_every_sampler_in_samplercustom(engine, sampler_node):
    model, vae, images, masks, cond = faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    node = engine.nodes[sampler_node]()
    latent = {"samples": torch.zeros(2, 1, 25, 25)}
    if sampler_node == "InverseDInGRestoreSampler":
        sampler = node.get_sampler(vae, images, blur, **DING_RESTORE_OPTIONS)[0]
    elif sampler_node == "InverseSpinSampler":
        options = dict(SPIN_OPTIONS)
        sampler = node.get_sampler(vae, images, blur, options.pop("warm_start_strength"), **options)[0]
    elif sampler_node == "InverseDCDPSampler":
        sampler = node.get_sampler(vae, images, blur, **DCDP_OPTIONS)[0]
    else:
        sampler = node.get_sampler("ding", "fm_square", 1.0, 0.01)[0]
        encoded = engine.nodes["VAEEncode"]().encode(vae, images)[0]
        latent = engine.nodes["SetLatentNoiseMask"]().set_mask(encoded, masks)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 4, 1.0)[0]
    out = engine.nodes["SamplerCustom"]().sample(model, True, MAX_SEED, 1.0, cond, cond, sampler, sigmas, latent)
    assert torch.isfinite(out[0]["samples"]).all()


def test_the_solver_generator_of_the_largest_seed_wraps_to_zero(pack):
    """seed + 1 (the seed itself made ComfyUI's start noise), taken modulo 2⁶⁴."""
    draws = torch.randn(4, generator=pack.nodes.restoration.solver_generator(MAX_SEED))
    assert torch.equal(draws, torch.randn(4, generator=torch.Generator().manual_seed(0)))
    draws = torch.randn(4, generator=pack.nodes.restoration.solver_generator(7))
    assert torch.equal(draws, torch.randn(4, generator=torch.Generator().manual_seed(8)))


# 2. a model that samples one size only says so up front

def test_the_face_prior_names_the_size_it_samples(engine):
    model, vae, images, masks, cond = faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    big = torch.nn.functional.interpolate(images.movedim(-1, 1), size=(32, 32)).movedim(1, -1)
    odd = torch.rand(1, 37, 53, 3, generator=torch.Generator().manual_seed(0))
    only = r"this model samples 25x25 px only \(a demo prior fitted at that size\), got "
    with pytest.raises(ValueError, match="measurement: " + only + "32x32 px"):
        ding_restore(engine, model, vae, big, blur, cond)
    with pytest.raises(ValueError, match="measurement: " + only + "53x37 px"):
        spin_restore(engine, model, vae, odd, blur, cond)
    with pytest.raises(ValueError, match="image: " + only + "32x32 px"):
        ding_inpaint(engine, model, vae, big, torch.nn.functional.pad(masks, (0, 7, 0, 7)), cond)
    with pytest.raises(ValueError, match="context_crop: " + only + r"\d+x\d+ px; turn context_crop off"):
        engine.nodes["InverseDInGInpaint"]().inpaint(model, cond, cond, vae, images, masks,
                                                     **DING_OPTIONS, context_crop=True, context_margin=2,
                                                     crop_resolution=0)
    sampler = engine.nodes["InverseDInGRestoreSampler"]().get_sampler(vae, big, blur, **DING_RESTORE_OPTIONS)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 3, 1.0)[0]
    with pytest.raises(ValueError, match="latent_image: " + only + "32x32 px"):
        engine.nodes["SamplerCustom"]().sample(model, True, 0, 1.0, cond, cond, sampler, sigmas,
                                               {"samples": torch.zeros(2, 1, 32, 32)})


# 3. kernel images are honoured or refused, never changed silently

def kernel_image(weights):
    return weights[None, :, :, None].expand(-1, -1, -1, 3).to(torch.float32)


def motion_blur_from(engine, image):
    return engine.nodes["InverseOperatorMotionBlur"]().build(15, 0, kernel_image=image)[0]


def test_a_signed_kernel_with_a_positive_sum_is_kept_signed(engine):
    weights = torch.full((3, 3), -0.1)
    weights[1, 1] = 2.0
    operator = motion_blur_from(engine, kernel_image(weights))
    assert torch.allclose(operator.kernel, weights / weights.sum())
    assert float(operator.kernel.min()) < 0


@pytest.mark.parametrize("weights,message", [
    (torch.tensor([[-0.5] * 3, [-0.5, 1.0, -0.5], [-0.5] * 3]), r"kernel_image: the kernel's weights sum to -3"),
    (torch.tensor([[-1.0, 0.0, 1.0]] * 3), r"kernel_image: the kernel's weights sum to 0"),
    (torch.zeros(3, 3), r"kernel_image: the kernel is empty")])
def test_a_kernel_that_cannot_be_normalised_is_refused(engine, weights, message):
    with pytest.raises(ValueError, match=message):
        motion_blur_from(engine, kernel_image(weights))


def test_huge_kernel_values_are_normalised_without_overflow(engine):
    huge = torch.full((3, 3), 3.0e38)  # their float32 sum is inf
    assert math.isinf(float(huge.sum()))
    operator = motion_blur_from(engine, kernel_image(huge))
    assert torch.allclose(operator.kernel, torch.full((3, 3), 1 / 9))


def test_a_batch_of_kernel_images_is_refused(engine):
    batch = torch.rand(2, 5, 5, 3, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"kernel_image: a batch of 2 kernel images, but the operator takes one"):
        motion_blur_from(engine, batch)


# 4. NaN typed into any FLOAT widget

def pack_nodes(engine):
    return {node_id: node for node_id, node in engine.nodes.items() if node_id.startswith("Inverse")}


def test_every_float_widget_of_every_node_refuses_nan_and_infinity(engine, pack):
    checked = 0
    for node_id, node in pack_nodes(engine).items():
        declared = node.INPUT_TYPES()
        names = [name for section in ("required", "optional") for name in declared.get(section, {})]
        for widget in pack.nodes.checks.float_widgets(node):
            for bad in (float("nan"), float("inf")):
                arguments = {name: None for name in names}
                arguments[widget] = bad
                with pytest.raises(ValueError, match=rf"^{widget}: got {bad}; type a number between"):
                    getattr(node(), node.FUNCTION)(**arguments)
                checked += 1
    assert checked >= 2 * 20  # every pack node with a FLOAT widget, both values


def test_nan_widget_through_the_executor_names_the_widget(engine, tiny, tmp_path):
    for restorer, widget in [("InverseDInGRestore", "measurement_noise"), ("InverseSpinRestore", "measurement_noise"),
                             ("InverseDCDPRestore", "proximal_weight"), ("InverseDInGRestore", "solver_tolerance")]:
        with pytest.raises(RuntimeError, match=rf"{widget}: got nan; type a number between"):
            engine.execute(face_prompt(engine, restorer, 0, **{widget: float("nan")}), output_dir=tmp_path)


# 5. smaller ones

def test_context_crop_keeps_the_size_guard(engine, tiny):
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    image, _ = tiny.TinyLoadImage().load(64, 1)
    hole = torch.zeros(1, 64, 64)
    hole[0, 30, 30] = 1.0  # a 1-px hole
    cond = tiny.tiny_conditioning("a")
    with pytest.raises(ValueError, match=r"context_crop: the crop of \d+x\d+ px is too small for the VAE: it needs "
                                         r"at least 16x16 px .*raise context_margin or crop_resolution"):
        engine.nodes["InverseDInGInpaint"]().inpaint(model, cond, cond, vae, image, hole, **DING_OPTIONS,
                                                     context_crop=True, context_margin=0, crop_resolution=0)


@pytest.mark.parametrize("context_crop", [False, True])
def test_an_rgba_image_with_an_empty_mask_returns_rgb_like_every_other_path(engine, tiny, context_crop):
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    image, _ = tiny.TinyLoadImage().load(64, 1)
    rgba = torch.cat([image, torch.full_like(image[..., :1], 0.5)], -1)
    rgba_copy = rgba.clone()
    cond = tiny.tiny_conditioning("a")
    empty = torch.zeros(1, 64, 64)
    out = engine.nodes["InverseDInGInpaint"]().inpaint(model, cond, cond, vae, rgba, empty, **DING_OPTIONS,
                                                       context_crop=context_crop)[0]
    assert out.shape == (1, 64, 64, 3)
    assert torch.equal(out, rgba_copy[..., :3])
    assert torch.equal(rgba, rgba_copy)


def test_a_measurement_far_outside_zero_one_warns_once(engine, caplog):
    model, vae, images, masks, cond = faces(engine)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    with caplog.at_level("WARNING"):
        ding_restore(engine, model, vae, images * 255.0, blur, cond, steps=3)
    warnings = [r for r in caplog.records if "far outside an IMAGE's 0..1" in r.getMessage()]
    assert len(warnings) == 1 and "measurement" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level("WARNING"):
        ding_restore(engine, model, vae, images, blur, cond, steps=3)
    assert "far outside" not in caplog.text
