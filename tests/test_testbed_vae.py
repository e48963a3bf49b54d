"""The shipped testbed autoencoder (testbed/vae_sd.safetensors), loaded through ComfyUI's own VAE class:
it reconstructs held-out photos, and its encoder inverts its decoder, to the bounds docs/testbed.md
reports (measured, with a margin)."""
import pytest
import torch

# Measured on these 12 patches, both engines: posterior-mode PSNR 25.88 dB (VAE.encode/decode 25.86 dB on
# the fork, which samples the posterior; 25.88 dB upstream), round trip 0.1121. Bounds with a small margin.
PSNR_FLOOR_DB = 25.5
ROUND_TRIP_CEILING = 0.125   # ‖Enc(Dec z) − z‖ / ‖z‖ at z = Enc(x), mean over the patches
N_PATCHES = 12


@pytest.fixture(scope="module")
def testbed(pack):
    return pack.testbed.vae


@pytest.fixture(scope="module")
def vae(testbed):
    return testbed.load_testbed_vae()


@pytest.fixture(scope="module")
def patches(pack):
    every = pack.testbed.photos.held_out_patches(64)
    return every[torch.linspace(0, len(every) - 1, N_PATCHES).round().long()]


def test_loads_as_an_sd_layout_comfy_vae(vae, testbed):
    import comfy.ldm.models.autoencoder
    import comfy.sd
    assert isinstance(vae, comfy.sd.VAE)
    assert isinstance(vae.first_stage_model, comfy.ldm.models.autoencoder.AutoencoderKL)
    assert vae.latent_channels == 4 and vae.downscale_ratio == 8
    encoder = vae.first_stage_model.encoder
    assert len(encoder.down) == 4 and hasattr(encoder.mid, "attn_1")  # 3 down-samplings, mid attention
    sd = testbed.load_state_dict()
    assert "decoder.mid.attn_1.q.weight" in sd and "post_quant_conv.weight" in sd  # SD's key names


def test_held_out_reconstruction(vae, patches, pack):
    """IMAGE [B, H, W, 3] in [0, 1] → VAE.encode → VAE.decode: PSNR on photos it was not trained on."""
    train_vae = pack.testbed.train_vae
    images = patches.permute(0, 2, 3, 1).contiguous()
    with torch.random.fork_rng():
        torch.manual_seed(0)   # the PyPI fork's VAE.encode samples the (narrow) posterior
        latent = vae.encode(images)
    assert latent.shape == (N_PATCHES, 4, 8, 8)
    decoded = vae.decode(latent).reshape(images.shape)
    assert decoded.min() >= 0 and decoded.max() <= 1
    api_psnr = train_vae.psnr(decoded.permute(0, 3, 1, 2), patches).mean()
    mode_psnr = train_vae.psnr(train_vae.reconstruct(vae, patches), patches).mean()
    assert mode_psnr > PSNR_FLOOR_DB, f"posterior-mode PSNR {mode_psnr:.2f} dB"
    assert api_psnr > PSNR_FLOOR_DB - 0.3, f"VAE.encode/decode PSNR {api_psnr:.2f} dB"


def test_round_trip(vae, patches, testbed, pack):
    """‖Enc(Dec z) − z‖ / ‖z‖ at the encoder's own latents of held-out photos."""
    latents = testbed.posterior_mode(vae, patches)
    errors = pack.testbed.train_vae.round_trip_error(vae, latents)
    assert errors.mean() < ROUND_TRIP_CEILING, f"round trip {errors.mean():.4f}"


@pytest.fixture(scope="module")
def latent_prior(pack):
    return pack.testbed.latent_prior


@pytest.mark.parametrize("prediction", ["eps", "flow"])
def test_latent_prior_model_denoises_exactly(latent_prior, pack, prediction):
    """The mixture fitted to held-out photo latents, as a ComfyUI MODEL: its denoised output is E[z0 | z_σ]."""
    mixture = latent_prior.latent_mixture(16)
    assert mixture.dim == 16 and torch.isfinite(mixture.iso_var).all() and (mixture.iso_var > 0).all()
    model = latent_prior.prior_model(prediction, 16)
    param = pack.solvers.parameterisation.FLOW if prediction == "flow" else pack.solvers.parameterisation.VE
    generator = torch.Generator().manual_seed(0)
    z0 = mixture.sample(4, generator).float().reshape(4, *latent_prior.latent_shape(16))
    for sigma in (0.3, 0.8) if prediction == "flow" else (0.5, 5.0):
        noisy = param.add_noise(z0, torch.randn(z0.shape, generator=generator), sigma)
        denoised = model.model.apply_model(noisy, torch.full((4,), sigma))
        exact = mixture.denoise(noisy.reshape(4, -1), sigma, param).reshape(noisy.shape)
        torch.testing.assert_close(denoised.double(), exact, atol=1e-4, rtol=1e-4)


def test_reference_log_posterior_gradient(pack, latent_prior):
    """The reference sampler's target: log p(z) − ‖y − A(Dec z)‖²/(2σ²), its gradient against a difference."""
    reference = pack.testbed.reference
    operators = pack.solvers.operators
    generator = torch.Generator().manual_seed(0)
    truth = latent_prior.latent_mixture(16).sample(1, generator).float().reshape(1, *latent_prior.latent_shape(16))
    problem = reference.make_problem(operators.gaussian_blur(5, 1.5), truth, 0.1, generator)
    target = reference.Posterior(problem)
    z = truth.reshape(1, -1).double() + 0.3 * torch.randn(1, 16, generator=generator, dtype=torch.float64)
    direction = torch.randn(1, 16, generator=generator, dtype=torch.float64)
    value, gradient = target(z)
    step = 1e-2
    difference = (target(z + step * direction)[0] - target(z - step * direction)[0]) / (2 * step)
    assert torch.allclose(difference, (gradient * direction).sum(1), rtol=2e-2), (difference, gradient @ direction.T)
