"""Test-only ComfyUI nodes (never registered by the pack itself): tiny randomly initialised models of
every family, and stand-ins for the checkpoint / text-encoder / image loaders, so the example
workflows execute with no weights. Recipes: docs/comfyui.md §6.2."""
import hashlib
import logging

import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.model_patcher
import comfy.sd
import comfy.supported_models as SM
import comfy.supported_models_base
import torch

UNET = {"image_size": 32, "model_channels": 32, "num_res_blocks": [1, 1], "channel_mult": [1, 2],
        "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1], "transformer_depth_middle": 1,
        "context_dim": 32, "use_spatial_transformer": True, "use_linear_in_transformer": True, "legacy": False,
        "adm_in_channels": None, "dtype": torch.float32, "use_temporal_resblock": False,
        "use_temporal_attention": False, "num_heads": -1, "num_head_channels": 16}
FAMILIES = ("sd15", "sd2_v", "unet_flow", "sd3", "flux", "sd15_inpaint", "flux_fill")
CHANNELS = {"sd15": 4, "sd2_v": 4, "unet_flow": 16, "sd3": 16, "flux": 16, "sd15_inpaint": 4, "flux_fill": 16}
FLUX = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 32, "context_in_dim": 32,
        "hidden_size": 64, "mlp_ratio": 2.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [8, 12, 12],
        "theta": 10000, "patch_size": 2, "qkv_bias": True, "guidance_embed": True}


def _fill(module, seed, fan_in=False):
    """Random weights: std 0.02, or 1/√fan-in (activations of order 1, so normalisation layers act as in a
    trained network and the map is smooth rather than dominated by near-zero group norms)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim > 1:
                std = param[0].numel() ** -0.5 if fan_in else 0.02
                param.copy_(torch.randn(param.shape, generator=generator) * std)
            else:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
        for buffer in module.buffers():  # checkpoint-loaded buffers (SD3's pos_embed) start as torch.empty garbage
            if buffer.is_floating_point():
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.02)
    return module


def _unet_config(channels, **extra):
    return dict(UNET, **{"in_channels": channels, "out_channels": channels, **extra})


def tiny_base_model(family):
    if family == "sd15":
        return SM.SD15(_unet_config(4)).get_model({})
    if family == "sd2_v":
        config = SM.SD20(_unet_config(4, model_channels=64, num_head_channels=64))
        return comfy.model_base.BaseModel(config, model_type=comfy.model_base.ModelType.V_PREDICTION)
    if family == "unet_flow":
        class UNetOnFlow(comfy.supported_models_base.BASE):
            latent_format = comfy.latent_formats.SD3
            sampling_settings = {"shift": 3.0}
            unet_extra_config = {}

            def inpaint_model(self):
                return False
        return comfy.model_base.BaseModel(UNetOnFlow(_unet_config(16)), model_type=comfy.model_base.ModelType.FLOW)
    if family == "sd3":
        return SM.SD3({"in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 2, "adm_in_channels": 32,
                       "context_embedder_config": {"target": "torch.nn.Linear",
                                                   "params": {"in_features": 32, "out_features": 128}},
                       "pos_embed_max_size": 16, "num_patches": 256, "pos_embed_scaling_factor": None}).get_model({})
    if family in ("flux", "flux_fill"):
        if not hasattr(SM, "Flux"):
            raise ValueError("tiny flux: this ComfyUI engine has no Flux support")
        if family == "flux_fill":  # ComfyUI's FluxInpaint: 16 noisy + 16 masked-image + 64 mask channels
            return SM.FluxInpaint(dict(FLUX, in_channels=96)).get_model({})
        return SM.Flux(FLUX).get_model({})
    if family == "sd15_inpaint":  # SD's 9-channel inpainting UNet: 4 noisy + 1 mask + 4 masked-image channels
        return SM.SD15(_unet_config(9, out_channels=4)).get_model({})
    raise ValueError(f"unknown tiny family {family!r}; one of {FAMILIES}")


def tiny_model(family, seed=0):
    base = tiny_base_model(family)
    _fill(base.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


def tiny_vae(channels, seed=0, fan_in=False, **sizes):
    """A random SD-style VAE; `sizes` (ch, ch_mult, num_res_blocks) make it larger (real size: 128, [1, 2, 4, 4], 2)."""
    ddconfig = {"double_z": True, "z_channels": channels, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0, **sizes}
    logging.disable(logging.WARNING)  # random weights: ComfyUI would list every "missing" key
    try:
        vae = comfy.sd.VAE(sd={}, config={"params": {"embed_dim": channels, "ddconfig": ddconfig}})
    finally:
        logging.disable(logging.NOTSET)
    vae.latent_channels = channels
    _fill(vae.first_stage_model, seed + 1, fan_in)
    return vae


def tiny_conditioning(text, batch=1):
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, 77, 32, generator=generator),
             {"pooled_output": torch.randn(batch, 32, generator=generator), "guidance": 3.5}]]


def write_tiny_lora(model, path, seed=0, rank=2):
    """A LoRA file (kohya key names, as ComfyUI's LoraLoader reads them) for every linear layer of a tiny
    model's network: up·down of rank `rank`, scaled so it changes the output clearly."""
    import comfy.lora
    import safetensors.torch
    generator = torch.Generator().manual_seed(seed)
    weights = dict(model.model.named_parameters())
    tensors = {}
    for lora_key, weight_key in comfy.lora.model_lora_keys_unet(model.model, {}).items():
        weight = weights.get(weight_key if isinstance(weight_key, str) else "")
        if not lora_key.startswith("lora_unet_") or weight is None or weight.ndim != 2:
            continue
        tensors[f"{lora_key}.lora_up.weight"] = torch.randn(weight.shape[0], rank, generator=generator) * 0.3
        tensors[f"{lora_key}.lora_down.weight"] = torch.randn(rank, weight.shape[1], generator=generator) * 0.3
        tensors[f"{lora_key}.alpha"] = torch.tensor(float(rank))
    if not tensors:
        raise ValueError("tiny LoRA: no linear layer of the model has a LoRA key")
    safetensors.torch.save_file(tensors, str(path))
    return len(tensors) // 3


def tiny_controlnet(seed=0):
    """A random ControlNet for the tiny SD1.5 UNet, built as ComfyUI's loader builds an SD ControlNet (its zero
    convolutions random, so the control visibly acts)."""
    import comfy.cldm.cldm
    import comfy.controlnet
    config = _unet_config(4, hint_channels=3, device=None)
    config.pop("out_channels")
    control_model = _fill(comfy.cldm.cldm.ControlNet(**config), seed + 7, fan_in=True)
    return comfy.controlnet.ControlNet(control_model, load_device=mm.get_torch_device())


class TinyControlNetLoader:
    """Stands in for ControlNetLoader: a tiny random ControlNet for the sd15 family."""
    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0})}}

    def load(self, seed):
        with torch.random.fork_rng():
            return (tiny_controlnet(seed),)


