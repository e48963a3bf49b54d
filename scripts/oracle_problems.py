"""Inpainting problems on the exact Gaussian-mixture oracle, shared by the tests and the benchmark:
a full-covariance mixture over latents [2, 3, 3], one draw from it observed on columns 0–1
(σ_y = 0.01), and the exact posterior of the hidden column; the other oracles (pixel, restoration) and the
helpers both use to run the pack's samplers through ComfyUI's nodes (widget defaults, SamplerCustom, the
testbed's restorer runs)."""
import torch

LATENT_SHAPE = (2, 3, 3)
OBS_STD = 0.01
# (seed, spread of the means, scale of the covariances): separated modes, and strongly correlated
# overlapping ones; both have full (non-diagonal) covariances.
PROBLEMS = {"separated_modes": (3, 2.5, 0.5), "correlated": (7, 1.2, 0.8)}
NO_PROMPT = [[torch.zeros(1, 1, 1), {}]]


def oracle_problem(pack, problem):
    """(mixture, observation [1, C, h, w], observed mask [C, h, w], exact posterior over all coordinates)."""
    seed, spread, scale = PROBLEMS[problem]
    generator = torch.Generator().manual_seed(seed)
    dim = LATENT_SHAPE[0] * LATENT_SHAPE[1] * LATENT_SHAPE[2]
    mixture = pack.demo.gaussian_mixture.random_mixture(dim, 3, generator, spread=spread, scale=scale)
    truth = mixture.sample(1, generator)
    observation = truth + OBS_STD * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
    observed = torch.zeros(LATENT_SHAPE)
    observed[:, :, :2] = 1.0
    rows = (observed.reshape(-1) == 1).nonzero()[:, 0]
    posterior = mixture.condition(torch.eye(dim, dtype=torch.float64)[rows], observation[0, rows], OBS_STD)
    return mixture, observation.float().reshape(1, *LATENT_SHAPE), observed, posterior


def hidden_coordinates(observed):
    return (observed.reshape(-1) == 0).nonzero()[:, 0]


def sample_with_sampler_custom(engine, model, sampler, observation, observed, n_samples, steps, seed):
    """n_samples draws through ComfyUI's SamplerCustom node, the mask given as the latent's noise_mask."""
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", steps, 1.0)[0]
    latent = {"samples": observation.repeat(n_samples, 1, 1, 1), "noise_mask": (1.0 - observed)[None]}
    output, _ = engine.nodes["SamplerCustom"]().sample(model, True, seed, 1.0, NO_PROMPT, NO_PROMPT, sampler,
                                                       sigmas, latent)
    return output["samples"].reshape(n_samples, -1).double()


# Restoration problems: a mixture over RGB images [3, 4, 4] (pixel space = latent space through a
# lossless autoencoder), observed through an operator with noise PIXEL_NOISE ([−1, 1] units).
PIXEL_SHAPE = (3, 4, 4)
PIXEL_NOISE = 0.05


def pixel_operators(pack):
    ops = pack.solvers.operators
    observed = torch.ones(1, 1, 4, 4)
    observed[..., :, 2:] = 0.0
    return {"inpaint": ops.Inpainting(observed), "blur": ops.gaussian_blur(3, 1.0),
            "sr_box_x2": ops.Downsample(2, "box"), "sr_bicubic_x2": ops.Downsample(2, "bicubic")}


def pixel_problem(pack, operator, n_samples, seed=11):
    """(mixture, measurement y [1, 3, 4, 4 or less], exact posterior samples [n, 48], noise floor)."""
    generator = torch.Generator().manual_seed(seed)
    dim = PIXEL_SHAPE[0] * PIXEL_SHAPE[1] * PIXEL_SHAPE[2]
    mixture = pack.demo.gaussian_mixture.random_mixture(dim, 3, generator, spread=0.35, scale=0.15)
    truth = mixture.sample(1, generator).float().reshape(1, *PIXEL_SHAPE)
    y = operator.simulate(truth, PIXEL_NOISE, generator)
    matrix = operator.forward(torch.eye(dim).reshape(dim, *PIXEL_SHAPE)).reshape(dim, -1).T.double()
    posterior = mixture.condition(matrix, y.reshape(-1).double(), PIXEL_NOISE)
    exact = posterior.sample(n_samples, generator)
    floor = float(pack.demo.metrics.sliced_wasserstein(exact, posterior.sample(n_samples, generator), generator))
    return mixture, y, exact, floor


