"""Write the example workflows in workflows/ (UI format) from the API graphs below.

Run: .venv/bin/python scripts/build_workflows.py   (the tests check that the files stay in sync)
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_harness  # noqa: E402
from workflow_format import api_to_ui  # noqa: E402

SD15 = "v1-5-pruned-emaonly.safetensors"
SD35 = "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"
PROMPT = "a photo of a cozy living room, natural light, detailed"
NEGATIVE = "blurry, low quality, artifacts"
DING_OPTIONS = {"variant": "ding", "eta_schedule": "fm_square", "eta_scale": 1.0, "obs_std": 0.01}


def loaders(checkpoint):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}, "_meta": {"title": "Positive"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}, "_meta": {"title": "Negative"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "example.png"},
              "_meta": {"title": "Load image (paint the mask in the mask editor)"}},
    }


def sampler_custom_graph(checkpoint, steps, cfg):
    graph = loaders(checkpoint)
    graph.update({
        "5": {"class_type": "VAEEncode", "inputs": {"pixels": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["5", 0], "mask": ["4", 1]}},
        "7": {"class_type": "InverseDInGSampler", "inputs": dict(DING_OPTIONS)},
        "8": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": steps, "denoise": 1.0}},
        "9": {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 0, "cfg": cfg, "positive": ["2", 0],
            "negative": ["3", 0], "sampler": ["7", 0], "sigmas": ["8", 0], "latent_image": ["6", 0]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": "ding_inpaint"}},
    })
    return graph


def all_in_one_graph(checkpoint, steps, cfg):
    graph = loaders(checkpoint)
    graph.update({
        "5": {"class_type": "InverseDInGInpaint", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "image": ["4", 0],
            "mask": ["4", 1], "seed": 0, "steps": steps, "cfg": cfg, "scheduler": "normal", "denoise": 1.0,
            **DING_OPTIONS, "mask_mode": "threshold", "mask_threshold": 0.95, "mask_grow": 0, "mask_feather": 0.0,
            "paste_back": True, "paste_feather": 4.0}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "ding_inpaint"}},
    })
    return graph


def face_demo_graph(steps=20, faces=4, prediction="eps"):
    """The main job: DInG and ComfyUI's own inpainting side by side on held-out faces."""
    def sampler_custom(sampler_node):
        return {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 0, "cfg": 1.0, "positive": ["1", 4],
            "negative": ["1", 4], "sampler": [sampler_node, 0], "sigmas": ["4", 0], "latent_image": ["3", 0]}}
    return {
        "1": {"class_type": "InverseFacePriorLoader", "inputs": {"prediction": prediction, "faces": faces}},
        "2": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 2], "vae": ["1", 1]}},
        "3": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["2", 0], "mask": ["1", 3]}},
        "4": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": steps, "denoise": 1.0}},
        "5": {"class_type": "InverseDInGSampler", "inputs": dict(DING_OPTIONS)},
        "6": sampler_custom("5") | {"_meta": {"title": "DInG"}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 1]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "faces_ding"}},
        "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "10": sampler_custom("9") | {"_meta": {"title": "ComfyUI inpainting (SetLatentNoiseMask + euler_ancestral)"}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 1]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "faces_comfy_inpaint"}},
        "13": {"class_type": "EmptyImage", "inputs": {"width": 25, "height": 25, "batch_size": faces, "color": 0x808080}},
        "14": {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": ["1", 2], "source": ["13", 0], "x": 0, "y": 0, "resize_source": False, "mask": ["1", 3]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "faces_masked_input"}},
        "16": {"class_type": "SaveImage", "inputs": {"images": ["1", 2], "filename_prefix": "faces_ground_truth"}},
    }


SPIN_OPTIONS = {"warm_start_strength": 0.6, "warm_start_iterations": 4, "guided_steps": 4, "guidance_end": 0.6,
                "fit_steps": 50, "fit_lr": 0.05, "proximity": 1.0, "measurement_noise": 0.01, "renoise": "stochastic"}