class TinyCheckpointLoader:
    """Stands in for CheckpointLoaderSimple: (MODEL, CLIP, VAE) of a tiny random model."""
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(FAMILIES),), "seed": ("INT", {"default": 0, "min": 0})},
                "optional": {"vae_init": (["small", "fan_in"], {"default": "small"})}}

    def load(self, family, seed, vae_init="small"):
        with torch.random.fork_rng():  # module constructors draw their (overwritten) init from the global RNG
            return (tiny_model(family, seed), {"family": family},
                    tiny_vae(CHANNELS[family], seed, vae_init == "fan_in"))


class TinyCLIPLoader:
    """Stands in for DualCLIPLoader / CLIPLoader: the CLIP stand-in TinyTextEncode reads."""
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(FAMILIES),)}}

    def load(self, family):
        return ({"family": family},)


class TinyVAELoader:
    """Stands in for VAELoader: a tiny random VAE with the family's latent channels."""
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"family": (list(FAMILIES),), "seed": ("INT", {"default": 0, "min": 0})}}

    def load(self, family, seed):
        with torch.random.fork_rng():
            return (tiny_vae(CHANNELS[family], seed),)


class TinyTextEncode:
    """Stands in for CLIPTextEncode: a fixed random conditioning per text."""
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "text": ("STRING", {"default": ""})}}

    def encode(self, clip, text):
        return (tiny_conditioning(text),)


