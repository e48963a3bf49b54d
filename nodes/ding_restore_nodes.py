"""DInG restoration (any linear operator) as a SAMPLER and as an all-in-one node."""
import logging

import comfy.samplers
import torch

from ..solvers import ding, ding_restore
from . import comfy_compat, inputs, sockets, vae_bridge
from .ding_sampler import ding_options_inputs
from .operator_nodes import OPERATOR
from .restoration import RestorationCall, RunReport, describe_run, restored_latent, sample_restoration

log = logging.getLogger("inverse_samplers")


def ding_restore_options_inputs():
    ding_options = {name: spec for name, spec in ding_options_inputs().items() if name != "obs_std"}
    return {
        "measurement_noise": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 0.5, "step": 0.001, "tooltip":
                              "Noise std of the measurement in pixel units (0..1); see Estimate Noise Level. "
                              "Floored at 0.0005 so the exact step stays finite."}),
        **ding_options,
        "latent_solver": (list(ding_restore.LATENT_SOLVERS), {"default": "pixel", "tooltip":
                          "How the operator reaches the latent. pixel: no autograd, 2 decodes + 2 encodes per "
                          "step, approximate for real VAEs. linearized: exact for linear decoders, a decoder "
                          "Jacobian-vector and vector-Jacobian product per solver iteration (slower, more memory)."}),
        "solver_iterations": ("INT", {"default": 100, "min": 1, "max": 1000, "tooltip":
                              "Most conjugate-gradient iterations per step (blur, bicubic SR, linearized)."}),
        "solver_tolerance": ("FLOAT", {"default": 1e-4, "min": 1e-8, "max": 0.1, "step": 1e-5, "tooltip":
                             "Relative residual at which each solve stops."}),
        "tiled_vae": sockets.tiled_vae(),
    }


class _Decoder(torch.nn.Module):
    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latent):
        return self.autoencoder.decode(latent)


def differentiable_decoder(vae, latent_format, device):
    """Model-space latent → pixels in [−1, 1] through the VAE's own decoder module, unclamped, so that
    autograd can take vector-Jacobian products through it (never through the denoiser).

    Weights loaded inside ComfyUI's executor are inference tensors, which autograd may not save; the
    decoder runs on ordinary copies of them (torch.func.functional_call), the VAE itself untouched. The
    encoder's weights (SD-style `encoder.` / `quant_conv.`, never used by decode) are not copied."""
    decoder = _Decoder(vae.first_stage_model)
    encoder_only = ("autoencoder.encoder.", "autoencoder.quant_conv.")
    with torch.inference_mode(False):
        weights = {name: tensor.clone() for name, tensor in [*decoder.named_parameters(), *decoder.named_buffers()]
                   if not name.startswith(encoder_only)}

    def decode(latent):
        raw = latent_format.process_out(latent).to(vae.vae_dtype).to(vae.device)
        return torch.func.functional_call(decoder, weights, (raw,)).float().to(device)
    return decode


@torch.no_grad()  # the linearized solver enables autograd for the decoder alone
def sample_ding_restore_comfy(model, x, sigmas, extra_args=None, callback=None, disable=None, *, vae, measurement,
                              operator, measurement_noise=0.01, variant="ding", eta_schedule="fm_square",
                              eta_scale=1.0, latent_solver="pixel", solver_iterations=100, solver_tolerance=1e-4,
                              tiled_vae="auto", report=None, exact_every=1):
    """KSAMPLER contract: x is ComfyUI's noised start; the latent's size is the restored image's.
    A RunReport passed as `report` receives the run's calls, VAE passes and solves. exact_every > 1
    (no widget: measured no better than fewer steps, docs/benchmarks.md) conditions only every n-th step."""
    call = RestorationCall(model, x, extra_args, vae, measurement, operator, "DInG restore", report, tiled_vae)
    base_model = model.inner_model.inner_model
    options = ding_restore.SolveOptions(tolerance=solver_tolerance, max_iterations=solver_iterations)
    differentiable = (differentiable_decoder(vae, base_model.latent_format, x.device)
                      if latent_solver == "linearized" else None)
    observation = ding_restore.latent_observation(
        latent_solver, operator, call.y, 2.0 * measurement_noise, call.codec.decode, call.codec.encode,
        differentiable, options, comfy_compat.check_interrupt)
    log.info("DInG restore (%s, %s, %s): %d network calls for %d steps", operator.describe(), latent_solver,
             call.param.name, ding.network_calls(sigmas, variant, exact_every), len(sigmas) - 1)

    def progress(i, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0})

    result = ding.sample_posterior(call.denoise, x, sigmas, observation, call.param, call.generator(),
                                   eta_schedule=eta_schedule, eta_scale=eta_scale, variant=variant,
                                   exact_every=exact_every, callback=progress,
                                   check_interrupt=comfy_compat.check_interrupt)
    passes = getattr(observation, "decoder_passes", {})
    call.report.decodes += passes.get("decodes", 0)
    call.report.decoder_jvps += passes.get("jvps", 0)
    call.report.decoder_vjps += passes.get("vjps", 0)
    call.report.solves = observation.stats
    log.info("DInG restore: %s; %s", call.report.describe_work(), observation.stats.describe())
    return result.to(x.dtype)


