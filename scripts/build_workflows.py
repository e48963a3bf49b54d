"""Write the example workflows in workflows/ (UI format) from the API graphs below: each laid out left
to right at the frontend's sizes (workflow_layout.py), with a note on the canvas and download metadata on
its checkpoint loader. The file name is the title ComfyUI's template browser shows.

Run against upstream ComfyUI (the frontend's node sizes):
  COMFYUI_PATH=/path/to/ComfyUI .venv-upstream/bin/python scripts/build_workflows.py
(the tests check that the files stay in sync; tests/test_browser.py loads them in the real frontend)
"""
import json
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_harness  # noqa: E402
from workflow_format import api_to_ui  # noqa: E402

SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
SD35 = "sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors"
SDXL_TURBO = "sd_xl_turbo_1.0_fp16.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"
SD15_INPAINTING = "sd-v1-5-inpainting.ckpt"
FLUX_FILL = "flux1-fill-dev.safetensors"
CLIP_L, T5XXL, FLUX_VAE = "clip_l.safetensors", "t5xxl_fp16.safetensors", "ae.safetensors"
# the frontend's `models` metadata: a missing checkpoint is offered for download into models/checkpoints
CHECKPOINT_URLS = {
    SD15: "https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors",
    SD35: "https://huggingface.co/Comfy-Org/stable-diffusion-3.5-fp8/resolve/main/sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors",
    SDXL_TURBO: "https://huggingface.co/stabilityai/sdxl-turbo/resolve/main/sd_xl_turbo_1.0_fp16.safetensors",
    SDXL: "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors",
    SD15_INPAINTING: "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-inpainting/resolve/main/sd-v1-5-inpainting.ckpt",
    FLUX_FILL: "https://huggingface.co/black-forest-labs/FLUX.1-Fill-dev/resolve/main/flux1-fill-dev.safetensors",
    CLIP_L: "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
    T5XXL: "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
    FLUX_VAE: "https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/ae.safetensors",
}
# the loader nodes whose files the frontend offers to download: (input names, models/ folder)
MODEL_LOADERS = {"CheckpointLoaderSimple": (("ckpt_name",), "checkpoints"),
                 "UNETLoader": (("unet_name",), "diffusion_models"),
                 "DualCLIPLoader": (("clip_name1", "clip_name2"), "text_encoders"),
                 "VAELoader": (("vae_name",), "vae")}
PROMPT = "a photo of a cozy living room, natural light, detailed"
NEGATIVE = "blurry, low quality, artifacts"
DING_OPTIONS = {"variant": "ding", "eta_schedule": "fm_square", "eta_scale": 1.0, "obs_std": 0.01}
PAINT_MASK = "Load image, paint the mask (right-click)"
CLEAN_IMAGE = "Load a clean photo (see the note)"


def loaders(checkpoint, image_title=PAINT_MASK):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["1", 1]}, "_meta": {"title": "Positive prompt"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["1", 1]}, "_meta": {"title": "Negative prompt"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": image_title}},
    }


def keep_unmasked_pixels(original, generated, mask, title="Keep every pixel outside the mask"):
    """ImageCompositeMasked: the generated pixels inside the mask, the original ones outside (bit-exact)."""
    return {"class_type": "ImageCompositeMasked", "inputs": {
        "destination": original, "source": generated, "x": 0, "y": 0, "resize_source": False, "mask": mask},
        "_meta": {"title": title}}


def show_info(source, title="Run info (steps, network calls)"):
    return {"class_type": "PreviewAny", "inputs": {"source": source}, "_meta": {"title": title}}


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
        "11": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "ding_inpaint"}},
        "12": keep_unmasked_pixels(["4", 0], ["10", 0], ["4", 1]),
    })
    return graph


def inpainting_model_graph(checkpoint, steps, cfg):
    """An inpainting checkpoint: InpaintModelConditioning shows it the hole and sets the latent's mask, which
    DInG fills."""
    graph = sampler_custom_graph(checkpoint, steps, cfg)
    del graph["5"]
    graph["6"] = {"class_type": "InpaintModelConditioning", "inputs": {
        "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "pixels": ["4", 0], "mask": ["4", 1],
        "noise_mask": True}}
    graph["9"]["inputs"].update(positive=["6", 0], negative=["6", 1], latent_image=["6", 2])
    return graph


