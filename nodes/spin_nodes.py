"""Spin as a ComfyUI SAMPLER and as an all-in-one restoration node."""
import logging

import torch

from ..solvers import spin
from . import checks, comfy_compat, input_specs, vae_bridge
from .operator_nodes import OPERATOR
from .restoration import RestorationCall, RunReport, check_schedule, describe_fits, describe_run, restored_latent

log = logging.getLogger("inverse_samplers")


def spin_options_inputs():
    return {
        "warm_start_strength": ("FLOAT", {"default": 0.45, "min": 0.05, "max": 1.0, "step": 0.01, "tooltip":
                                "Where Spin starts (the warm start, t* in the paper by Shtanchaev et al. 2026): the "
                                "share of the schedule still to run, like denoise. Higher = the model reinvents more; "
                                "lower = stays closer to the first guess built from the photo. Default 0.45."}),
        "warm_start_iterations": ("INT", {"default": 0, "min": 0, "max": 50, "tooltip":
                                  "Extra rounds that refine the first guess before sampling (1 network call each). 0 "
                                  "(default) starts from the guess built from the photo: in the pack's tests, rounds "
                                  "added nothing once 8 steps are guided; try 2-4 on hard images."}),
        "guided_steps": ("INT", {"default": 8, "min": 0, "max": 100, "tooltip":
                         "How many sampling steps get a correction toward the photo (default 8; 0 = none, the "
                         "model alone)."}),
        "guidance_end": ("FLOAT", {"default": 0.6, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                         "The corrections are spread over this first share of the sampling steps; the last steps are "
                         "left to the model for fine detail. Default 0.6."}),
        "fit_steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip":
                      "Most iterations of each fit to the photo (exact-solver iterations, or adam steps); a fit stops "
                      "earlier once it meets fit_tolerance."}),
        "fit_lr": ("FLOAT", {"default": 0.05, "min": 0.0001, "max": 1.0, "step": 0.0001, "tooltip":
                   "Step size of the adam fit, in pixel values (-1..1); used by the adam solver only (auto picks adam "
                   "for nonlinear operators such as HDR clip). Raise it if fits stop short, lower it if they "
                   "overshoot."}),
        "proximity": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip":
                      "How far each correction may move from the model's current picture: small = stays close to "
                      "what the model drew, large = follows the photo more; 0 = no limit (the photo alone decides). "
                      "Default 0.5."}),
        "measurement_noise": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 0.5, "step": 0.001, "tooltip":
                              "How noisy the degraded photo is (noise level in pixel units, 0..1): measure it with "
                              "Estimate Noise Level. Corrections match the photo only up to this noise, so 0 asks for "
                              "a perfect un-blur that amplifies grain: keep a small value (e.g. 0.01) for real "
                              "photos."}),
        "renoise": (["stochastic", "deterministic"], {"default": "deterministic", "tooltip":
                    "How noise is put back after each correction. deterministic (default): the model's own noise "
                    "estimate, like DDIM (the closest to the exact answer in the pack's tests). stochastic: fresh "
                    "random noise, as the Spin paper (Shtanchaev et al. 2026) reads."}),
        "fit_solver": (list(spin.FIT_SOLVERS), {"default": "auto", "tooltip":
                       "How each fit to the photo is solved. auto (default): the exact solver for blur, downsample, "
                       "masks and denoise, the nearest matching image for JPEG, adam for other nonlinear operators. "
                       "cg: the exact solver (conjugate gradients), those operators only. adam: step-by-step "
                       "fitting, any operator."}),
        "fit_tolerance": ("FLOAT", {"default": 1e-3, "min": 0.0, "max": 1.0, "step": 0.0001, "tooltip":
                          "A fit stops once its remaining error has shrunk to this share of where it started "
                          "(smaller = more precise, slower; info reports the worst reached). 0 always runs all "
                          "fit_steps."}),
        "tiled_vae": input_specs.tiled_vae(),
        "encoder_correction": input_specs.encoder_correction(),
    }


def spin_options(warm_start_iterations, guided_steps, guidance_end, fit_steps, fit_lr, proximity,
                 measurement_noise, renoise, fit_solver="auto", fit_tolerance=1e-3, encoder_correction=True):
    return spin.check_options(spin.SpinOptions(
        warm_start_iterations=warm_start_iterations, guided_steps=guided_steps, guidance_window=(0.0, guidance_end),
        fit_solver=fit_solver, fit_steps=fit_steps, fit_lr=fit_lr, fit_tolerance=fit_tolerance, proximity=proximity,
        obs_std=2.0 * measurement_noise, stochastic_renoise=renoise == "stochastic",
        encoder_correction=encoder_correction))


