"""The testbed autoencoder: ComfyUI's own AutoencoderKL with Stable Diffusion's layout at a smaller width,
trained on photos (testbed/train_vae.py), loaded through ComfyUI's `comfy.sd.VAE`.

Layout: the SD VAE's (4 latent channels, 8× down-sampling over 4 resolution levels, ResnetBlocks with
GroupNorm, the mid-block self-attention in encoder and decoder, quant_conv/post_quant_conv, a diagonal
Gaussian posterior) with base width 32 instead of 128, channel multipliers (1, 1, 2, 2) instead of
(1, 2, 4, 4) and one ResnetBlock per level instead of two. The state dict has SD's key names; ComfyUI
would detect it as an SD VAE, but its detection reads no width from the keys (it builds ch=128), so the
loader passes the layout through `VAE(sd=..., config=...)`, which both engines accept.
"""
from pathlib import Path

import torch

WEIGHTS = Path(__file__).resolve().parent / "vae_sd.safetensors"
LATENT_CHANNELS = 4
DOWNSCALE = 8
DDCONFIG = {"double_z": True, "z_channels": LATENT_CHANNELS, "resolution": 256, "in_channels": 3, "out_ch": 3,
            "ch": 32, "ch_mult": [1, 1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}


def vae_config(ddconfig=None) -> dict:
    """The `config` argument of comfy.sd.VAE for this layout (AutoencoderKL's constructor arguments)."""
    ddconfig = dict(ddconfig or DDCONFIG)
    return {"params": {"embed_dim": ddconfig["z_channels"], "ddconfig": ddconfig}}


def build_autoencoder(ddconfig=None):
    """An untrained comfy.ldm AutoencoderKL of this layout (what VAE(config=...) builds), with torch's
    default initialisation (ComfyUI's layers skip it: they expect weights to be loaded)."""
    from ..nodes.comfy_compat import AutoencoderKL
    model = AutoencoderKL(**vae_config(ddconfig)["params"])
    for module in model.modules():
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm):
            if isinstance(module, base):
                base.reset_parameters(module)
    return model


def load_state_dict(path=WEIGHTS) -> dict:
    """The shipped weights as a float32 state dict, read with ComfyUI's own loader."""
    from ..nodes.comfy_compat import load_torch_file
    return {k: v.float() for k, v in load_torch_file(str(path)).items()}


def load_testbed_vae(path=WEIGHTS, ddconfig=None):
    """The trained autoencoder as a comfy.sd.VAE (IMAGE [B, H, W, 3] in [0, 1] ↔ latent [B, 4, H/8, W/8])."""
    from ..nodes.comfy_compat import VAE
    sd = load_state_dict(path)
    vae = VAE(sd=sd, config=vae_config(ddconfig), dtype=torch.float32)
    vae.first_stage_model.load_state_dict(sd, strict=True)  # VAE() loads non-strictly: fail on any mismatch
    return vae


def posterior_mode(vae, images: torch.Tensor) -> torch.Tensor:
    """The encoder's posterior mean for pixels [B, 3, H, W] in [0, 1] (no sampling, in either engine)."""
    model = vae.first_stage_model
    with torch.no_grad():
        moments = model.quant_conv(model.encoder(images.to(torch.float32) * 2.0 - 1.0))
    return moments[:, :moments.shape[1] // 2]


def decode_raw(vae, latent: torch.Tensor) -> torch.Tensor:
    """Decoder output in [−1, 1] model units, not clamped: [B, 3, 8h, 8w]. Differentiable."""
    model = vae.first_stage_model
    return model.decoder(model.post_quant_conv(latent.to(torch.float32)))
