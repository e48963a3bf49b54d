"""The fitted linear surrogate of a decoder behind DInG Restore's `fitted` latent solver
(solvers/decoder_surrogate.py): exact for a linear local decoder, an exact adjoint pair, and Broyden's
secant condition along the steps it is told about."""
import torch
import torch.nn.functional as F

CHANNELS, FACTOR, CELLS = 4, 8, 12


def local_linear_decoder(generator):
    """Dec(z) = pixel_shuffle(conv(z, K)): each latent cell's 3×3 neighbourhood → its 8×8 RGB pixels."""
    kernel = torch.randn(3 * FACTOR ** 2, CHANNELS, 3, 3, generator=generator, dtype=torch.float64) * 0.1
    return lambda z: F.pixel_shuffle(F.conv2d(z.double(), kernel, padding=1), FACTOR)


def fitted(pack, decode, point, generator, size=0.02):
    surrogate = pack.solvers.decoder_surrogate.LocalLinearDecoder(CHANNELS, FACTOR)
    count = surrogate.probes_needed(point.shape)
    directions = torch.randn((count,) + tuple(point.shape), generator=generator, dtype=torch.float64)
    differences = torch.stack([(decode(point + size * d) - decode(point)) / size for d in directions])
    surrogate.fit(directions, differences)
    return surrogate


def test_the_fit_is_exact_for_a_linear_local_decoder_from_one_probe(pack):
    generator = torch.Generator().manual_seed(0)
    decode = local_linear_decoder(generator)
    point = torch.randn(2, CHANNELS, CELLS, CELLS, generator=generator, dtype=torch.float64)
    surrogate = fitted(pack, decode, point, generator)
    assert surrogate.probes_needed(point.shape) == 1   # 144 cells: one probe per image is enough
    direction = torch.randn(point.shape, generator=generator, dtype=torch.float64)
    error = (surrogate.apply(direction) - decode(direction)).norm() / decode(direction).norm()
    assert error < 1e-2, float(error)   # the ridge's bias only (1e-3 of the Gram diagonal): measured 1.6e-3


def test_apply_and_adjoint_are_an_exact_adjoint_pair_with_secant_terms(pack):
    generator = torch.Generator().manual_seed(1)
    decode = local_linear_decoder(generator)
    point = torch.randn(2, CHANNELS, CELLS, CELLS, generator=generator, dtype=torch.float64)
    surrogate = fitted(pack, decode, point, generator)
    surrogate.secant_update(torch.randn(point.shape, generator=generator, dtype=torch.float64),
                            torch.randn(2, 3, CELLS * FACTOR, CELLS * FACTOR, generator=generator, dtype=torch.float64))
    latent = torch.randn(point.shape, generator=generator, dtype=torch.float64)
    pixels = torch.randn(2, 3, CELLS * FACTOR, CELLS * FACTOR, generator=generator, dtype=torch.float64)
    forward = (surrogate.apply(latent) * pixels).flatten(1).sum(1)
    backward = (latent * surrogate.adjoint(pixels)).flatten(1).sum(1)
    assert torch.allclose(forward, backward, rtol=1e-10, atol=1e-10)


def test_a_secant_update_reproduces_the_step_the_decoder_took(pack):
    """Through a nonlinear decoder the fit is only approximate; after Broyden's update L Δz = Δp exactly,
    and directions orthogonal to Δz are unchanged."""
    generator = torch.Generator().manual_seed(2)
    linear = local_linear_decoder(generator)

    def decode(z):
        return torch.tanh(linear(z))
    point = torch.randn(1, CHANNELS, CELLS, CELLS, generator=generator, dtype=torch.float64)
    surrogate = fitted(pack, decode, point, generator)
    step = torch.randn(point.shape, generator=generator, dtype=torch.float64)
    moved = decode(point + step) - decode(point)
    assert (surrogate.apply(step) - moved).norm() > 0.05 * moved.norm()
    orthogonal = torch.randn(point.shape, generator=generator, dtype=torch.float64)
    orthogonal -= step * (orthogonal * step).sum() / step.square().sum()
    before = surrogate.apply(orthogonal)
    surrogate.secant_update(step, moved)
    assert torch.allclose(surrogate.apply(step), moved, atol=1e-9)
    assert torch.allclose(surrogate.apply(orthogonal), before, atol=1e-9)