RESTORE_PROMPT = "a sharp, detailed, high quality photo"


def restoration_graph(checkpoint, operator, noise, estimate_noise=False):
    """LoadImage → (simulated degradation) → Spin Restore → save restored and degraded images."""
    graph = loaders(checkpoint)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph["4"]["_meta"]["title"] = "Load image (a clean image to degrade; bypass Degrade for a real photo)"
    options = dict(SPIN_OPTIONS, measurement_noise=noise)
    graph.update({
        "5": operator,
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": noise, "seed": 0}},
        "7": {"class_type": "InverseSpinRestore", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "measurement": ["6", 0],
            "operator": ["5", 0], "seed": 0, "steps": 30, "cfg": 1.0, "scheduler": "normal", **options}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "spin_restored"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "spin_degraded"}},
    })
    if estimate_noise:  # measure the noise level of the degraded photo instead of typing it
        graph["10"] = {"class_type": "InverseEstimateNoise", "inputs": {"image": ["6", 0]}}
        graph["7"]["inputs"]["measurement_noise"] = ["10", 0]
    return graph


def sr_sampler_custom_graph(checkpoint, factor=4):
    """SamplerCustom form: the latent only sets the output size (the measurement upscaled)."""
    graph = loaders(checkpoint)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph.update({
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": factor, "mode": "bicubic"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": 0.0, "seed": 0}},
        "7": {"class_type": "ImageScaleBy", "inputs": {"image": ["6", 0], "upscale_method": "bicubic",
                                                       "scale_by": float(factor)}},
        "8": {"class_type": "VAEEncode", "inputs": {"pixels": ["7", 0], "vae": ["1", 2]},
              "_meta": {"title": "VAEEncode (sets the output size only)"}},
        "9": {"class_type": "InverseSpinSampler", "inputs": {"vae": ["1", 2], "measurement": ["6", 0],
                                                             "operator": ["5", 0], **dict(SPIN_OPTIONS, measurement_noise=0.0)}},
        "10": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 30, "denoise": 1.0}},
        "11": {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 0, "cfg": 1.0, "positive": ["2", 0],
            "negative": ["3", 0], "sampler": ["9", 0], "sigmas": ["10", 0], "latent_image": ["8", 0]}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["1", 2]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "spin_sr"}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "spin_low_res"}},
    })
    return graph


def spin_inpaint_graph(checkpoint):
    graph = loaders(checkpoint)
    graph.update({
        "5": {"class_type": "InverseOperatorInpaint", "inputs": {"mask": ["4", 1]}},
        "6": {"class_type": "InverseSpinRestore", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "measurement": ["4", 0],
            "operator": ["5", 0], "seed": 0, "steps": 30, "cfg": 1.0, "scheduler": "normal",
            **dict(SPIN_OPTIONS, warm_start_strength=0.8, measurement_noise=0.0)}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "spin_inpaint"}},
    })
    return graph


def spin_face_demo_graph(faces=4, prediction="eps"):
    """The main job's restoration sheet: deblurring and x5 super-resolution of held-out faces."""
    def restore(measurement, operator, noise):
        return {"class_type": "InverseSpinRestore", "inputs": {
            "model": ["1", 0], "positive": ["1", 4], "negative": ["1", 4], "vae": ["1", 1], "measurement": measurement,
            "operator": operator, "seed": 0, "steps": 20, "cfg": 1.0, "scheduler": "normal",
            **dict(SPIN_OPTIONS, measurement_noise=noise)}}
    return {
        "1": {"class_type": "InverseFacePriorLoader", "inputs": {"prediction": prediction, "faces": faces}},
        "2": {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 7, "std": 1.5}},
        "3": {"class_type": "InverseDegradeImage", "inputs": {"image": ["1", 2], "operator": ["2", 0],
                                                              "noise_std": 0.02, "seed": 0}},
        "4": restore(["3", 0], ["2", 0], 0.02) | {"_meta": {"title": "Spin deblur"}},
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 5, "mode": "box"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["1", 2], "operator": ["5", 0],
                                                              "noise_std": 0.0, "seed": 0}},
        "7": restore(["6", 0], ["5", 0], 0.0) | {"_meta": {"title": "Spin x5 super-resolution"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "faces_blurred"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "faces_spin_deblur"}},
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "faces_low_res"}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "faces_spin_sr"}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["1", 2], "filename_prefix": "faces_ground_truth"}},
    }


