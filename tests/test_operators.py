"""The measurement operators: adjoints, reproducible degradations, nonlinearity, noise estimation."""
import pytest
import torch


def linear_operators(pack):
    ops = pack.solvers.operators
    soft = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    kernel_image = torch.rand(1, 5, 7, 3, generator=torch.Generator().manual_seed(1))
    return {"inpaint_soft": ops.Inpainting(soft), "gaussian": ops.gaussian_blur(5, 1.5),
            "motion": ops.motion_blur(9, torch.Generator().manual_seed(2)),
            "kernel_image": ops.kernel_from_image(kernel_image), "sr_box": ops.Downsample(4, "box"),
            "sr_bicubic": ops.Downsample(4, "bicubic"), "denoise": ops.Identity(),
            "greyscale": ops.Greyscale(), "greyscale_custom": ops.Greyscale((1.0, 3.0, 0.0)),
            "blur_then_sr": ops.Composed([ops.gaussian_blur(5, 1.5), ops.Downsample(2, "bicubic")]),
            "blur_sr_grey": ops.Composed([ops.motion_blur(5, torch.Generator().manual_seed(3)),
                                          ops.Downsample(2, "box"), ops.Greyscale()])}


ALL_LINEAR = ["inpaint_soft", "gaussian", "motion", "kernel_image", "sr_box", "sr_bicubic", "denoise", "greyscale",
              "greyscale_custom", "blur_then_sr", "blur_sr_grey"]