class TinyLoadImage:
    """Stands in for LoadImage: a smooth test image and a box mask (1 = inpaint)."""
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 64, "min": 8}), "batch": ("INT", {"default": 1, "min": 1})}}

    def load(self, size, batch):
        grid = torch.linspace(0, 1, size)
        image = torch.stack([grid[None].expand(size, size), grid[:, None].expand(size, size),
                             0.5 * torch.ones(size, size)], -1)
        mask = torch.zeros(size, size)
        mask[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1.0
        return (image[None].repeat(batch, 1, 1, 1), mask[None].repeat(batch, 1, 1))


class TinyDecodableImage:
    """An IMAGE the VAE can make: the decoding of a seeded random latent (so a restoration's measurement
    A(Dec(z)) + noise is reachable through the decoder)."""
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "make"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE",), "size": ("INT", {"default": 64, "min": 8}),
                             "seed": ("INT", {"default": 0, "min": 0})}}

    def make(self, vae, size, seed):
        scale = vae.downscale_ratio if isinstance(vae.downscale_ratio, int) else 8
        latent = torch.randn(1, vae.latent_channels, size // scale, size // scale,
                             generator=torch.Generator().manual_seed(seed))
        return (vae.decode(latent),)


def _pack_module(dotted):
    """A module of the pack itself, as ComfyUI's loader imported it (the testbed ships inside the pack). This
    test pack is only ever loaded by scripts/comfy_harness.py, whose engine knows the pack's package."""
    import importlib

    import comfy_harness
    return importlib.import_module(f"{comfy_harness.boot().pack.__name__}.{dotted}")


class TestbedCheckpointLoader:
    """Stands in for CheckpointLoaderSimple with the trained testbed (docs/testbed.md): the latent mixture
    prior as an exact MODEL (16x16 px only), a CLIP stand-in and the trained testbed VAE."""
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"prediction": (["eps", "flow"],)}}

    def load(self, prediction):
        prior = _pack_module("testbed.latent_prior")
        return prior.prior_model(prediction, 16), {"family": "sd15"}, prior.testbed_vae()


class TestbedPhoto:
    """Stands in for LoadImage: a 16x16 held-out photo patch as the testbed VAE reconstructs it (so it lies
    in the decoder's range), and a box mask."""
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load"
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0, "min": 0})}}

    def load(self, seed):
        prior = _pack_module("testbed.latent_prior")
        patch = prior.held_out_truths(16, 1, torch.Generator().manual_seed(seed))
        vae = prior.testbed_vae()
        image = vae.decode(prior.encode_patches(patch)).reshape(1, 16, 16, 3)
        mask = torch.zeros(1, 16, 16)
        mask[:, 4:12, 4:12] = 1.0
        return image, mask


CAPTURED = {}


class TinyCapture:
    """An output node that keeps the IMAGE it receives (by label) for the test to inspect."""
    RETURN_TYPES = ()
    FUNCTION = "capture"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "label": ("STRING", {"default": "out"})}}

    def capture(self, images, label):
        CAPTURED[label] = images.clone()
        return {}


class PreviewAnyStandIn:
    """Upstream core's PreviewAny (comfy_extras/nodes_preview_any.py), which the example workflows use to show
    the `info` outputs; the PyPI fork has none, so this stand-in registers under its name there only."""
    CATEGORY = "_for_testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "main"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"source": ("*", {})}}

    def main(self, source=None):
        return {"ui": {"text": (str(source),)}}


NODE_CLASS_MAPPINGS = {"TinyCheckpointLoader": TinyCheckpointLoader, "TinyTextEncode": TinyTextEncode,
                       "TinyLoadImage": TinyLoadImage, "TinyDecodableImage": TinyDecodableImage,
                       "TinyCapture": TinyCapture, "TestbedCheckpointLoader": TestbedCheckpointLoader,
                       "TestbedPhoto": TestbedPhoto, "TinyControlNetLoader": TinyControlNetLoader,
                       "TinyCLIPLoader": TinyCLIPLoader, "TinyVAELoader": TinyVAELoader}
try:
    import importlib.util
    _core_has_preview_any = importlib.util.find_spec("comfy_extras.nodes_preview_any") is not None
except (ImportError, ValueError):
    _core_has_preview_any = False
if not _core_has_preview_any:
    NODE_CLASS_MAPPINGS["PreviewAny"] = PreviewAnyStandIn
NODE_DISPLAY_NAME_MAPPINGS = {}
