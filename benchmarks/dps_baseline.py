"""A DPS-style baseline (Chung et al., ICLR 2023) for the benchmarks only: the gradient of the
measurement loss ‖y − A(Dec(x̂0(x)))‖ with respect to x, back-propagated through the denoiser and the
decoder, pulls each ancestral step. The pack itself never does this (it is what Spin and DInG avoid).
"""
import torch


def _clone_saved_tensors():
    """ComfyUI's transformer blocks add residuals in place (x += n), which breaks the backward pass of
    tensors autograd saved; cloning what autograd saves gets around it. This costs DPS extra memory
    (up to one more copy of the saved activations): the benchmark says so next to its numbers."""
    return torch.autograd.graph.saved_tensors_hooks(lambda saved: saved.clone(), lambda saved: saved)


def sample_dps(model, x, sigmas, extra_args=None, callback=None, disable=None, *, vae, measurement, operator,
               param, scale=1.0):
    """KSAMPLER function: DDPM-ancestral steps in the model's (a, b) parameterisation, each followed by
    x ← x − ζ ∇_x ‖y − A(Dec(x̂0))‖ / ‖y − A(Dec(x̂0))‖·‖…‖ (DPS's normalised step, ζ = scale)."""
    extra_args = dict(extra_args or {})
    extra_args["denoise_mask"] = None
    latent_format = model.inner_model.inner_model.latent_format
    decoder = vae.first_stage_model
    y = measurement.to(x.device, torch.float32)
    generator = torch.Generator().manual_seed(int(extra_args.get("seed") or 0) + 1)
    sigma_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        with torch.inference_mode(False), torch.enable_grad(), _clone_saved_tensors():
            state = x.detach().clone().requires_grad_(True)
            x0 = model(state, sigma * sigma_in, **extra_args)
            pixels = decoder.decode(latent_format.process_out(x0).to(vae.vae_dtype)).float()
            residual = (operator.forward(pixels) - y).flatten(1).norm(dim=1)
            (gradient,) = torch.autograd.grad(residual.sum(), state)
        x0 = x0.detach()
        if sigma_next <= 0:
            x = x0
        else:
            eps = param.noise_estimate(x, x0, sigma)
            ratio = (param.signal_scale(sigma) * param.noise_scale(sigma_next)
                     / (param.signal_scale(sigma_next) * param.noise_scale(sigma)))
            eta = param.noise_scale(sigma_next) * max(0.0, 1.0 - ratio * ratio) ** 0.5
            mean = param.signal_scale(sigma_next) * x0 + max(0.0, param.noise_scale(sigma_next) ** 2 - eta ** 2) ** 0.5 * eps
            noise = torch.randn(x.shape, generator=generator).to(x.device)
            x = mean + eta * noise - scale * gradient
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0})
    return x