class DInGRestoreSampler:
    DESCRIPTION = ("DInG restoration sampler for SamplerCustom / SamplerCustomAdvanced: every step is an exact "
                   "Gaussian posterior step for a linear operator (deblurring, super-resolution, denoising, "
                   "inpainting), no gradient through the model. The latent sets the output size (the restored "
                   "image's, e.g. EmptyLatentImage); add noise on. 2 network calls per step (delayed: 1).")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Plug into SamplerCustom / SamplerCustomAdvanced.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE", {"tooltip": "The checkpoint's VAE: the operator acts on decoded pixels."}),
                             "measurement": sockets.measurement(), "operator": sockets.operator(OPERATOR),
                             **ding_restore_options_inputs()}}

    def get_sampler(self, vae, measurement, operator, **options):
        inputs.check_vae(vae)
        inputs.check_image(measurement, "measurement")
        ding_restore.require_linear(operator)
        return (comfy.samplers.KSAMPLER(sample_ding_restore_comfy, extra_options={
            "vae": vae, "measurement": measurement, "operator": operator, **options}),)


class DInGRestore:
    DESCRIPTION = ("Restore a degraded photo with DInG on any checkpoint: deblurring (Gaussian, motion, a kernel), "
                   "super-resolution, denoising, inpainting. Every step is an exact Gaussian posterior step for the "
                   "linear operator; no gradient through the model. Output size = the operator's input size.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("image", "latent", "info")
    OUTPUT_TOOLTIPS = ("The restored image (one posterior sample).", "Its latent.",
                       "Steps, network calls and the linear solver's work.")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **sockets.model_sockets(), "measurement": sockets.measurement(), "operator": sockets.operator(OPERATOR),
            "seed": sockets.seed(), "steps": sockets.steps(20, 1, "Reverse steps; each costs 2 network calls (delayed: 1)."),
            "cfg": sockets.cfg(1.0, "1.0 (no CFG) treats the model as a plain prior; above 1 each call costs two "
                               "model passes."),
            "scheduler": sockets.scheduler(),
            **ding_restore_options_inputs()}}

    def restore(self, model, positive, negative, vae, measurement, operator, seed, steps, cfg, scheduler, **options):
        ding_restore.require_linear(operator)
        latent = restored_latent(model, vae, measurement, operator)
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, 1.0)
        report = RunReport()
        sampler = comfy.samplers.KSAMPLER(sample_ding_restore_comfy, extra_options={
            "vae": vae, "measurement": measurement, "operator": operator, "report": report, **options})
        samples = sample_restoration(model, sampler, sigmas, positive, negative, cfg, latent, seed, start_noise=True)
        image = vae_bridge.decode(vae, samples, options.get("tiled_vae", "auto"))
        report.decodes += 1
        info = (f"DInG restore ({operator.describe()}, {options['latent_solver']}): {len(sigmas) - 1} steps, "
                f"{describe_run(report, cfg)}")
        return (image, {"samples": samples}, info)


DING_RESTORE_NODES = {
    "InverseDInGRestoreSampler": (DInGRestoreSampler, "DInG Restore Sampler (any linear operator)"),
    "InverseDInGRestore": (DInGRestore, "DInG Restore (all-in-one)"),
}
