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


WORKFLOWS = {
    "ding_inpaint_sd15_sampler_custom.json": lambda: sampler_custom_graph(SD15, 20, 7.0),
    "ding_inpaint_sd15_all_in_one.json": lambda: all_in_one_graph(SD15, 20, 7.0),
    "ding_inpaint_sd35_sampler_custom.json": lambda: sampler_custom_graph(SD35, 20, 4.5),
    "ding_inpaint_sd35_all_in_one.json": lambda: all_in_one_graph(SD35, 20, 4.5),
    "ding_face_demo.json": face_demo_graph,
}


def render(name, node_mappings):
    return json.dumps(api_to_ui(WORKFLOWS[name](), node_mappings), indent=1) + "\n"


if __name__ == "__main__":
    engine = comfy_harness.boot(with_test_nodes=False)
    folder = comfy_harness.REPO_ROOT / "workflows"
    for name in WORKFLOWS:
        (folder / name).write_text(render(name, engine.nodes))
        print("wrote", folder / name)