def flux_fill_graph(steps=20, guidance=30.0):
    """Flux Fill: its own loaders, Differential Diffusion (soft mask edges), InpaintModelConditioning, DInG."""
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": FLUX_FILL, "weight_dtype": "default"}},
        "13": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": CLIP_L, "clip_name2": T5XXL, "type": "flux",
                                                         "device": "default"}},
        "14": {"class_type": "VAELoader", "inputs": {"vae_name": FLUX_VAE}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["13", 0]},
              "_meta": {"title": "Positive prompt"}},
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]},
              "_meta": {"title": "Negative (unused at cfg 1)"}},
        "15": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["2", 0], "guidance": guidance}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": PAINT_MASK}},
        "16": {"class_type": "DifferentialDiffusion", "inputs": {"model": ["1", 0], "strength": 1.0}},
        "6": {"class_type": "InpaintModelConditioning", "inputs": {
            "positive": ["15", 0], "negative": ["3", 0], "vae": ["14", 0], "pixels": ["4", 0], "mask": ["4", 1],
            "noise_mask": True}},
        "7": {"class_type": "InverseDInGSampler", "inputs": dict(DING_OPTIONS)},
        "8": {"class_type": "BasicScheduler", "inputs": {"model": ["16", 0], "scheduler": "simple", "steps": steps,
                                                         "denoise": 1.0}},
        "9": {"class_type": "SamplerCustom", "inputs": {
            "model": ["16", 0], "add_noise": True, "noise_seed": 0, "cfg": 1.0, "positive": ["6", 0],
            "negative": ["6", 1], "sampler": ["7", 0], "sigmas": ["8", 0], "latent_image": ["6", 2]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["14", 0]}},
        "11": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "ding_flux_fill"}},
        "12": keep_unmasked_pixels(["4", 0], ["10", 0], ["4", 1]),
    }
    return graph


def all_in_one_graph(checkpoint, steps, cfg):
    graph = loaders(checkpoint)
    graph.update({
        "5": {"class_type": "InverseDInGInpaint", "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "image": ["4", 0],
            "mask": ["4", 1], "seed": 0, "steps": steps, "cfg": cfg, "scheduler": "normal", "denoise": 1.0,
            **DING_OPTIONS, "mask_mode": "threshold", "mask_threshold": 0.95, "mask_grow": 0, "mask_feather": 0.0,
            "paste_back": True, "paste_feather": 4.0, "context_crop": False, "context_margin": 64,
            "crop_resolution": 1024}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "ding_inpaint"}},
        "7": show_info(["5", 2]),
    })
    return graph


def outpaint_graph(checkpoint, steps, cfg):
    """LoadImage → Pad Image for Outpainting → DInG Inpaint (paste-back keeps the photo) → save."""
    graph = all_in_one_graph(checkpoint, steps, cfg)
    graph["2"]["inputs"]["text"] = "a wide landscape photo, natural light, detailed"
    graph["4"]["_meta"]["title"] = "Load the photo to extend"
    graph["8"] = {"class_type": "InverseOutpaintPad", "inputs": {"image": ["4", 0], "left": 128, "top": 0,
                                                                 "right": 128, "bottom": 0, "fill": "edge",
                                                                 "feathering": 0}}
    graph["5"]["inputs"].update(image=["8", 0], mask=["8", 1])
    graph["5"]["_meta"] = {"title": "DInG outpaint"}
    graph["6"]["inputs"]["filename_prefix"] = "ding_outpaint"
    return graph


def face_demo_graph(steps=20, faces=4, prediction="eps"):
    """The main job: DInG and ComfyUI's own inpainting side by side on held-out faces."""
    def sampler_custom(sampler_node):
        return {"class_type": "SamplerCustom", "inputs": {
            "model": ["1", 0], "add_noise": True, "noise_seed": 0, "cfg": 1.0, "positive": ["1", 4],
            "negative": ["1", 4], "sampler": [sampler_node, 0], "sigmas": ["4", 0], "latent_image": ["1", 5]}}
    return {
        "1": {"class_type": "InverseFacePriorLoader", "inputs": {"prediction": prediction, "faces": faces}},
        "4": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "normal", "steps": steps, "denoise": 1.0}},
        "5": {"class_type": "InverseDInGSampler", "inputs": dict(DING_OPTIONS)},
        "6": sampler_custom("5") | {"_meta": {"title": "DInG"}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 1]}},
        "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "10": sampler_custom("9") | {"_meta": {"title": "ComfyUI inpainting"}},
        "11": {"class_type": "VAEDecode", "inputs": {"samples": ["10", 0], "vae": ["1", 1]}},
        "13": {"class_type": "EmptyImage", "inputs": {"width": 25, "height": 25, "batch_size": faces, "color": 0x808080}},
        "14": {"class_type": "ImageCompositeMasked", "inputs": {
            "destination": ["1", 2], "source": ["13", 0], "x": 0, "y": 0, "resize_source": False, "mask": ["1", 3]}},
        "17": keep_unmasked_pixels(["1", 2], ["7", 0], ["1", 3], "DInG: keep the rest"),
        "18": keep_unmasked_pixels(["1", 2], ["11", 0], ["1", 3], "ComfyUI: keep the rest"),
        "19": compare_images(INPAINTING_COLUMNS, ["14", 0], ["17", 0], ["18", 0], ["1", 2]),
    }