def run_sampler_custom(engine, model, sampler, sigmas, latent, cond=NO_PROMPT, seed=1):
    """SamplerCustom on a plain latent (no mask); returns the output samples."""
    out, _ = engine.nodes["SamplerCustom"]().sample(model, True, seed, 1.0, cond, cond, sampler, sigmas,
                                                    {"samples": latent})
    return out["samples"]


def node_defaults(node_class):
    """The widget defaults of a node's inputs (those that have one): what a user who touches nothing gets."""
    required = node_class.INPUT_TYPES()["required"]
    return {name: spec[1]["default"] for name, spec in required.items()
            if len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]}


def dense_proximal_solve(operator, start, y, proximal_weight, stats, **_):
    """argmin_x ‖A x − y‖² + λ‖x − start‖² with A as an explicit float64 matrix: (AᵀA + λI)⁻¹(Aᵀy + λ·start),
    or start + A⁺(y − A·start) at λ = 0. The exact reference for solvers/linear_gaussian.proximal_solve (same
    signature, so Spin and DCDP run unchanged around it); iterative-solver options are ignored."""
    shape, dim = start.shape[1:], start[0].numel()
    matrix = operator.forward(torch.eye(dim).reshape(dim, *shape)).reshape(dim, -1).T.double()  # [m, d]
    x0, target = start.reshape(len(start), -1).double(), y.reshape(len(y), -1).double()
    if proximal_weight > 0:
        system = matrix.T @ matrix + proximal_weight * torch.eye(dim, dtype=torch.float64)
        solution = torch.linalg.solve(system, (target @ matrix + proximal_weight * x0).T).T
    else:
        solution = x0 + (target - x0 @ matrix.T) @ torch.linalg.pinv(matrix).T
    stats.add(0, 0.0)
    return solution.to(start.dtype).reshape(start.shape)


class PixelOracle:
    """A restoration problem on the pixel oracle wired into ComfyUI: the mixture as a MODEL with a
    lossless RGB VAE, the schedule, the measurement as an IMAGE, and the exact posterior samples."""

    def __init__(self, engine, pack, operator, prediction, n_samples, steps):
        self.engine, self.pack, self.operator, self.n_samples = engine, pack, operator, n_samples
        mixture, self.y, self.exact, self.floor = pixel_problem(pack, operator, n_samples)
        self.model = pack.demo.oracle_model.mixture_model(mixture, PIXEL_SHAPE, prediction)
        self.vae = pack.demo.oracle_model.pass_through_vae(3)
        self.sigmas = engine.nodes["BasicScheduler"]().get_sigmas(self.model, "normal", steps, 1.0)[0]
        self.measurement = pack.nodes.operator_nodes.measurement_image(operator, self.y)
        self.empty = torch.zeros(n_samples, *PIXEL_SHAPE)

    def sample(self, sampler, sigmas=None, latent=None):
        """n_samples draws [n, 48] through SamplerCustom (from an empty latent unless one is given)."""
        latent = self.empty if latent is None else latent
        out = run_sampler_custom(self.engine, self.model, sampler, self.sigmas if sigmas is None else sigmas, latent)
        return out.reshape(self.n_samples, -1).double()

    def naive_baselines(self, strength):
        """Draws that ignore y (plain euler from noise), and SDEdit from the operator's first guess
        with the schedule cut where a warm start at `strength` would begin."""
        euler = self.engine.nodes["KSamplerSelect"]().get_sampler("euler")[0]
        first_guess = self.pack.nodes.vae_bridge.pixels_to_image(
            self.operator.initial_guess(self.y).expand(self.n_samples, -1, -1, -1))
        cut = self.pack.nodes.spin_nodes.warm_start_sigmas(self.sigmas, strength)
        return {"prior": self.sample(euler), "sdedit": self.sample(euler, cut, self.vae.encode(first_guess))}

    def distances(self, samples, generator):
        metric = self.pack.demo.metrics.sliced_wasserstein
        return {name: float(metric(value, self.exact, generator)) for name, value in samples.items()}