@pytest.mark.parametrize("name", ALL_LINEAR)
def test_adjoint_identity(pack, name, generator):
    operator = linear_operators(pack)[name]
    x = torch.randn(2, 3, 16, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(operator.measurement_shape(x.shape), generator=generator, dtype=torch.float64)
    lhs = (operator.forward(x) * y).sum()
    rhs = (x * operator.adjoint(y)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-10)


@pytest.mark.parametrize("name", ["gaussian", "motion", "sr_box", "greyscale", "blur_sr_grey"])
def test_closed_form_adjoint_matches_autograd(pack, name, generator):
    operator = linear_operators(pack)[name]
    y = torch.randn(operator.measurement_shape((1, 3, 16, 16)), generator=generator, dtype=torch.float64)
    generic = pack.solvers.operators.Operator.adjoint(operator, y)  # the vector-Jacobian product of A
    torch.testing.assert_close(operator.adjoint(y), generic)


def test_kernels_are_normalised_and_motion_kernels_come_from_the_seed(pack):
    ops = pack.solvers.operators
    first = ops.motion_blur(15, torch.Generator().manual_seed(5)).kernel
    assert torch.equal(first, ops.motion_blur(15, torch.Generator().manual_seed(5)).kernel)
    assert not torch.equal(first, ops.motion_blur(15, torch.Generator().manual_seed(6)).kernel)
    assert float(first.sum()) == pytest.approx(1.0) and float(ops.gaussian_blur(9, 2.0).kernel.sum()) == pytest.approx(1.0)
    flat = torch.ones(1, 3, 32, 32)  # a normalised blur keeps a flat image flat away from the border
    assert torch.allclose(ops.gaussian_blur(9, 2.0).forward(flat)[..., 8:-8, 8:-8], flat[..., 8:-8, 8:-8])


def test_degradation_is_reproducible_by_seed(pack, generator):
    operator = pack.solvers.operators.gaussian_blur(5, 1.0)
    x = torch.rand(1, 3, 16, 16, generator=generator) * 2 - 1
    first = operator.simulate(x, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(first, operator.simulate(x, 0.1, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, operator.simulate(x, 0.1, torch.Generator().manual_seed(4)))
    noise = first - operator.forward(x)
    assert float(noise.std()) == pytest.approx(0.1, rel=0.1)


def test_nonlinear_operator_has_gradients_but_no_adjoint(pack, generator):
    operator = pack.solvers.operators.ClipHDR(2.0)
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
    estimate = pack.solvers.operators.estimate_noise_std
    noise = sigma * torch.randn(512, 512, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, 512)
    smooth = 0.3 + 0.4 * ramp[None] * ramp[:, None]     # no texture: the estimate is the noise alone
    assert float(estimate((smooth + noise)[None, None])) == pytest.approx(sigma, rel=0.05)
    photo = torch.from_numpy(camera().copy()).float() / 255.0 + noise  # a real photo: compare with skimage's
    reference = float(estimate_sigma(photo.numpy()))                    # wavelet MAD estimator
    assert float(estimate(photo[None, None])) == pytest.approx(reference, rel=0.05)


@pytest.mark.parametrize("name", ["sr_bicubic", "gaussian", "inpaint_soft", "blur_then_sr"])
def test_adjoint_inside_inference_mode(pack, name, generator):
    """ComfyUI runs every node under torch.inference_mode; the generic adjoint must still work there."""
    operator = linear_operators(pack)[name]
    x = torch.randn(2, 3, 16, 16, generator=generator)
    y = torch.randn(operator.measurement_shape(x.shape), generator=generator)
    expected = operator.adjoint(y)
    with torch.inference_mode():
        inside = pack.solvers.operators.Operator.adjoint(operator, y.clone())
    assert torch.isfinite(inside).all()
    torch.testing.assert_close(inside, pack.solvers.operators.Operator.adjoint(operator, y))
    torch.testing.assert_close(expected, operator.adjoint(y))


@pytest.mark.parametrize("name", ALL_LINEAR)
def test_operators_know_their_own_gram_diagonal_and_mask_form(pack, name, generator):
    """What solvers ask of an operator comes from the operator: where it claims A Aᵀ is diagonal, the dense
    A Aᵀ is that diagonal (and where it claims nothing, A Aᵀ is not diagonal); where it claims to be a
    per-pixel weight, m ⊙ known reproduces A x."""
    operator = linear_operators(pack)[name]
    x = torch.randn(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    if name == "inpaint_soft":
        operator = pack.solvers.operators.Inpainting(operator.observed_mask[:1, :, :8, :8].double())
    y = operator.forward(x)
    per_item = pack.solvers.linear_gaussian.dense_matrix(lambda w: operator.forward(operator.adjoint(w)),
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


def test_greyscale_reads_black_and_white_photos_and_keeps_grey_in_place(pack, generator):
    ops = pack.solvers.operators
    assert ops.Greyscale((1.0, 3.0, 0.0)).weights.tolist() == [0.25, 0.75, 0.0]  # scaled to sum 1
    grey = torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1
    photo = grey.expand(-1, 3, -1, -1)  # a black-and-white photo: R = G = B
    for weights in ops.LUMINANCE_WEIGHTS.values():
        operator = ops.Greyscale(weights)
        torch.testing.assert_close(operator.measurement_from_pixels(photo), grey)
        torch.testing.assert_close(operator.forward(photo), grey)  # mid-grey stays mid-grey, in [−1, 1] units
        shown = operator.measurement_as_pixels(grey)
        assert shown.shape == photo.shape and torch.equal(shown, photo)
        torch.testing.assert_close(operator.forward(operator.initial_guess(grey)), grey)
    colour = torch.rand(1, 3, 8, 8, generator=generator) * 2 - 1
    rec709 = ops.Greyscale(ops.LUMINANCE_WEIGHTS["Rec. 709 (HD video, sRGB)"])
    expected = 0.2126 * colour[:, 0] + 0.7152 * colour[:, 1] + 0.0722 * colour[:, 2]
    torch.testing.assert_close(rec709.measurement_from_pixels(colour)[:, 0], expected)
    for bad in [(0.0, 0.0, 0.0), (-0.2, 0.6, 0.6), (float("nan"), 1.0, 1.0), (1.0, 1.0)]:
        with pytest.raises(ValueError, match="greyscale weights"):
            ops.Greyscale(bad)
    with pytest.raises(ValueError, match="image: 1 channel, but the greyscale operator takes RGB"):
        ops.Greyscale().check_fits((1, 1, 8, 8), "image")


def test_composed_operator_applies_its_stages_in_order(pack, generator):
    ops = pack.solvers.operators
    blur, down, grey = ops.gaussian_blur(5, 1.5), ops.Downsample(2, "bicubic"), ops.Greyscale()
    composed = ops.Composed([ops.Composed([blur, down]), grey])  # nesting flattens
    assert composed.stages == [blur, down, grey] and composed.linear and composed.shift_invariant
    x = torch.rand(2, 3, 16, 16, generator=generator) * 2 - 1
    torch.testing.assert_close(composed.forward(x), grey.forward(down.forward(blur.forward(x))))
    assert composed.measurement_shape(x.shape) == (2, 1, 8, 8) and composed.input_shape((2, 1, 8, 8)) == (2, 3, 16, 16)
    assert composed.initial_guess(composed.forward(x)).shape == x.shape
    assert composed.describe().startswith("gaussian blur") and " then greyscale" in composed.describe()
    with pytest.raises(ValueError, match="image after gaussian blur std 1.5 .*: size 16x15 is not a multiple"):
        composed.check_fits((1, 3, 15, 16), "image")
    with pytest.raises(ValueError, match="image after greyscale .*: 1 channel"):
        ops.Composed([grey, grey]).check_fits((1, 3, 8, 8), "image")
    saturating = ops.Composed([blur, ops.ClipHDR(2.0)])  # a nonlinear stage: gradients, no adjoint
    assert not saturating.linear and not ops.Composed([down, ops.Inpainting(torch.ones(1, 1, 8, 8))]).shift_invariant
    with pytest.raises(TypeError, match="not linear"):
        saturating.adjoint(x)
    probe = x.clone().requires_grad_()
    saturating.forward(probe).square().sum().backward()
    assert probe.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least one stage"):
        ops.Composed([])