# the demos' comparison columns; scripts/run_demo.py saves each column under its prefix for the sheets
INPAINTING_COLUMNS = {"masked input": "faces_masked_input", "DInG": "faces_ding",
                      "ComfyUI inpainting": "faces_comfy_inpaint", "held-out face": "faces_ground_truth"}
RESTORATION_COLUMNS = {"blurred": "faces_blurred", "DInG Restore": "faces_ding_deblur", "Spin": "faces_spin_deblur",
                       "x5 smaller": "faces_low_res", "DInG Restore x5": "faces_ding_sr", "Spin x5": "faces_spin_sr",
                       "held-out face": "faces_ground_truth"}
COMPARISON_COLUMN_WIDTH = 90     # canvas units per face column in the Compare Images node that shows the comparison
COMPARISON_WIDGETS_HEIGHT = 280  # its two widgets and eight image inputs, above the image
DEMO_COLUMN_HEIGHT = 1250      # taller columns of the demos wrap, so they fit a 1920x1080 screen at zoom >= 0.6


def compare_images(columns, *images):
    return {"class_type": "InverseCompareImages", "inputs": {
        "labels": ", ".join(columns), "scale": 8, **{f"image_{k}": image for k, image in enumerate(images, 1)}},
        "_meta": {"title": "Side by side"}}


SPIN_OPTIONS = {"warm_start_strength": 0.45, "warm_start_iterations": 0, "guided_steps": 8, "guidance_end": 0.6,
                "fit_steps": 50, "fit_lr": 0.05, "proximity": 0.5, "measurement_noise": 0.01, "renoise": "deterministic",
                "fit_solver": "auto", "fit_tolerance": 1e-3, "tiled_vae": "auto", "encoder_correction": True}
RESTORE_PROMPT = "a sharp, detailed, high quality photo"


def restoration_graph(checkpoint, operator, noise, estimate_noise=False):
    """LoadImage → (simulated degradation) → Spin Restore → save restored and degraded images."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
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
        "11": show_info(["7", 2]),
    })
    if estimate_noise:  # measure the noise level of the degraded photo instead of typing it
        graph["10"] = {"class_type": "InverseEstimateNoise", "inputs": {"image": ["6", 0]}}
        graph["7"]["inputs"]["measurement_noise"] = ["10", 0]
        graph["12"] = show_info(["10", 1], "Estimated noise level")
    return graph


def sr_sampler_custom_graph(checkpoint, factor=4):
    """SamplerCustom form: the latent only sets the output size (the measurement upscaled)."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
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
        "7": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "spin_inpaint"}},
        "8": keep_unmasked_pixels(["4", 0], ["6", 0], ["4", 1]),
        "9": show_info(["6", 2]),
    })
    return graph


def restoration_face_demo_graph(faces=4, prediction="eps"):
    """The main job's restoration sheet: deblurring and x5 super-resolution of held-out faces, DInG Restore and
    Spin side by side on the same measurements."""
    sampling = {"model": ["1", 0], "positive": ["1", 4], "negative": ["1", 4], "vae": ["1", 1], "seed": 0,
                "steps": 20, "cfg": 1.0, "scheduler": "normal"}

    def restore(node, options, measurement, operator, noise, title):
        return {"class_type": node, "inputs": {**sampling, "measurement": measurement, "operator": operator,
                                               **dict(options, measurement_noise=noise)}, "_meta": {"title": title}}
    return {
        "1": {"class_type": "InverseFacePriorLoader", "inputs": {"prediction": prediction, "faces": faces}},
        "2": {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 7, "std": 1.5}},
        "3": {"class_type": "InverseDegradeImage", "inputs": {"image": ["1", 2], "operator": ["2", 0],
                                                              "noise_std": 0.02, "seed": 0}},
        "4": restore("InverseSpinRestore", SPIN_OPTIONS, ["3", 0], ["2", 0], 0.02, "Spin deblur"),
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 5, "mode": "box"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["1", 2], "operator": ["5", 0],
                                                              "noise_std": 0.0, "seed": 0}},
        "7": restore("InverseSpinRestore", SPIN_OPTIONS, ["6", 0], ["5", 0], 0.0, "Spin x5 super-resolution"),
        "15": restore("InverseDInGRestore", DING_RESTORE_OPTIONS, ["3", 0], ["2", 0], 0.02, "DInG Restore deblur"),
        "16": restore("InverseDInGRestore", DING_RESTORE_OPTIONS, ["6", 0], ["5", 0], 0.0,
                      "DInG Restore x5 super-resolution"),
        "21": compare_images(RESTORATION_COLUMNS, ["3", 0], ["15", 0], ["4", 0], ["6", 0], ["16", 0], ["7", 0],
                             ["1", 2]),
    }