SDXL_TURBO = "sd_xl_turbo_1.0_fp16.safetensors"
DCDP_OPTIONS = {"outer_iterations": 10, "inner_steps": 100, "step_size": 0.1, "proximal_weight": 1.0,
                "start_strength": 0.7, "end_strength": 0.0, "purification": "ode", "purification_steps": 4,
                "dc_solver": "momentum", "skip_final_purification": False}


def dcdp_restore(operator, measurement, steps=30, **overrides):
    return {"class_type": "InverseDCDPRestore", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "measurement": measurement,
        "operator": operator, "seed": 0, "steps": steps, "cfg": 1.0, "scheduler": "normal",
        **dict(DCDP_OPTIONS, **overrides)}}


def dcdp_deblur_and_sr_graph(checkpoint):
    """Two restorations with decoupled refinement from one image: deblurring and x4 super-resolution."""
    graph = loaders(checkpoint)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph.update({
        "5": {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 15, "std": 3.0}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": 0.01, "seed": 0}},
        "7": dcdp_restore(["5", 0], ["6", 0]) | {"_meta": {"title": "DCDP deblur"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "dcdp_deblurred"}},
        "9": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 4, "mode": "bicubic"}},
        "10": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["9", 0],
                                                               "noise_std": 0.0, "seed": 0}},
        "11": dcdp_restore(["9", 0], ["10", 0], proximal_weight=0.0, skip_final_purification=True)
        | {"_meta": {"title": "DCDP x4 super-resolution (noiseless: ends on the fit)"}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "dcdp_sr"}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "dcdp_blurred"}},
    })
    return graph


def dcdp_few_step_graph(checkpoint):
    """Few-step purification with a distilled model: 1 network call per round."""
    graph = loaders(checkpoint)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph.update({
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 4, "mode": "bicubic"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": 0.01, "seed": 0}},
        "7": dcdp_restore(["5", 0], ["6", 0], steps=4, purification_steps=1)
        | {"_meta": {"title": "DCDP with SDXL Turbo: 1-step purification"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "dcdp_turbo_sr"}},
    })
    return graph


SDXL = "sd_xl_base_1.0.safetensors"
DING_RESTORE_OPTIONS = {"measurement_noise": 0.01, "variant": "ding", "eta_schedule": "fm_square", "eta_scale": 1.0,
                        "latent_solver": "pixel", "solver_iterations": 30, "solver_tolerance": 1e-4}


def ding_restore_graph(checkpoint, operator, noise, title, estimate_noise=False):
    """LoadImage → (simulated degradation) → DInG Restore → save restored and degraded images."""
    graph = loaders(checkpoint)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph["4"]["_meta"]["title"] = "Load image (a clean image to degrade; bypass Degrade for a real photo)"
    graph.update({
        "5": operator,
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": noise, "seed": 0}},
        "7": {"class_type": "InverseDInGRestore", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "measurement": ["6", 0],
            "operator": ["5", 0], "seed": 0, "steps": 20, "cfg": 1.0, "scheduler": "normal",
            **dict(DING_RESTORE_OPTIONS, measurement_noise=noise)}, "_meta": {"title": title}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "ding_restored"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "ding_degraded"}},
    })
    if estimate_noise:  # measure the noise level of the degraded photo instead of typing it
        graph["10"] = {"class_type": "InverseEstimateNoise", "inputs": {"image": ["6", 0]}}
        graph["7"]["inputs"]["measurement_noise"] = ["10", 0]
    return graph


