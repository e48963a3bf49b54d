"""What users wire around a sampler: a LoRA (core LoraLoaderModelOnly on a LoRA file written here), a
ControlNet (core ControlNetApplyAdvanced with a tiny random ControlNet) and Differential Diffusion (core
model patch, soft mask), each through every sampler of the pack, run by ComfyUI's executor. A patch must
be applied (the output changes) and nothing may fail. Differential Diffusion acts on the latent's noise
mask, so it changes the inpainting samplers and, as in ComfyUI's own samplers, leaves the restorations
(which carry no noise mask) exactly as they were."""
import functools

import pytest
import torch

from oracle_problems import node_defaults

INPAINTING = ["InverseDInGSampler", "InverseDInGInpaint"]
RESTORATION_SAMPLERS = ["InverseDInGRestoreSampler", "InverseSpinSampler", "InverseDCDPSampler"]
RESTORATION_NODES = ["InverseDInGRestore", "InverseSpinRestore", "InverseDCDPRestore"]
SAMPLERS = INPAINTING + RESTORATION_SAMPLERS + RESTORATION_NODES
PATCHES = ["lora", "controlnet", "differential_diffusion"]
LORA_NAME = "tiny_lora.safetensors"
STEPS = 4


@pytest.fixture(scope="module")
def lora_folder(engine, tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    assert tiny.write_tiny_lora(tiny.tiny_model("sd15"), folder / LORA_NAME) > 10
    engine._folder_paths().add_model_folder_path("loras", str(folder))
    return folder


def widgets(engine, node, **overrides):
    return dict(node_defaults(engine.nodes[node]), **overrides)


def sampler_custom(engine, model, positive, negative, sampler, latent):
    return {
        "30": {"class_type": "BasicScheduler", "inputs": {"model": model, "scheduler": "normal", "steps": STEPS,
                                                          "denoise": 1.0}},
        "31": {"class_type": "SamplerCustom", "inputs": {
            "model": model, "add_noise": True, "noise_seed": 5, "cfg": 2.0, "positive": positive,
            "negative": negative, "sampler": sampler, "sigmas": ["30", 0], "latent_image": latent}},
        "32": {"class_type": "VAEDecode", "inputs": {"samples": ["31", 0], "vae": ["1", 2]}},
    }, ["32", 0]


def graph(engine, node, patch):
    """Tiny SD1.5, a 64 px image with a feathered (soft) mask, the patch, then `node` → TinyCapture."""
    model, positive, negative, vae, image = ["1", 0], ["2", 0], ["3", 0], ["1", 2], ["4", 0]
    prompt = {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"family": "sd15", "seed": 0}},
        "2": {"class_type": "TinyTextEncode", "inputs": {"clip": ["1", 1], "text": "a house"}},
        "3": {"class_type": "TinyTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "4": {"class_type": "TinyLoadImage", "inputs": {"size": 64, "batch": 1}},
        "5": {"class_type": "FeatherMask", "inputs": {"mask": ["4", 1], "left": 12, "top": 12, "right": 12,
                                                      "bottom": 12}},
    }
    if patch == "lora":
        prompt["20"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": model, "lora_name": LORA_NAME,
                                                                        "strength_model": 1.0}}
        model = ["20", 0]
    elif patch == "controlnet":
        prompt["21"] = {"class_type": "TinyControlNetLoader", "inputs": {"seed": 0}}
        prompt["22"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": positive, "negative": negative, "control_net": ["21", 0], "image": image, "strength": 1.0,
            "start_percent": 0.0, "end_percent": 1.0}}
        positive, negative = ["22", 0], ["22", 1]
    elif patch == "differential_diffusion":
        prompt["23"] = {"class_type": "DifferentialDiffusion", "inputs": {"model": model}}
        model = ["23", 0]
    sockets = {"model": model, "positive": positive, "negative": negative, "vae": vae}
    if node == "InverseDInGSampler":
        prompt["6"] = {"class_type": "VAEEncode", "inputs": {"pixels": image, "vae": vae}}
        prompt["7"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["6", 0], "mask": ["5", 0]}}
        prompt["8"] = {"class_type": node, "inputs": widgets(engine, node)}
        nodes, output = sampler_custom(engine, model, positive, negative, ["8", 0], ["7", 0])
        prompt.update(nodes)
    elif node == "InverseDInGInpaint":
        prompt["8"] = {"class_type": node, "inputs": widgets(engine, node, **sockets, image=image, mask=["5", 0],
                                                             steps=STEPS, cfg=2.0, mask_mode="soft")}
        output = ["8", 0]
    else:
        prompt["12"] = {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 2, "mode": "bicubic"}}
        prompt["13"] = {"class_type": "InverseDegradeImage", "inputs": {"image": image, "operator": ["12", 0],
                                                                        "noise_std": 0.0, "seed": 0}}
        measured = {"vae": vae, "measurement": ["13", 0], "operator": ["12", 0]}
        if node in RESTORATION_SAMPLERS:
            prompt["6"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
            prompt["8"] = {"class_type": node, "inputs": widgets(engine, node, **measured)}
            nodes, output = sampler_custom(engine, model, positive, negative, ["8", 0], ["6", 0])
            prompt.update(nodes)
        else:
            prompt["8"] = {"class_type": node, "inputs": widgets(engine, node, **dict(sockets, **measured),
                                                                 steps=STEPS, cfg=2.0)}
            output = ["8", 0]
    prompt["99"] = {"class_type": "TinyCapture", "inputs": {"images": output, "label": f"{node}/{patch}"}}
    return prompt


@functools.lru_cache(maxsize=None)
def _run(engine, tiny, node, patch):
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the PyPI fork's VAEEncode draws from the encoder's posterior with the global RNG
        engine.execute(graph(engine, node, patch))
    return tiny.CAPTURED[f"{node}/{patch}"]


@pytest.mark.parametrize("patch", PATCHES)
@pytest.mark.parametrize("node", SAMPLERS)
def test_patch_acts_through_the_sampler(engine, tiny, lora_folder, node, patch):
    plain, patched = _run(engine, tiny, node, None), _run(engine, tiny, node, patch)
    assert torch.isfinite(patched).all() and patched.shape == plain.shape
    change = float((patched - plain).abs().max())
    print(f"\n{node} + {patch}: largest pixel change {change:.4f}")
    if patch == "differential_diffusion" and node not in INPAINTING:
        assert change == 0.0, "no noise mask: Differential Diffusion has nothing to act on"
    else:
        assert change > 1e-3, f"{patch} was not applied through {node}"


@pytest.mark.parametrize("regenerate", [0.0, 1.0])
def test_ding_takes_the_mask_a_model_patch_gives_each_step(engine, tiny, regenerate):
    """DInG with a model whose mask function (as Differential Diffusion sets one) marks nothing, or everything,
    for regeneration at every step: the latent comes back as it went in, or changed everywhere, whatever the
    latent's own noise mask says."""
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    model = model.clone()
    model.set_model_denoise_mask_function(lambda sigma, mask, extra_options: torch.full_like(mask, regenerate))
    image, mask = tiny.TinyLoadImage().load(64, 1)
    latent = engine.nodes["SetLatentNoiseMask"]().set_mask(engine.nodes["VAEEncode"]().encode(vae, image)[0], mask)[0]
    cond = tiny.tiny_conditioning("a house")
    sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.0)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    out = engine.nodes["SamplerCustom"]().sample(model, True, 5, 2.0, cond, cond, sampler, sigmas, latent)[0]
    change = (out["samples"] - latent["samples"]).abs().amax(dim=1)[0]
    if regenerate:
        assert float(change.min()) > 1e-2, "every cell regenerated"
    else:
        torch.testing.assert_close(out["samples"], latent["samples"], atol=1e-4, rtol=0)  # obs_std 0: kept
    options = dict(node_defaults(engine.nodes["InverseDInGInpaint"]), steps=2, obs_std=0.0)
    _, _, info = engine.nodes["InverseDInGInpaint"]().inpaint(model, cond, cond, vae, image, mask, **options)
    assert "mask scheduled by the model's mask function (Differential Diffusion)" in info
