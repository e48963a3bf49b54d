"""The measurement operators: adjoints, reproducible degradations, nonlinearity, noise estimation."""
import pytest
import torch


def linear_operators(pack):
    ops = pack.solvers__operators
    soft = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    kernel_image = torch.rand(1, 5, 7, 3, generator=torch.Generator().manual_seed(1))
    return {"inpaint_soft": ops.Inpainting(soft), "gaussian": ops.gaussian_blur(5, 1.5),
            "motion": ops.motion_blur(9, torch.Generator().manual_seed(2)),
            "kernel_image": ops.kernel_from_image(kernel_image), "sr_box": ops.Downsample(4, "box"),
            "sr_bicubic": ops.Downsample(4, "bicubic"), "denoise": ops.Identity()}


@pytest.mark.parametrize("name", ["inpaint_soft", "gaussian", "motion", "kernel_image", "sr_box", "sr_bicubic", "denoise"])
def test_adjoint_identity(pack, name, generator):
    operator = linear_operators(pack)[name]
    x = torch.randn(2, 3, 16, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(operator.measurement_shape(x.shape), generator=generator, dtype=torch.float64)
    lhs = (operator.forward(x) * y).sum()
    rhs = (x * operator.adjoint(y)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-10)


@pytest.mark.parametrize("name", ["gaussian", "motion", "sr_box"])
def test_closed_form_adjoint_matches_autograd(pack, name, generator):
    operator = linear_operators(pack)[name]
    y = torch.randn(operator.measurement_shape((1, 3, 16, 16)), generator=generator, dtype=torch.float64)
    generic = pack.solvers__operators.Operator.adjoint(operator, y)  # the vector-Jacobian product of A
    torch.testing.assert_close(operator.adjoint(y), generic)


def test_kernels_are_normalised_and_motion_kernels_come_from_the_seed(pack):
    ops = pack.solvers__operators
    first = ops.motion_blur(15, torch.Generator().manual_seed(5)).kernel
    assert torch.equal(first, ops.motion_blur(15, torch.Generator().manual_seed(5)).kernel)
    assert not torch.equal(first, ops.motion_blur(15, torch.Generator().manual_seed(6)).kernel)
    assert float(first.sum()) == pytest.approx(1.0) and float(ops.gaussian_blur(9, 2.0).kernel.sum()) == pytest.approx(1.0)
    flat = torch.ones(1, 3, 32, 32)  # a normalised blur keeps a flat image flat away from the border
    assert torch.allclose(ops.gaussian_blur(9, 2.0).forward(flat)[..., 8:-8, 8:-8], flat[..., 8:-8, 8:-8])


def test_degradation_is_reproducible_by_seed(pack, generator):
    operator = pack.solvers__operators.gaussian_blur(5, 1.0)
    x = torch.rand(1, 3, 16, 16, generator=generator) * 2 - 1
    first = operator.simulate(x, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(first, operator.simulate(x, 0.1, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, operator.simulate(x, 0.1, torch.Generator().manual_seed(4)))
    noise = first - operator.forward(x)
    assert float(noise.std()) == pytest.approx(0.1, rel=0.1)


def test_nonlinear_operator_has_gradients_but_no_adjoint(pack, generator):
    operator = pack.solvers__operators.ClipHDR(2.0)
    x = (torch.rand(1, 3, 8, 8, generator=generator) - 0.5).requires_grad_()
    operator.forward(x).sum().backward()
    assert set(torch.unique(x.grad).tolist()) <= {0.0, 2.0} and x.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="not linear"):
        operator.adjoint(torch.zeros(1, 3, 8, 8))
    # nothing assumes linearity: A(a + b) ≠ A(a) + A(b)
    a, b = torch.full((1, 3, 2, 2), 0.4), torch.full((1, 3, 2, 2), 0.4)
    assert not torch.allclose(operator.forward(a + b), operator.forward(a) + operator.forward(b))


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_noise_estimate_matches_truth_and_scikit_image(pack, sigma):
    from skimage.data import camera
    from skimage.restoration import estimate_sigma
    estimate = pack.solvers__operators.estimate_noise_std
    noise = sigma * torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, 512)
    smooth = 0.3 + 0.4 * ramp[None] * ramp[:, None]     # no texture: the estimate is the noise alone
    assert float(estimate((smooth + noise)[None, None])) == pytest.approx(sigma, rel=0.05)
    photo = torch.from_numpy(camera().copy()).float() / 255.0 + noise  # a real photo: compare with skimage's
    reference = float(estimate_sigma(photo.numpy()))                    # wavelet MAD estimator
    assert float(estimate(photo[None, None])) == pytest.approx(reference, rel=0.05)


@pytest.mark.parametrize("name", ["sr_bicubic", "gaussian", "inpaint_soft"])
def test_adjoint_inside_inference_mode(pack, name, generator):
    """ComfyUI runs every node under torch.inference_mode; the generic adjoint must still work there."""
    operator = linear_operators(pack)[name]
    x = torch.randn(2, 3, 16, 16, generator=generator)
    y = torch.randn(operator.measurement_shape(x.shape), generator=generator)
    expected = operator.adjoint(y)
    with torch.inference_mode():
        inside = pack.solvers__operators.Operator.adjoint(operator, y.clone())
    assert torch.isfinite(inside).all()
    torch.testing.assert_close(inside, pack.solvers__operators.Operator.adjoint(operator, y))
    torch.testing.assert_close(expected, operator.adjoint(y))


@pytest.mark.parametrize("name", ["inpaint_soft", "gaussian", "motion", "kernel_image", "sr_box", "sr_bicubic", "denoise"])
def test_operators_know_their_own_gram_diagonal_and_mask_form(pack, name, generator):
    """What solvers ask of an operator comes from the operator: where it claims A Aᵀ is diagonal, the dense
    A Aᵀ is that diagonal (and where it claims nothing, A Aᵀ is not diagonal); where it claims to be a
    per-pixel weight, m ⊙ known reproduces A x."""
    operator = linear_operators(pack)[name]
    x = torch.randn(2, 1, 8, 8, generator=generator, dtype=torch.float64)
    if name == "inpaint_soft":
        operator = pack.solvers__operators.Inpainting(operator.observed_mask[:1, :, :8, :8].double())
    y = operator.forward(x)
    per_item = pack.solvers__linear_gaussian.dense_matrix(lambda w: operator.forward(operator.adjoint(w)),
                                                          tuple(y.shape[1:]))
    diagonal = operator.gram_diagonal(y[:1])
    if diagonal is None:
        assert (per_item - torch.diag(per_item.diagonal())).abs().max() > 1e-6
    else:
        torch.testing.assert_close(per_item, torch.diag(diagonal.reshape(-1)))
    mask_form = operator.mask_form(y)
    assert (mask_form is not None) == (name in ("inpaint_soft", "denoise"))
    if mask_form is not None:
        known, weight = mask_form
        torch.testing.assert_close(weight * known, y)
