"""Input declarations shared by several nodes, each with the tooltip the frontend shows on hover."""
from . import comfy_compat
from .vae_bridge import TILED_VAE_MODES

SEED_MAX = 0xffffffffffffffff


def model_sockets():
    """model, positive, negative, vae: the usual sampling sockets."""
    return {
        "model": ("MODEL", {"tooltip": "The diffusion model (any EPS, v-prediction or flow checkpoint)."}),
        "positive": ("CONDITIONING", {"tooltip": "Prompt describing what the result should look like."}),
        "negative": ("CONDITIONING", {"tooltip": "Prompt describing what to avoid (unused when cfg is 1.0)."}),
        "vae": ("VAE", {"tooltip": "The checkpoint's VAE: moves the image into and out of latent space."}),
    }


def seed(tooltip="Seed of the sampling noise: the same seed gives the same result."):
    return ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True, "tooltip": tooltip})


def steps(default, minimum, tooltip="Number of steps of the noise schedule."):
    return ("INT", {"default": default, "min": minimum, "max": 1000, "tooltip": tooltip})


def cfg(default, tooltip="Classifier-free guidance scale: how strongly the prompt steers the result "
                         "(1.0 = the model alone, each step then costs one model pass instead of two)."):
    return ("FLOAT", {"default": default, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01, "tooltip": tooltip})


def scheduler():
    return (comfy_compat.scheduler_names(), {"default": "normal", "tooltip":
            "How the noise levels are spaced over the steps (as in KSampler)."})


def tiled_vae():
    return (list(TILED_VAE_MODES), {"default": "auto", "tooltip":
            "Big images: pass the image through the VAE in tiles (ComfyUI's tiled decode / encode) inside every "
            "step, so memory stays bounded. auto: above 1280x1280 px (2048x2048 tiles, 1024x1024 not). on / off: "
            "always / never."})


def measurement():
    return ("IMAGE", {"tooltip": "The degraded photo to restore (blurred, low resolution, noisy, with holes): "
                                 "what the operator produces from the clean image."})


def operator(operator_type):
    return (operator_type, {"tooltip": "How the measurement was made from the clean image: connect an Operator "
                                       "node (Gaussian blur, Downsample, Inpainting mask, ...)."})


def encoder_correction():
    return ("BOOLEAN", {"default": True, "tooltip":
            "Keeps the result faithful to the degraded photo with a real (trained) VAE: each correction is brought "
            "back into the latent so the VAE's own encoding error cancels out (one extra encode per correction). "
            "Leave it on: off, a trained VAE can leave the result visibly off the photo."})
