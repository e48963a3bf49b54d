"""A trained autoencoder (ComfyUI's AutoencoderKL, SD layout, small width) and the priors built on it."""
