"""The embedded default model: a Gaussian-mixture face prior (real LFW photos) as a ComfyUI MODEL."""
import torch

from . import face_prior
from .oracle_model import PREDICTIONS, mixture_model, pass_through_vae


class FacePriorLoader:
    DESCRIPTION = ("Demo model with no download: a small statistical model of faces (a Gaussian mixture fitted to 92 "
                   "real 25x25 face photos, scikit-image's LFW subset) whose denoising is exact, with a lossless grey "
                   "VAE. Also returns held-out faces and demo masks to inpaint. The exact answer of any restoration "
                   "can be computed for it, so results can be checked.")
    CATEGORY = "sampling/inverse/demo"
    RETURN_TYPES = ("MODEL", "VAE", "IMAGE", "MASK", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("model", "vae", "faces", "masks", "conditioning", "masked_latent")
    OUTPUT_TOOLTIPS = ("The face prior as a MODEL (exact denoiser).", "A lossless grey VAE (latent = pixels).",
                       "Held-out 25x25 faces the prior never saw (IMAGE batch).",
                       "One demo hole per face (MASK batch, white = inpaint).",
                       "An empty conditioning for positive and negative (the prior takes no prompt).",
                       "The faces encoded, with the masks as noise mask: what VAE Encode then Set Latent Noise Mask "
                       "would give, ready for an inpainting sampler.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "prediction": (list(PREDICTIONS), {"default": "eps", "tooltip":
                           "Which kind of checkpoint the demo model imitates: eps (like SD1.5), v_prediction (like "
                           "SD2.x 768), flow (like SD3 / Flux)."}),
            "faces": ("INT", {"default": 4, "min": 1, "max": face_prior.N_FACES - face_prior.N_TRAIN, "tooltip":
                      "How many held-out faces (and demo masks) to return as a batch."}),
        }}

    def load(self, prediction, faces):
        size = face_prior.FACE_SIZE
        model = mixture_model(face_prior.face_mixture(), (1, size, size), prediction)
        images = face_prior.held_out_faces()[:faces].to(torch.float32)[..., None].repeat(1, 1, 1, 3)
        no_prompt = [[torch.zeros(1, 1, 1), {}]]  # the prior takes no text; samplers still want a CONDITIONING
        vae, masks = pass_through_vae(1), face_prior.demo_hole_masks(faces)
        masked_latent = {"samples": vae.encode(images), "noise_mask": masks}
        return (model, vae, images, masks, no_prompt, masked_latent)