DCDP_OPTIONS = {"outer_iterations": 10, "inner_steps": 100, "step_size": 0.1, "proximal_weight": 0.1,
                "start_strength": 0.1, "end_strength": 0.0, "purification": "ode", "purification_steps": 4,
                "dc_solver": "auto", "skip_final_purification": False, "tolerance": 1e-3, "tiled_vae": "auto",
                "encoder_correction": True}


def dcdp_restore(operator, measurement, steps=30, **overrides):
    return {"class_type": "InverseDCDPRestore", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "vae": ["1", 2], "measurement": measurement,
        "operator": operator, "seed": 0, "steps": steps, "cfg": 1.0, "scheduler": "normal",
        **dict(DCDP_OPTIONS, **overrides)}}


def dcdp_deblur_and_sr_graph(checkpoint):
    """Two restorations with decoupled refinement from one image: deblurring and x4 super-resolution."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
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
        "14": show_info(["7", 1], "DCDP deblur: run info"),
        "15": show_info(["11", 1], "DCDP x4 SR: run info"),
    })
    return graph


def jpeg_graph(checkpoint):
    """A photo saved as a low-quality JPEG → DCDP Restore (the JPEG operator is nonlinear: Spin or DCDP)."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph.update({
        "5": {"class_type": "InverseOperatorJPEG", "inputs": {"quality": 10, "chroma_subsampling": True,
                                                              "rounding": "straight-through"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": 0.0, "seed": 0}},
        "7": dcdp_restore(["5", 0], ["6", 0], skip_final_purification=True)
        | {"_meta": {"title": "DCDP remove JPEG artefacts (ends on the fit: its JPEG is the photo)"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "dcdp_dejpeg"}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "dcdp_jpeg"}},
        "10": show_info(["7", 1]),
    })
    return graph


def dcdp_few_step_graph(checkpoint):
    """Few-step purification with a distilled model: 1 network call per round."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
    graph.update({
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 4, "mode": "bicubic"}},
        "6": {"class_type": "InverseDegradeImage", "inputs": {"image": ["4", 0], "operator": ["5", 0],
                                                              "noise_std": 0.01, "seed": 0}},
        "7": dcdp_restore(["5", 0], ["6", 0], steps=4, purification_steps=1)
        | {"_meta": {"title": "DCDP with SDXL Turbo: 1-step purification"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "dcdp_turbo_sr"}},
        "9": show_info(["7", 1]),
        "10": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "dcdp_turbo_low_res"}},
    })
    return graph


DING_RESTORE_OPTIONS = {"measurement_noise": 0.01, "variant": "frozen_proxy", "eta_schedule": "fm_square",
                        "eta_scale": 1.0,
                        "latent_solver": "fitted", "solver_iterations": 200, "solver_tolerance": 1e-4,
                        "tiled_vae": "auto", "final_fit": "approximate", "exact_below_noise": 0.0,
                        "predict_above_noise": 3.0, "decode_every": 1}


def ding_restore_graph(checkpoint, operator, noise, title, estimate_noise=False):
    """LoadImage → (simulated degradation) → DInG Restore → save restored and degraded images."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
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
        "11": show_info(["7", 2], "Run info (steps, network calls, solver work)"),
    })
    if estimate_noise:  # measure the noise level of the degraded photo instead of typing it
        graph["10"] = {"class_type": "InverseEstimateNoise", "inputs": {"image": ["6", 0]}}
        graph["7"]["inputs"]["measurement_noise"] = ["10", 0]
        graph["12"] = show_info(["10", 1], "Estimated noise level")
    return graph


GREYSCALE = {"class_type": "InverseOperatorGreyscale", "inputs": {
    "weights": "Rec. 601 (SD video, most photo editors)", "red": 0.299, "green": 0.587, "blue": 0.114}}


