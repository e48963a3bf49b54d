"""Spin as a ComfyUI SAMPLER and as an all-in-one restoration node."""
import logging

import comfy.samplers
import torch

from ..solvers import spin
from . import comfy_compat, inputs, sockets, vae_bridge
from .operator_nodes import OPERATOR
from .restoration import RestorationCall, check_schedule, restored_latent, sample_restoration

log = logging.getLogger("inverse_samplers")


def spin_options_inputs():
    return {
        "warm_start_strength": ("FLOAT", {"default": 0.6, "min": 0.05, "max": 1.0, "step": 0.01, "tooltip":
                                "Where the warm start sits (t*): the share of the schedule still to run, like denoise."}),
        "warm_start_iterations": ("INT", {"default": 4, "min": 0, "max": 50, "tooltip":
                                  "Denoise → decode → fit → encode → re-noise rounds at t* (1 network call each)."}),
        "guided_steps": ("INT", {"default": 4, "min": 0, "max": 100, "tooltip": "How many reverse steps get the correction."}),
        "guidance_end": ("FLOAT", {"default": 0.6, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                         "Guided steps are spread over this first share of the reverse steps (none near the end)."}),
        "fit_steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip": "Adam steps of each pixel-space fit."}),
        "fit_lr": ("FLOAT", {"default": 0.05, "min": 0.0001, "max": 1.0, "step": 0.0001, "tooltip":
                   "Adam learning rate of the fit, in pixel units ([-1, 1] images): raise it if fits stop short of "
                   "the measurement, lower it if they overshoot."}),
        "proximity": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip":
                      "Scale of the allowed distance to the decoded estimate (0 = no proximity term)."}),
        "measurement_noise": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.5, "step": 0.001, "tooltip":
                              "Noise std of the measurement in pixel units (0..1); see Estimate Noise Level."}),
        "renoise": (["stochastic", "deterministic"], {"default": "stochastic", "tooltip":
                    "After a correction, re-noise with fresh noise (stochastic, the paper's choice) or with the "
                    "model's own noise estimate (deterministic, DDIM-like: smoother, less diverse)."}),
    }


def spin_options(warm_start_iterations, guided_steps, guidance_end, fit_steps, fit_lr, proximity,
                 measurement_noise, renoise):
    return spin.SpinOptions(warm_start_iterations=warm_start_iterations, guided_steps=guided_steps,
                            guidance_window=(0.0, guidance_end), fit_steps=fit_steps, fit_lr=fit_lr,
                            proximity=proximity, obs_std=2.0 * measurement_noise,
                            stochastic_renoise=renoise == "stochastic")


def warm_start_sigmas(sigmas, strength):
    """The tail of the schedule Spin runs: the last round(strength·n) steps (at least one)."""
    steps = len(sigmas) - 1
    return sigmas[steps - max(1, round(strength * steps)):]


def warn_if_nothing_is_guided(run_steps, options):
    if options.guided_steps > 0 and not spin.guided_step_indices(run_steps, options):
        log.warning("Spin: no reverse step gets a correction: %d step(s) run from t* and the last is never guided "
                    "(guided_steps=%d, guidance_end=%g); give the schedule more steps or raise warm_start_strength "
                    "or guidance_end", run_steps, options.guided_steps, options.guidance_window[1])