# DInG restoration problems: a mixture over model-space latents, decoded to RGB [3, 8, 8] by an exact
# pass-through autoencoder ("identity": latents = pixels) or a linear SD-shaped one ("linear": latents
# [4, 4, 4], 4 channels per 2×2 pixels, unequal column norms), so A∘Dec is linear and the posterior
# over latents is closed form.
RESTORE_IMAGE_SIDE = 8
RESTORE_NOISE = 0.05
# latent (channels, side) of each test autoencoder, all decoding to RGB 8x8: identity, the face demo's grey
# decoder (one latent channel copied to R, G, B: JᵀJ = 3I, not an isometry), and the SD-shaped linear one
AUTOENCODERS = {"identity": (3, 8), "grey": (1, 8), "linear": (4, 4)}


def restore_operators(pack):
    ops = pack.solvers.operators
    observed = torch.ones(1, 1, RESTORE_IMAGE_SIDE, RESTORE_IMAGE_SIDE)
    observed[..., :, RESTORE_IMAGE_SIDE // 2:] = 0.0
    return {"inpaint": ops.Inpainting(observed), "gaussian_blur": ops.gaussian_blur(5, 1.5),
            "motion_blur": ops.motion_blur(5, torch.Generator().manual_seed(2)),
            "sr_x2": ops.Downsample(2, "bicubic"), "sr_x4": ops.Downsample(4, "bicubic"), "denoise": ops.Identity(),
            "colourise": ops.Greyscale(),
            "blur_sr_grey": ops.Composed([ops.gaussian_blur(3, 0.8), ops.Downsample(2, "bicubic"), ops.Greyscale()])}


class DenseObservation:
    """The exact step with explicit matrices: A_z [m, d] on flattened latents, solves by Cholesky. The
    reference the matrix-free observations are measured against (same loop, same draws)."""

    def __new__(cls, pack, matrix, measurement, obs_std, latent_shape):
        base = pack.solvers.ding_restore.LinearObservation

        class Dense(base):
            def linearize(self, x0):
                self.data_residual = self.y - self.apply(x0)

            def apply(self, v):
                return v.reshape(len(v), -1).to(matrix) @ matrix.T

            def adjoint(self, w):
                return (w.to(matrix) @ matrix).reshape(len(w), *latent_shape)

            def solve(self, noise_var, prior_var, rhs):
                system = noise_var * torch.eye(len(matrix), dtype=matrix.dtype) + prior_var * matrix @ matrix.T
                self.stats.add(0, 0.0)
                return torch.linalg.solve(system, rhs.to(matrix).T).T
        return Dense(None, measurement.reshape(1, -1).double(), obs_std)


class RestoreOracle:
    """A restoration problem wired into ComfyUI: the latent mixture as a MODEL, the autoencoder as a VAE,
    y = A(Dec(truth)) + noise as an IMAGE, the exact posterior over latents and a dense reference."""

    def __init__(self, engine, pack, operator, prediction, autoencoder, n_samples, steps=20, seed=11):
        self.engine, self.pack, self.operator, self.n_samples = engine, pack, operator, n_samples
        oracle_model = pack.demo.oracle_model
        channels, side = AUTOENCODERS[autoencoder]
        self.latent_shape = (channels, side, side)
        generator = torch.Generator().manual_seed(seed)
        dim = channels * side * side
        self.mixture = pack.demo.gaussian_mixture.random_mixture(dim, 3, generator, spread=0.35, scale=0.15)
        if autoencoder in ("identity", "grey"):
            self.vae = oracle_model.pass_through_vae(channels)
        else:
            self.vae = oracle_model.linear_vae(oracle_model.random_decoder_matrix(4, generator))
        decoder = self.vae.first_stage_model
        truth = self.mixture.sample(1, generator).float().reshape(1, *self.latent_shape)
        self.y = operator.simulate(decoder.decode(truth), RESTORE_NOISE, generator)
        basis = torch.eye(dim).reshape(dim, *self.latent_shape)
        self.matrix = operator.forward(decoder.decode(basis)).reshape(dim, -1).T.double()  # A∘Dec, [m, d]
        posterior = self.mixture.condition(self.matrix, self.y.reshape(-1).double(), RESTORE_NOISE)
        self.exact = posterior.sample(n_samples, generator)
        self.floor = float(pack.demo.metrics.sliced_wasserstein(self.exact, posterior.sample(n_samples, generator),
                                                                      generator))
        self.model = oracle_model.mixture_model(self.mixture, self.latent_shape, prediction)
        self.sigmas = engine.nodes["BasicScheduler"]().get_sigmas(self.model, "normal", steps, 1.0)[0]
        self.measurement = pack.nodes.operator_nodes.measurement_image(operator, self.y)
        self.empty = torch.zeros(n_samples, *self.latent_shape)
        self.prediction = prediction

    def sample(self, sampler, add_noise=True, seed=1):
        """n draws [n, d] through SamplerCustom from an empty latent at the restored size."""
        out, _ = self.engine.nodes["SamplerCustom"]().sample(self.model, add_noise, seed, 1.0, NO_PROMPT, NO_PROMPT,
                                                             sampler, self.sigmas, {"samples": self.empty})
        return out["samples"].reshape(self.n_samples, -1).double()

    def dense_reference(self, seed=1, **options):
        """The same loop with the dense exact step, run on the solver directly (same schedule, exact denoiser)."""
        pack = self.pack
        param = pack.nodes.comfy_compat.parameterisation_of(self.model.get_model_object("model_sampling"))
        generator = torch.Generator().manual_seed(seed)
        start = torch.randn(self.n_samples, *self.latent_shape, generator=generator, dtype=torch.float64)
        start = start * param.noise_scale(float(self.sigmas[0]))
        mixture = self.mixture

        def denoise(x, sigma):
            return mixture.denoise(x.reshape(len(x), -1), sigma, param).reshape(x.shape)
        observation = DenseObservation(pack, self.matrix, self.y, RESTORE_NOISE, self.latent_shape)
        out = pack.solvers.ding.sample_posterior(denoise, start, self.sigmas, observation, param, generator,
                                                  **options)
        return out.reshape(self.n_samples, -1).double()

    def distance(self, samples, generator):
        return float(self.pack.demo.metrics.sliced_wasserstein(samples, self.exact, generator))


def restorer_node_sampler(engine, pack, node_id, overrides, vae, problem):
    """A restorer node's SAMPLER at its widget defaults (plus `overrides`) for a testbed problem
    (testbed/reference.LatentProblem), its measurement_noise set to the problem's σ_y."""
    node = engine.nodes[node_id]
    options = {**node_defaults(node), **overrides}
    if "measurement_noise" in options:
        options["measurement_noise"] = problem.noise_std / 2   # 0..1 pixel units
    measurement = pack.nodes.operator_nodes.measurement_image(problem.operator, problem.measurement)
    return node().get_sampler(vae=vae, measurement=measurement, operator=problem.operator, **options)[0]


def restore_testbed(engine, pack, model, sampler, problem, samples, steps, seed):
    """`samples` restorations of a testbed problem through SamplerCustom, decoded (unclamped) to pixels
    [samples, 3, s, s] in [−1, 1]."""
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", steps, 1.0)[0]
    empty = torch.zeros(samples, *pack.testbed.latent_prior.latent_shape(problem.size))
    latents = run_sampler_custom(engine, model, sampler, sigmas, empty, seed=seed)
    return pack.testbed.reference.Posterior(problem).decode(latents.reshape(len(latents), -1))


def image_psnr(image, truth) -> float:
    """PSNR in dB of an IMAGE [B, H, W, C] in 0..1 against the true one."""
    return float(10 * torch.log10(1 / (image - truth).square().mean()))


def blockiness(image) -> float:
    """JPEG's blocks in an IMAGE [B, H, W, C]: the mean jump between horizontal neighbours across 8-px block
    borders over the mean jump elsewhere (about 0.7 on the demo's true faces, above 1 where blocks show)."""
    jumps = (image[:, :, 1:] - image[:, :, :-1]).abs().mean(dim=(0, 1, 3))
    border = torch.tensor([i % 8 == 7 for i in range(jumps.numel())])
    return float(jumps[border].mean() / jumps[~border].mean())


def jpeg_file_residual(operator, image, jpeg) -> float:
    """RMS of JPEG(image) − the file (both IMAGEs), in 0..1 units: 0 where the image could have made the file."""
    pixels = [im.movedim(-1, 1) * 2 - 1 for im in (image, jpeg)]
    return float((operator.forward(pixels[0]) - pixels[1]).square().mean().sqrt()) / 2
