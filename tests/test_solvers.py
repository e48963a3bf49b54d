"""The pure-torch cores: DInG's formulas against the spec's test vectors, the oracle's exactness,
masks. These use no ComfyUI object (the modules are reached through the loaded pack only so that
one copy of them exists in the process)."""
import math
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT


def test_solvers_import_without_comfy():
    code = ("import sys, pkgutil, importlib; sys.path.append(sys.argv[1]); import solvers; "
            "[importlib.import_module('solvers.' + m.name) for m in pkgutil.iter_modules(solvers.__path__)]; "
            "assert not any(m == 'comfy' or m.startswith('comfy.') for m in sys.modules), 'comfy imported'")
    result = subprocess.run([sys.executable, "-c", code, str(REPO_ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_flow_step_matches_spec_test_vector(pack):
    """ding.md §2: t=0.5, s=0.4, x_t=0.3, D=0.5, y=0.8, ε̂_z=−0.2, σ_y=0.01."""
    ding, FLOW = pack.solvers.ding, pack.solvers.parameterisation.FLOW
    rho = ding.relative_eta("fm_square", FLOW, 0.5, 0.4)
    mean, eta = ding.prior_bridge(torch.tensor([0.3], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
                                  0.5, 0.4, FLOW, rho)
    assert eta == pytest.approx(0.16) and float(mean) == pytest.approx(0.33666061, abs=1e-8)
    target = 0.6 * 0.8 + 0.4 * -0.2
    post_mean, post_std = ding.posterior_moments(mean, eta, torch.tensor([target], dtype=torch.float64), 0.6 * 0.01,
                                                 torch.ones(1, dtype=torch.float64))
    assert float(post_mean) == pytest.approx(0.39991105, abs=1e-8)
    assert float(post_std) == pytest.approx(0.00599579, abs=1e-8)


def test_ve_step_is_the_flow_step_rescaled(pack):
    """ding.md §5.3: x̃_t=0.6, σ̃_t=1, σ̃_s=2/3 give η̃=0.26667, μ̃=0.56110101, mean 0.66651842 = FM mean / 0.6."""
    ding, VE = pack.solvers.ding, pack.solvers.parameterisation.VE
    rho = ding.relative_eta("fm_square", VE, 1.0, 2 / 3)
    mean, eta = ding.prior_bridge(torch.tensor([0.6], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64),
                                  1.0, 2 / 3, VE, rho)
    assert eta == pytest.approx(0.26666667, abs=1e-7) and float(mean) == pytest.approx(0.56110101, abs=1e-8)
    target = 0.8 + (2 / 3) * -0.2
    post_mean, _ = ding.posterior_moments(mean, eta, torch.tensor([target], dtype=torch.float64), 0.01,
                                          torch.ones(1, dtype=torch.float64))
    assert float(post_mean) == pytest.approx(0.66651842, abs=1e-8)
    assert float(post_mean) == pytest.approx(0.39991105 / 0.6, abs=1e-7)


@pytest.mark.parametrize("schedule", ["fm_square", "fm_sqrt", "ddpm", "ddim", "vp_native"])
def test_relative_eta_is_invariant_between_ve_and_flow(pack, schedule):
    ding, params = pack.solvers.ding, pack.solvers.parameterisation
    for flow_t, flow_s in [(0.9, 0.7), (0.5, 0.4), (0.2, 0.05)]:
        ve_t, ve_s = flow_t / (1 - flow_t), flow_s / (1 - flow_s)
        assert ding.relative_eta(schedule, params.VE, ve_t, ve_s) == pytest.approx(
            ding.relative_eta(schedule, params.FLOW, flow_t, flow_s), rel=1e-9)
    assert ding.relative_eta("ddpm", params.VE, 2.0, 1.0) == pytest.approx(math.sqrt(1 - 0.25))
    assert ding.relative_eta("fm_square", params.FLOW, 0.5, 0.3, eta_scale=10.0) == 1.0  # clamped: η ≤ σ


def test_soft_mask_posterior_uses_squared_mask(pack):
    """Precision 1/η² + M²/τ², mean (μ/η² + M²ỹ/τ²)/P: compared with the direct formula."""
    ding = pack.solvers.ding
    mask = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    prior_mean, target = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64), torch.tensor([0.0, 1.0, -1.0, 2.0], dtype=torch.float64)
    eta, tau = 0.2, 0.05
    mean, std = ding.posterior_moments(prior_mean, eta, target, tau, mask)
    precision = 1 / eta ** 2 + mask ** 2 / tau ** 2
    torch.testing.assert_close(mean, (prior_mean / eta ** 2 + mask ** 2 * target / tau ** 2) / precision)
    torch.testing.assert_close(std, precision.rsqrt())
    # τ = 0 with a hard mask: the known coordinate is the target exactly, the unknown one keeps the prior
    mean, std = ding.posterior_moments(prior_mean[[0, 3]], eta, target[[0, 3]], 0.0, mask[[0, 3]])
    assert mean.tolist() == [1.0, 2.0] and std.tolist() == [pytest.approx(eta), 0.0]


def test_network_calls(pack):
    ding = pack.solvers.ding
    sigmas = torch.tensor([14.6, 5.0, 1.0, 0.1, 0.0])
    assert ding.network_calls(sigmas, "ding") == 2 * 3 + 1
    assert ding.network_calls(sigmas, "delayed") == 3 + 1
    assert ding.network_calls(sigmas[:-1], "ding") == 2 * 3  # split sigmas: no final denoise


def test_mixture_denoiser_is_tweedie(pack, generator):
    """E[x0 | x] = x + σ² ∇ log p_σ(x), with log p_σ differentiated by autograd."""
    mixtures = pack.demo.gaussian_mixture
    mixture = mixtures.random_mixture(5, 3, generator)
    x = (mixture.sample(4, generator) + 0.7 * torch.randn(4, 5, generator=generator, dtype=torch.float64)).requires_grad_()
    sigma = 0.7
    log_density = torch.logsumexp(mixture._noisy_marginals(x, sigma)[0], dim=1).sum()
    (score,) = torch.autograd.grad(log_density, x)
    torch.testing.assert_close(mixture.denoise_ve(x.detach(), sigma), x.detach() + sigma ** 2 * score)


def test_mixture_condition_matches_bayes(pack, generator):
    mixtures = pack.demo.gaussian_mixture
    mixture = mixtures.random_mixture(4, 2, generator)
    operator = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    y, noise = torch.tensor([0.3, -1.0], dtype=torch.float64), 0.2
    posterior = mixture.condition(operator, y, noise)
    covs = mixture.covariances()
    weights = []
    for k in range(2):
        S = operator @ covs[k] @ operator.T + noise ** 2 * torch.eye(2, dtype=torch.float64)
        gain = covs[k] @ operator.T @ torch.linalg.inv(S)
        torch.testing.assert_close(posterior.means[k], mixture.means[k] + gain @ (y - operator @ mixture.means[k]))
        torch.testing.assert_close(posterior.covariances()[k], covs[k] - gain @ operator @ covs[k])
        weights.append(mixture.weights[k] * torch.distributions.MultivariateNormal(operator @ mixture.means[k], S).log_prob(y).exp())
    torch.testing.assert_close(posterior.weights, torch.stack(weights) / sum(weights))


def test_sliced_wasserstein_separates_laws(pack, generator):
    metrics = pack.demo.metrics
    a, b = torch.randn(2000, 3, generator=generator), torch.randn(2000, 3, generator=generator)
    same = metrics.sliced_wasserstein(a, b, generator)
    shifted = metrics.sliced_wasserstein(a, b + 1.0, generator)
    assert same < 0.1 and shifted > 0.4


def test_threshold_mask_grows_the_hole_like_the_reference(pack):
    """ding.md §4: a hole edge on an 8-px boundary costs one extra latent column (0.875 < 0.95)."""
    masks = pack.solvers.masks
    hole = torch.zeros(1, 64, 64)
    hole[:, :, 32:] = 1.0
    observed = masks.latent_observed_mask(hole, (8, 8), "threshold", 0.95)
    assert observed[0, 0, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    soft = masks.latent_observed_mask(hole, (8, 8), "soft")
    assert soft[0, 0, 0, 3].item() == pytest.approx(0.875, abs=1e-3)
    grown = masks.latent_observed_mask(hole, (8, 8), "threshold", 0.95, grow=1)
    assert grown[0, 0, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]


def test_feathering_never_marks_hole_cells_known(pack):
    masks = pack.solvers.masks
    hole = torch.zeros(1, 64, 64)
    hole[:, 16:48, 16:48] = 1.0
    sharp = masks.latent_observed_mask(hole, (8, 8), "threshold", 0.95)
    feathered = masks.latent_observed_mask(hole, (8, 8), "threshold", 0.95, feather=1.0)
    assert torch.all(feathered <= sharp) and torch.all(feathered[sharp == 0] == 0)
    assert 0 < feathered[sharp == 1].min() < 1  # the known side of the border is softened


def test_paste_back_keeps_known_pixels_bit_exact(pack, generator):
    masks = pack.solvers.masks
    original, generated = torch.rand(2, 32, 32, 3, generator=generator), torch.rand(2, 32, 32, 3, generator=generator)
    hole = torch.zeros(2, 32, 32)
    hole[0, 8:20, 8:20] = 1.0
    hole[1, 4:30, 10:12] = 0.5
    pasted = masks.paste_back(original, generated, hole, feather_px=3.0)
    known = hole == 0
    assert torch.equal(pasted[known], original[known])
    assert torch.equal(pasted[0, 14, 14], generated[0, 14, 14])  # deep inside the hole: all generated