@torch.no_grad()  # no graph through the model or the VAE, whatever mode the caller is in (the fit enables its own)
def sample_spin_comfy(model, x, sigmas, extra_args=None, callback=None, disable=None, *, vae, measurement, operator,
                      strength, options):
    """KSAMPLER contract: Spin starts from its own y-based warm start, so x only gives the shape."""
    check_schedule(sigmas, "Spin's warm start would sit at the largest noise level (sigma_max) and no reverse step "
                   "would get a correction", "e.g. BasicScheduler with 10-30 steps (warm_start_strength then picks t* "
                   "inside it)")
    call = RestorationCall(model, x, extra_args, vae, measurement, operator, "Spin sampler")
    run_sigmas = warm_start_sigmas(sigmas, strength)
    warn_if_nothing_is_guided(len(run_sigmas) - 1, options)
    offset = len(sigmas) - len(run_sigmas)
    log.info("Spin (%s, %s): %d network calls, %d pixel fits of %d steps", operator.describe(), call.param.name,
             spin.network_calls(run_sigmas, options), options.warm_start_iterations + options.guided_steps,
             options.fit_steps)

    # ComfyUI's progress bar counts the len(sigmas) − 1 steps of the full schedule; Spin's network calls
    # (warm-start rounds, then the reverse steps from t*) are spread evenly over it, so it moves from the first call
    total, calls = len(sigmas) - 1, spin.network_calls(run_sigmas, options)

    def bar_step(call_index):
        return max(0, (call_index + 1) * total // calls - 1)

    def report_warm_start(r, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": bar_step(r), "sigma": sigma, "sigma_hat": sigma, "denoised": x0})

    def report(i, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": bar_step(options.warm_start_iterations + i), "sigma": sigmas[offset + i],
                      "sigma_hat": sigmas[offset + i], "denoised": x0})

    return spin.sample_spin(call.denoise, call.codec.decode, call.codec.encode, operator, call.y, run_sigmas,
                            call.param, call.generator(), options, callback=report,
                            check_interrupt=comfy_compat.check_interrupt, warm_start_callback=report_warm_start)


class SpinSampler:
    DESCRIPTION = ("Spin restoration sampler for SamplerCustom / SamplerCustomAdvanced: a y-based warm start at t*, "
                   "then sparse pixel-space corrections through the operator (no gradient through the model or VAE). "
                   "The latent sets the output size (e.g. EmptyLatentImage at the restored size).")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustom's sampler input; the latent_image sets the restored size.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": sockets.model_sockets()["vae"], "measurement": sockets.measurement(),
                             "operator": sockets.operator(OPERATOR), **spin_options_inputs()}}

    def get_sampler(self, vae, measurement, operator, warm_start_strength, **options):
        inputs.check_vae(vae)
        inputs.check_image(measurement, "measurement")
        return (comfy.samplers.KSAMPLER(sample_spin_comfy, extra_options={
            "vae": vae, "measurement": measurement, "operator": operator, "strength": warm_start_strength,
            "options": spin_options(**options)}),)


class SpinRestore:
    DESCRIPTION = ("Restore a degraded image with Spin on any checkpoint: deblurring, super-resolution, denoising, "
                   "inpainting, or any operator socket. Output size = the operator's input size.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("image", "latent", "info")
    OUTPUT_TOOLTIPS = ("The restored image, at the operator's input size (e.g. 4x the measurement for x4 SR).",
                       "The restored latent.",
                       "Steps from t* and network calls of the run (connect Preview Any to read it).")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **sockets.model_sockets(), "measurement": sockets.measurement(), "operator": sockets.operator(OPERATOR),
            "seed": sockets.seed(),
            "steps": sockets.steps(30, 2, "Length of the full schedule; Spin runs its last warm_start_strength share."),
            "cfg": sockets.cfg(1.0, "1.0 (no CFG) treats the model as a plain prior; restoration rarely wants more."),
            "scheduler": sockets.scheduler(),
            **spin_options_inputs()}}

    def restore(self, model, positive, negative, vae, measurement, operator, seed, steps, cfg, scheduler,
                warm_start_strength, **options):
        latent = restored_latent(model, vae, measurement, operator)
        sampler = SpinSampler().get_sampler(vae, measurement, operator, warm_start_strength, **options)[0]
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, 1.0)
        samples = sample_restoration(model, sampler, sigmas, positive, negative, cfg, latent, seed)
        image = vae_bridge.decode(vae, samples)
        run = warm_start_sigmas(sigmas, warm_start_strength)
        calls = spin.network_calls(run, spin_options(**options))
        info = f"Spin ({operator.describe()}): {len(run) - 1} steps from t*, {calls} network calls"
        return (image, {"samples": samples}, info)


SPIN_NODES = {
    "InverseSpinSampler": (SpinSampler, "Spin Sampler (restoration)"),
    "InverseSpinRestore": (SpinRestore, "Spin Restore (all-in-one)"),
}