def old_photo_graph(checkpoint):
    """DInG Restore through three degradations in one operator socket: blur, then x2 shrink, then greyscale."""
    graph = ding_restore_graph(checkpoint, {"class_type": "InverseOperatorCompose", "inputs": {
        "first": ["13", 0], "second": ["14", 0], "third": ["15", 0]},
        "_meta": {"title": "Blurred, then shrunk, then black and white"}}, 0.01, "DInG restore an old photo")
    graph.update({
        "13": {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 7, "std": 1.5}},
        "14": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 2, "mode": "bicubic"}},
        "15": GREYSCALE,
    })
    return graph


def ding_restore_sampler_custom_graph(checkpoint, factor=4, cfg=1.0):
    """SamplerCustom form of DInG restoration (x4 SR): the latent only sets the output size."""
    graph = loaders(checkpoint, CLEAN_IMAGE)
    graph["2"]["inputs"]["text"], graph["3"]["inputs"]["text"] = RESTORE_PROMPT, ""
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


SD15_NOTE = ("**Checkpoint:** SD1.5 (`v1-5-pruned-emaonly-fp16.safetensors`; ComfyUI offers the download if it is "
             "missing). Any SD1.x / SD2.x / SDXL checkpoint works: pick it in Load Checkpoint.")
SD35_NOTE = ("**Checkpoint:** SD3.5 Medium with its text encoders (`sd3.5_medium_incl_clips_t5xxlfp8scaled.safetensors`, "
             "a flow model; ComfyUI offers the download if it is missing). SD3 / SD3.5 Large and Flux-style flow "
             "checkpoints work too.")
SDXL_NOTE = ("**Checkpoint:** SDXL base (`sd_xl_base_1.0.safetensors`; ComfyUI offers the download if it is missing). "
             "Any SD1.x / SD2.x / SDXL checkpoint works: pick it in Load Checkpoint.")
DEGRADE_NOTE = ("**Load** a clean photo: Degrade Image simulates the damage so you can compare. To restore a real "
                "damaged photo, load it, **bypass Degrade Image** (Ctrl+B) and set the operator to what happened "
                "to it.")
INFO_NOTE = "The *run info* box shows the steps and network calls after a run."