def ding_restore_sampler_custom_graph(checkpoint, factor=4, cfg=1.0):
    """SamplerCustom form of DInG restoration (x4 SR): the latent only sets the output size."""
    graph = loaders(checkpoint)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph["4"]["_meta"]["title"] = "Load image (a clean image to degrade; bypass Degrade for a real photo)"
    graph.update({
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": factor, "mode": "bicubic"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": 0.01, "seed": 0}},
        "7": {"class_type": "ImageScaleBy", "inputs": {"image": ["6", 0], "upscale_method": "bicubic",
                                                       "scale_by": float(factor)}},
        "8": {"class_type": "VAEEncode", "inputs": {"pixels": ["7", 0], "vae": ["1", 2]},
              "_meta": {"title": "VAEEncode (sets the output size only)"}},
        "9": {"class_type": "InverseDInGRestoreSampler", "inputs": {"vae": ["1", 2], "measurement": ["6", 0],
                                                                    "operator": ["5", 0], **DING_RESTORE_OPTIONS}},
        "10": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": 20,
                                                          "denoise": 1.0}},
        "11": {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 0, "cfg": cfg, "positive": ["2", 0],
            "negative": ["3", 0], "sampler": ["9", 0], "sigmas": ["10", 0], "latent_image": ["8", 0]}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["1", 2]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "ding_sr"}},
        "14": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "ding_low_res"}},
    })
    return graph


WORKFLOWS = {
    "ding_inpaint_sd15_sampler_custom.json": lambda: sampler_custom_graph(SD15, 20, 7.0),
    "ding_inpaint_sd15_all_in_one.json": lambda: all_in_one_graph(SD15, 20, 7.0),
    "ding_inpaint_sd35_sampler_custom.json": lambda: sampler_custom_graph(SD35, 20, 4.5),
    "ding_inpaint_sd35_all_in_one.json": lambda: all_in_one_graph(SD35, 20, 4.5),
    "ding_face_demo.json": face_demo_graph,
    "spin_deblur_sd15.json": lambda: restoration_graph(
        SD15, {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 15, "std": 3.0}}, 0.01),
    "spin_sr4_sd15_sampler_custom.json": lambda: sr_sampler_custom_graph(SD15),
    "spin_denoise_sd15.json": lambda: restoration_graph(
        SD15, {"class_type": "InverseOperatorDenoise", "inputs": {}}, 0.05, estimate_noise=True),
    "spin_inpaint_sd35.json": lambda: spin_inpaint_graph(SD35),
    "spin_face_demo.json": spin_face_demo_graph,
    "dcdp_deblur_and_sr_sd15.json": lambda: dcdp_deblur_and_sr_graph(SD15),
    "dcdp_few_step_sdxl_turbo.json": lambda: dcdp_few_step_graph(SDXL_TURBO),
    "ding_deblur_sd15.json": lambda: ding_restore_graph(
        SD15, {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 15, "std": 3.0}}, 0.01,
        "DInG deblur"),
    "ding_sr4_sdxl.json": lambda: ding_restore_graph(
        SDXL, {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 4, "mode": "bicubic"}}, 0.01,
        "DInG x4 super-resolution"),
    "ding_denoise_sd15.json": lambda: ding_restore_graph(
        SD15, {"class_type": "InverseOperatorDenoise", "inputs": {}}, 0.05, "DInG denoise", estimate_noise=True),
    "ding_sr4_sd35_sampler_custom.json": lambda: ding_restore_sampler_custom_graph(SD35),
}


def render(name, node_mappings):
    return json.dumps(api_to_ui(WORKFLOWS[name](), node_mappings), indent=1) + "\n"


if __name__ == "__main__":
    engine = comfy_harness.boot(with_test_nodes=False)
    folder = comfy_harness.REPO_ROOT / "workflows"
    for name in WORKFLOWS:
        (folder / name).write_text(render(name, engine.nodes))
        print("wrote", folder / name)