def fit_iteration_name(operator, options):
    return "CG iterations" if spin.uses_exact_fit(operator, options) else "Adam steps"


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
                      strength, options, report=None, tiled_vae="auto"):
    """KSAMPLER contract: Spin starts from its own y-based warm start, so x only gives the shape. A
    RunReport passed as `report` receives the run's calls, VAE passes and every fit's iterations and residual."""
    check_schedule(sigmas, "Spin's warm start would sit at the largest noise level (sigma_max) and no reverse step "
                   "would get a correction", "e.g. BasicScheduler with 10-30 steps (warm_start_strength then picks t* "
                   "inside it)")
    call = RestorationCall(model, x, extra_args, vae, measurement, operator, "Spin sampler", report, tiled_vae)
    run_sigmas = warm_start_sigmas(sigmas, strength)
    warn_if_nothing_is_guided(len(run_sigmas) - 1, options)
    offset = len(sigmas) - len(run_sigmas)
    fits = options.warm_start_iterations + len(spin.guided_step_indices(len(run_sigmas) - 1, options))
    log.info("Spin (%s, %s): %d network calls, %s", operator.describe(), call.param.name,
             spin.network_calls(run_sigmas, options),
             describe_fits(fits, spin.uses_exact_fit(operator, options), options.fit_steps, "Adam steps"))

    # ComfyUI's progress bar counts the len(sigmas) − 1 steps of the full schedule; Spin's network calls
    # (warm-start rounds, then the reverse steps from t*) are spread evenly over it, so it moves from the first call
    total, calls = len(sigmas) - 1, spin.network_calls(run_sigmas, options)

    def bar_step(call_index):
        return max(0, (call_index + 1) * total // calls - 1)

    def warm_start_progress(r, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": bar_step(r), "sigma": sigma, "sigma_hat": sigma, "denoised": x0})

    def progress(i, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": bar_step(options.warm_start_iterations + i), "sigma": sigmas[offset + i],
                      "sigma_hat": sigmas[offset + i], "denoised": x0})

    result = spin.sample_spin(call.denoise, call.codec.decode, call.codec.encode, operator, call.y, run_sigmas,
                              call.param, call.generator(), options, callback=progress,
                              check_interrupt=comfy_compat.check_interrupt, warm_start_callback=warm_start_progress,
                              stats=call.report.solves)
    log.info("Spin: %s; fits: %s", call.report.describe_work(),
             call.report.solves.describe(fit_iteration_name(operator, options)))
    return result


def spin_ksampler(vae, measurement, operator, strength, options, report=None, tiled_vae="auto"):
    checks.check_vae(vae)
    checks.check_image(measurement, "measurement")
    return comfy_compat.ksampler(sample_spin_comfy, {
        "vae": vae, "measurement": measurement, "operator": operator, "strength": strength, "options": options,
        "report": report, "tiled_vae": tiled_vae})


class SpinSampler:
    DESCRIPTION = ("Spin restoration sampler (Shtanchaev et al. 2026, sparse scheduled guidance) for SamplerCustom / "
                   "SamplerCustomAdvanced: starts part-way down the schedule from a guess built from the photo, then "
                   "corrects a few steps toward the photo while the model adds detail (no gradient through the model "
                   "or VAE). The latent sets the output size (e.g. EmptyLatentImage at the restored size).")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustom's sampler input; the latent_image sets the restored size.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": input_specs.model_sockets()["vae"], "measurement": input_specs.measurement(),
                             "operator": input_specs.operator(OPERATOR), **spin_options_inputs()}}

    def get_sampler(self, vae, measurement, operator, warm_start_strength, tiled_vae="auto", **options):
        return (spin_ksampler(vae, measurement, operator, warm_start_strength, spin_options(**options),
                              tiled_vae=tiled_vae),)


class SpinRestore:
    DESCRIPTION = ("Restore a degraded image with Spin (Shtanchaev et al. 2026, sparse scheduled guidance) on any "
                   "checkpoint: a first guess built from the photo, then a few corrections toward the photo while the "
                   "model adds detail. Deblurring, super-resolution, denoising, inpainting, or any operator socket. "
                   "Output size = the operator's input size.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("image", "latent", "info")
    OUTPUT_TOOLTIPS = ("The restored image, at the operator's input size (e.g. 4x the measurement for x4 SR).",
                       "The restored latent.",
                       "Steps run from the warm start (t*), network calls and how far the fits got (their worst "
                       "remaining error) (connect Preview Any to read it).")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **input_specs.model_sockets(), "measurement": input_specs.measurement(),
            "operator": input_specs.operator(OPERATOR),
            "seed": input_specs.seed(),
            "steps": input_specs.steps(30, 2, "Length of the full schedule; Spin runs its last warm_start_strength share."),
            "cfg": input_specs.cfg(1.0, "How strongly the prompt steers the result. 1.0 (default, no CFG): the model "
                               "alone supplies realistic detail; restoration rarely needs more."),
            "scheduler": input_specs.scheduler(),
            **spin_options_inputs()}}

    def restore(self, model, positive, negative, vae, measurement, operator, seed, steps, cfg, scheduler,
                warm_start_strength, tiled_vae="auto", **options):
        settings, report = spin_options(**options), RunReport()
        latent = restored_latent(model, vae, measurement, operator)
        sampler = spin_ksampler(vae, measurement, operator, warm_start_strength, settings, report, tiled_vae)
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, 1.0)
        samples = comfy_compat.sample_custom(model, sampler, sigmas, positive, negative, cfg, latent, seed,
                                             start_noise=False)  # Spin draws its own start
        image = vae_bridge.decode(vae, samples, tiled_vae)
        report.decodes += 1
        run = warm_start_sigmas(sigmas, warm_start_strength)
        info = (f"Spin ({operator.describe()}): {len(run) - 1} steps from t*, "
                f"{describe_run(report, cfg, fit_iteration_name(operator, settings))}")
        return (image, {"samples": samples}, info)


SPIN_NODES = {
    "InverseSpinSampler": (SpinSampler, "Spin Sampler (restoration)"),
    "InverseSpinRestore": (SpinRestore, "Spin Restore (all-in-one)"),
}