# file name (the title the template browser shows) → (API graph, the note on the canvas)
WORKFLOWS = {
    "DInG inpaint SD1.5 (SamplerCustom).json": (lambda: sampler_custom_graph(SD15, 20, 7.0), f"""\
## DInG inpainting, SamplerCustom form
{SD15_NOTE}

**Load** a photo in the image node, right-click it, *Open in MaskEditor* and paint the area to fill
(white = regenerate). Write what should appear there in the positive prompt.

**Change:** `steps` / scheduler in BasicScheduler, `cfg` in SamplerCustom, `obs_std` in the DInG
sampler (larger blends the border more). The composite at the end keeps every pixel outside the mask exactly as loaded."""),
    "DInG inpaint with an inpainting checkpoint SD1.5 (SamplerCustom).json": (
        lambda: inpainting_model_graph(SD15_INPAINTING, 20, 7.0), """\
## DInG with an inpainting checkpoint
**Checkpoint:** SD1.5 inpainting (`sd-v1-5-inpainting.ckpt`; ComfyUI offers the download if it is missing).
SD2 and SDXL inpainting checkpoints work too, and ordinary checkpoints (they ignore what
InpaintModelConditioning adds).

**Load** a photo, right-click it, *Open in MaskEditor* and paint the area to fill. InpaintModelConditioning
shows the model the hole and the picture around it and puts the mask on the latent; DInG fills exactly that
hole (it stops with a clear message if the two masks ever differ).

**Change:** `steps` / scheduler in BasicScheduler, `cfg` in SamplerCustom, the DInG sampler options. The
composite at the end keeps every pixel outside the mask exactly as loaded."""),
    "DInG inpaint Flux Fill (SamplerCustom).json": (lambda: flux_fill_graph(), """\
## DInG with Flux Fill
**Models:** `flux1-fill-dev.safetensors` (diffusion_models), `clip_l` and `t5xxl_fp16` (text_encoders),
`ae.safetensors` (vae); ComfyUI offers the downloads if they are missing (Flux Fill needs a Hugging Face login).

**Load** a photo, right-click it, *Open in MaskEditor* and paint the area to fill; soft brush edges are kept
soft. InpaintModelConditioning shows Flux Fill the hole; Differential Diffusion turns a soft mask into a
schedule (the softer a pixel, the later it opens), and DInG keeps as known whatever is closed at each step.

**Change:** `guidance` in FluxGuidance (Flux Fill likes 30), `steps`, the DInG sampler options; remove
Differential Diffusion for a hard-edged fill. The composite keeps every pixel outside the mask exactly."""),
    "DInG inpaint SD1.5 (all-in-one).json": (lambda: all_in_one_graph(SD15, 20, 7.0), f"""\
## DInG inpainting, one node
{SD15_NOTE}

**Load** a photo, right-click it, *Open in MaskEditor* and paint the area to fill. Describe it in the positive prompt.

**Change:** `steps`, `cfg`, `mask_grow` / `mask_feather` for seams, `paste_feather` for the blend width.
`paste_back` (on) keeps every pixel outside the mask exactly as loaded. {INFO_NOTE}"""),
    "DInG outpaint SD1.5 (all-in-one).json": (lambda: outpaint_graph(SD15, 20, 7.0), f"""\
## DInG outpainting
{SD15_NOTE}

**Load** a photo: Pad Image for Outpainting adds 128 px left and right (change the four margins) and
marks them as the area to generate; DInG Inpaint fills them and, with `paste_back`, returns the photo's
own pixels untouched. Describe the whole wider scene in the prompt.

**Change:** the margins (multiples of 8), `fill` (what the margins start as; `edge` suits most photos),
`seed` for other fills, `context_crop` for very large images. {INFO_NOTE}"""),
    "DInG inpaint SD3.5 (SamplerCustom).json": (lambda: sampler_custom_graph(SD35, 20, 4.5), f"""\
## DInG inpainting on a flow model, SamplerCustom form
{SD35_NOTE}

**Load** a photo, right-click it, *Open in MaskEditor* and paint the area to fill. Describe it in the positive prompt.

**Change:** `steps` in BasicScheduler, `cfg` (4-5 suits SD3.5), `obs_std` in the DInG sampler.
The composite at the end keeps every pixel outside the mask exactly as loaded."""),
    "DInG inpaint SD3.5 (all-in-one).json": (lambda: all_in_one_graph(SD35, 20, 4.5), f"""\
## DInG inpainting on a flow model, one node
{SD35_NOTE}

**Load** a photo, right-click it, *Open in MaskEditor* and paint the area to fill. Describe it in the positive prompt.

**Change:** `steps`, `cfg` (4-5 suits SD3.5), `mask_grow` / `mask_feather`, `paste_feather`. {INFO_NOTE}"""),
    "Demo - DInG vs ComfyUI inpainting on faces (no download).json": (face_demo_graph, """\
## Demo: DInG against ComfyUI's own inpainting
**Nothing to download:** the Face Prior Demo Model is built in (a Gaussian-mixture prior of real 25x25
faces with an exact denoiser). Press *Run*: **Side by side** shows, per face, the masked input, DInG,
ComfyUI's own inpainting (SetLatentNoiseMask + euler_ancestral) and the held-out face; only the hole changes.
DInG takes 39 network calls for its 20 steps, ComfyUI 20.

**Change:** `faces` in the loader, `steps` in BasicScheduler, the DInG options, the seeds."""),
    "Spin deblur SD1.5.json": (lambda: restoration_graph(
        SD15, {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 15, "std": 3.0}}, 0.01), f"""\
## Spin: deblurring
{SD15_NOTE}

{DEGRADE_NOTE}

**Change:** `kernel_size` / `std` of the blur, `noise_std` (and `measurement_noise` to match),
`warm_start_strength`, `guided_steps`, `fit_steps`. {INFO_NOTE}"""),
    "Spin x4 super-resolution SD1.5 (SamplerCustom).json": (lambda: sr_sampler_custom_graph(SD15), f"""\
## Spin: x4 super-resolution, SamplerCustom form
{SD15_NOTE}

{DEGRADE_NOTE} The upscaled, VAE-encoded measurement only sets the output size of SamplerCustom.

**Change:** `factor` in the Downsample operator (and `scale_by` to match), `steps`, the Spin options."""),
    "Spin denoise SD1.5.json": (lambda: restoration_graph(
        SD15, {"class_type": "InverseOperatorDenoise", "inputs": {}}, 0.05, estimate_noise=True), f"""\
## Spin: denoising
{SD15_NOTE}

{DEGRADE_NOTE} Estimate Noise Level measures the photo's noise and feeds `measurement_noise`.

**Change:** `noise_std` of the simulated noise, `warm_start_strength`, `guided_steps`. {INFO_NOTE}"""),
    "Spin inpaint SD3.5.json": (lambda: spin_inpaint_graph(SD35), f"""\
## Spin: inpainting through the operator socket
{SD35_NOTE}

**Load** a photo, right-click it, *Open in MaskEditor* and paint the area to fill. The composite keeps every
pixel outside the mask exactly as loaded. For inpainting alone, DInG is closer to the exact posterior.

**Change:** `warm_start_strength` (0.8 here), `guided_steps`, `fit_steps`. {INFO_NOTE}"""),
    "Demo - DInG Restore and Spin deblur and x5 super-resolution on faces (no download).json": (
        restoration_face_demo_graph, """\
## Demo: deblurring and x5 super-resolution with DInG Restore and Spin
**Nothing to download:** the Face Prior Demo Model is built in (real 25x25 faces, exact denoiser).
Press *Run*: **Side by side** shows, per face, the blurred and the 5x smaller faces, what DInG Restore (an
exact posterior step each step, 20 network calls) and Spin (9 calls) make of them, and the held-out face.

**Change:** the blur `std`, the downsampling `factor`, `noise_std`, the DInG Restore and Spin options."""),
    "DCDP deblur and x4 super-resolution SD1.5.json": (lambda: dcdp_deblur_and_sr_graph(SD15), f"""\
## DCDP (decoupled refinement): deblurring and x4 super-resolution from one photo
{SD15_NOTE}

{DEGRADE_NOTE}

**Change:** `outer_iterations` (rounds), `purification` (`tweedie`: 1 call per round), `proximal_weight`
(raise it for noisy photos), `skip_final_purification` (noiseless measurements). {INFO_NOTE}"""),
    "DCDP remove JPEG artefacts SD1.5.json": (lambda: jpeg_graph(SD15), f"""\
## DCDP restoration: JPEG artefacts
{SD15_NOTE}

{DEGRADE_NOTE} Here the damage is a JPEG saved at quality 10: 8x8 blocks, ringing, smeared colour.
Set `quality` to what the photo was saved at (guess low for heavy blocking: 5-20).

DCDP alternates letting the checkpoint clean the picture up and moving it back to the nearest image
that JPEG would save as this photo; it ends on that image (`skip_final_purification` on), so the blocks
go while the photo's content stays. **Change:** `quality`, `outer_iterations`, `seed`. {INFO_NOTE}"""),
    "DCDP few-step x4 super-resolution SDXL Turbo.json": (lambda: dcdp_few_step_graph(SDXL_TURBO), f"""\
## DCDP with a few-step model: x4 super-resolution
**Checkpoint:** SDXL Turbo (`sd_xl_turbo_1.0_fp16.safetensors`; ComfyUI offers the download if it is missing).
LCM, Lightning and other distilled checkpoints work the same way.

{DEGRADE_NOTE}

**Change:** `purification_steps` (1-4), `outer_iterations`, the Downsample `factor`. {INFO_NOTE}"""),
    "DInG deblur SD1.5.json": (lambda: ding_restore_graph(
        SD15, {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 15, "std": 3.0}}, 0.01,
        "DInG deblur"), f"""\
## DInG restoration: deblurring
{SD15_NOTE}

{DEGRADE_NOTE}

Every step is an exact Gaussian posterior step for the blur (1 network call per step, no gradient
through the model). **Change:** `kernel_size` / `std` of the blur (and of a real photo's blur), `noise_std`
and `measurement_noise` to match, `steps`, `latent_solver` (`linearized`: closer, slower), `final_fit`
(`exact`: closer at the last step, more memory). {INFO_NOTE}"""),
    "DInG x4 super-resolution SDXL.json": (lambda: ding_restore_graph(
        SDXL, {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 4, "mode": "bicubic"}}, 0.01,
        "DInG x4 super-resolution"), f"""\
## DInG restoration: x4 super-resolution
{SDXL_NOTE}

{DEGRADE_NOTE} The output is 4x the size of the loaded (low-resolution) measurement.

**Change:** `factor` of the Downsample operator, `measurement_noise`, `steps`, `cfg` (1 = the model as a
plain prior), `latent_solver`. {INFO_NOTE}"""),
    "DInG denoise SD1.5.json": (lambda: ding_restore_graph(
        SD15, {"class_type": "InverseOperatorDenoise", "inputs": {}}, 0.05, "DInG denoise", estimate_noise=True),
        f"""\
## DInG restoration: denoising
{SD15_NOTE}

{DEGRADE_NOTE} Estimate Noise Level measures the photo's noise and feeds `measurement_noise`.

**Change:** `noise_std` of the simulated noise, `steps`, the DInG options. {INFO_NOTE}"""),
    "DInG colourise a black-and-white photo SD1.5.json": (lambda: ding_restore_graph(
        SD15, GREYSCALE, 0.01, "DInG colourise"), f"""\
## DInG restoration: colour for a black-and-white photo
{SD15_NOTE}

{DEGRADE_NOTE} A black-and-white photo loads as an RGB image with equal channels; the restored
image has colours whose grey is the photo's grey (up to `measurement_noise`).

**Change:** the prompt (it decides the colours: "a 1950s family photo, red dress"), `seed` for other
colourings, `weights` (how the photo mixed red, green and blue), `latent_solver`. {INFO_NOTE}"""),
    "DInG restore an old photo (blurred, shrunk, black and white) SD1.5.json": (lambda: old_photo_graph(SD15), f"""\
## DInG restoration: several degradations at once
{SD15_NOTE}

{DEGRADE_NOTE} Combine chains operators in the order they happened: here a blur, then a x2 shrink, then
black and white, so the restored image is in colour, sharp and twice the size of the photo.

**Change:** each stage's settings, or connect other operators to `first` / `second` / `third` (leave
`third` empty for two). {INFO_NOTE}"""),
    "DInG x4 super-resolution SD3.5 (SamplerCustom).json": (lambda: ding_restore_sampler_custom_graph(SD35), f"""\
## DInG restoration on a flow model: x4 super-resolution, SamplerCustom form
{SD35_NOTE}

{DEGRADE_NOTE} The upscaled, VAE-encoded measurement only sets the output size of SamplerCustom (add noise on).

**Change:** `factor` in the Downsample operator (and `scale_by` to match), `steps` in BasicScheduler, the
DInG Restore Sampler options."""),
}


def checkpoint_models(graph):
    """properties.models of each model loader: name, url, directory, as ComfyUI's own templates carry."""
    properties = {}
    for node_id, node in graph.items():
        if node["class_type"] not in MODEL_LOADERS:
            continue
        names, directory = MODEL_LOADERS[node["class_type"]]
        files = [node["inputs"][name] for name in names if node["inputs"][name] in CHECKPOINT_URLS]
        if files:
            properties[node_id] = {"models": [{"name": name, "url": CHECKPOINT_URLS[name], "directory": directory}
                                              for name in files]}
    return properties


def graph(name):
    """The API graph of a workflow."""
    return WORKFLOWS[name][0]()


def ui_workflow(name, node_mappings):
    build, note = WORKFLOWS[name]
    prompt = build()
    return api_to_ui(prompt, node_mappings, notes=[note], properties=checkpoint_models(prompt),
                     display_names=display_names(node_mappings), **demo_layout(prompt))


def demo_layout(prompt):
    """The demos fit a 1920x1080 screen at a zoom that keeps text readable: wrapped columns, the note under
    the first columns, and the comparison shown as large as the width allows (its faces fill the node's width)."""
    comparisons = {node_id: node for node_id, node in prompt.items() if node["class_type"] == "InverseCompareImages"}
    if not comparisons:
        return {}
    faces = next(node["inputs"]["faces"] for node in prompt.values() if node["class_type"] == "InverseFacePriorLoader")
    sizes = {}
    for node_id, node in comparisons.items():
        columns = sum(name.startswith("image_") for name in node["inputs"])
        width = COMPARISON_COLUMN_WIDTH * columns + 120
        sizes[node_id] = [width, round(width * faces / columns) + COMPARISON_WIDGETS_HEIGHT]
    return {"sizes": sizes, "max_column_height": DEMO_COLUMN_HEIGHT, "notes_below": True}


def display_names(node_mappings):
    """The frontend's default titles: core's display names, then the packs' (ComfyUI's nodes module)."""
    core = sys.modules.get("nodes") or sys.modules.get("comfy.nodes.base_nodes")
    names = dict(getattr(core, "NODE_DISPLAY_NAME_MAPPINGS", {}))
    for module in list(sys.modules.values()):
        mapping = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) if isinstance(module, types.ModuleType) else None
        if isinstance(mapping, dict):
            names.update({k: v for k, v in mapping.items() if k in node_mappings and isinstance(v, str)})
    return names


def render(name, node_mappings):
    return json.dumps(ui_workflow(name, node_mappings), indent=1) + "\n"


if __name__ == "__main__":
    engine = comfy_harness.boot(with_test_nodes=False)
    folder = comfy_harness.REPO_ROOT / "workflows"
    for name in WORKFLOWS:
        (folder / name).write_text(render(name, engine.nodes))
        print("wrote", folder / name)
