"""The style-loss family (gram, w2, swd, nnfm) against values computed by hand."""

import math

import pytest
import torch

from mesh_style.backbone import IMAGENET, VGGFeatures
from mesh_style.style_losses import (
    LONG_RANGE_SHIFTS, STYLE_KINDS, FeatureTap, LongRangeLoss, MomentTap, StyleLoss, feature_mask, gram_matrix, shifted_correlation,
    shifted_correlations,
)


def test_gram_matrix_by_hand():
    # One image, 2 channels, 2 positions: f = [[1, 2], [3, 4]].
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    # G = f f^T / 2 = [[1+4, 3+8], [3+8, 9+16]] / 2
    expected = torch.tensor([[[2.5, 5.5], [5.5, 12.5]]])
    assert torch.allclose(gram_matrix(features), expected)


def test_masked_gram_uses_only_masked_positions():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    mask = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    # Only the second position (2, 4): G = [[4, 8], [8, 16]] / 1
    assert torch.allclose(gram_matrix(features, mask), torch.tensor([[[4.0, 8.0], [8.0, 16.0]]]))


def test_masked_gram_gradient_matches_finite_differences():
    features = torch.rand(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 1, 4, 5, dtype=torch.float64) > 0.4) * torch.rand(2, 1, 4, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda f: gram_matrix(f, mask), (features,))
    # Same values as the plain formula.
    flat, weights = features.reshape(2, 3, -1), mask.reshape(2, 1, -1)
    expected = (flat * weights) @ flat.transpose(1, 2) / weights.sum(-1, keepdim=True)
    assert torch.allclose(gram_matrix(features, mask), expected)


def test_masked_mean_and_second_moment_share_one_tap():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    tap = MomentTap(torch.tensor([0.25, 0.75]).view(1, 1, 1, 2))
    tap(features)
    # Position 0 is (1, 3) with weight 1/4, position 1 is (2, 4) with 3/4.
    assert torch.allclose(tap.mean, torch.tensor([[0.25 * 1 + 0.75 * 2, 0.25 * 3 + 0.75 * 4]]))
    assert torch.allclose(tap.second, torch.tensor([[[0.25 + 3.0, 0.75 + 6.0], [0.75 + 6.0, 2.25 + 12.0]]]))


def plain_moment_taps(style: StyleLoss, features: dict, ids: torch.Tensor) -> dict[str, MomentTap]:
    """Taps holding the masked moments of ``features`` computed by plain autograd, for views ``ids``."""
    taps = {}
    for layer in style.layers:
        x, w = features[layer].flatten(2), getattr(style, f"mask_{layer}")[ids].flatten(2)
        tap = MomentTap(w)
        tap.second = (x * w) @ x.transpose(1, 2) / w.sum(-1, keepdim=True)
        tap.mean = (x * w).sum(-1) / w.sum(-1)
        taps[layer] = tap
    return taps


@pytest.mark.parametrize("kind", ["gram", "w2"])
def test_moment_taps_in_the_trunk_give_autograd_gradients(kind):
    """Moments taken inside the trunk add their gradient into the trunk's in place; the gradient at
    the image equals plain autograd on moments of the trunk's outputs (w2 also uses the mean)."""
    torch.manual_seed(0)
    channels = [3, 8, 8, 16, 16]
    convs = [(torch.randn(o, i, 3, 3, dtype=torch.float64) / 4, torch.randn(o, dtype=torch.float64) / 4) for i, o in zip(channels, channels[1:])]
    layers = ["rgb", "relu1_1", "relu2_1", "relu2_2"]
    vgg = VGGFeatures((2, 2), convs, IMAGENET, layers).double()
    masks = torch.rand(3, 8, 8) > 0.5
    with torch.no_grad():
        painting = vgg(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    style = StyleLoss(kind, [painting], [1.0], dict.fromkeys(layers, 1.0), masks).double()
    ids = torch.tensor([2, 0])
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    view_weights = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def loss(taps: dict, features: dict) -> torch.Tensor:  # relu2_2 also feeds a content-like term
        return (style(taps) * view_weights).sum() + features["relu2_2"].square().mean()

    taps = style.taps(ids)
    features = vgg(images, taps)
    tapped, = torch.autograd.grad(loss(taps, features), images)

    features = vgg(images)
    plain, = torch.autograd.grad(loss(plain_moment_taps(style, features, ids), features), images)
    assert torch.allclose(tapped, plain, rtol=1e-7, atol=1e-12)


def test_gram_style_loss_by_hand_and_targets_are_buffers():
    # The painting: 2 channels at 2 positions, (2, 0) and (0, 2): Gram [[2, 0], [0, 2]].
    painting = torch.tensor([[2.0, 0.0], [0.0, 2.0]]).view(1, 2, 1, 2)
    # Two views of 2×2 pixels; view 1 sees the mesh only in its left column.
    masks = torch.tensor([[[1, 1], [1, 1]], [[1, 0], [1, 0]]], dtype=torch.bool)
    loss = StyleLoss("gram", [{"relu1_1": painting, "relu2_1": painting}], [1.0], {"relu1_1": 3.0, "relu2_1": 1.0}, masks)
    assert {name for name, _ in loss.named_buffers()} == {
        "layers.relu1_1.weights", "layers.relu1_1.targets", "layers.relu2_1.weights", "layers.relu2_1.targets", "mask_relu1_1", "mask_relu2_1",
    }
    assert loss.mask_relu2_1.shape == (2, 1, 1, 1) and loss.mask_relu2_1[1].item() == 0.5
    # View 0. relu1_1 (2×2): positions (2,0),(2,0) on top, (0,2),(0,2) below → gram [[2,0],[0,2]], exact.
    # relu2_1 (1×1): gram [[1,0],[0,0]] → error (1 + 4) / 8 = 0.625, weight 1/4.
    relu1 = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]).T.reshape(1, 2, 2, 2)
    features = {"relu1_1": relu1.expand(2, -1, -1, -1), "relu2_1": torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(2, -1, -1, -1)}
    # View 1 sees only the left column of relu1_1: (2,0) and (0,2) → gram [[2,0],[0,2]] as well.
    taps = loss.taps(torch.tensor([0, 1]))
    for layer, tap in taps.items():
        assert torch.equal(tap(features[layer]), features[layer])  # a tap passes its input through
    assert torch.allclose(loss(taps), torch.tensor([0.625 / 4, 0.625 / 4]))


def _loss_of(kind: str, paintings: list[torch.Tensor], weights: list[float], render: torch.Tensor) -> torch.Tensor:
    """One layer, every position on the mesh: the loss of ``render (1, C, H, W)``."""
    loss = StyleLoss(kind, [{"relu1_1": p} for p in paintings], weights, {"relu1_1": 1.0}, torch.ones(1, *render.shape[2:], dtype=torch.bool))
    taps = loss.taps(torch.tensor([0]))
    taps["relu1_1"](render)
    return loss(taps)


def _features(seed: int, channels: int = 4, size: int = 8) -> torch.Tensor:
    return torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float() + 1


@pytest.mark.parametrize("kind", STYLE_KINDS)
def test_every_kind_is_zero_on_the_painting_itself_and_positive_elsewhere(kind):
    painting = _features(0)
    assert _loss_of(kind, [painting], [1.0], painting).item() == pytest.approx(0.0, abs=1e-4)
    assert _loss_of(kind, [painting], [1.0], _features(1) * 2).item() > 0.01


@pytest.mark.parametrize("kind", STYLE_KINDS)
def test_blending_a_painting_with_itself_equals_the_painting(kind):
    painting, render = _features(0), _features(1)
    torch.manual_seed(3)  # swd draws its directions from the global generator
    one = _loss_of(kind, [painting], [1.0], render)
    torch.manual_seed(3)
    assert torch.allclose(_loss_of(kind, [painting, painting.clone()], [0.3, 0.9], render), one)


def test_a_blend_is_the_weighted_sum_of_distances():
    a, b, render = _features(0), _features(1) * 3, _features(2)
    blend = _loss_of("gram", [a, b], [1.0, 3.0], render)
    assert torch.allclose(blend, 0.25 * _loss_of("gram", [a], [1.0], render) + 0.75 * _loss_of("gram", [b], [1.0], render))


def test_w2_of_a_shifted_painting_is_the_shift_squared():
    """Same covariance, means apart by t: W2² = ‖t‖², divided by the painting's E‖f‖²."""
    painting = _features(0)
    shift = torch.tensor([0.5, -1.0, 0.0, 2.0]).view(1, 4, 1, 1)
    energy = painting.square().sum(1).mean()
    expected = shift.square().sum() / energy
    assert _loss_of("w2", [painting], [1.0], painting + shift).item() == pytest.approx(expected.item(), rel=1e-3)


def test_w2_of_a_scaled_painting_by_hand():
    """Centred features scaled by s: the covariance becomes s² Σ, W2² = (s − 1)² tr Σ."""
    painting = _features(0) - 1
    painting = painting - painting.mean((2, 3), keepdim=True)
    trace = painting.square().sum(1).mean()
    assert _loss_of("w2", [painting], [1.0], 3 * painting).item() == pytest.approx(4.0, rel=1e-3)  # (3 − 1)² tr Σ / tr Σ
    assert trace > 0


def test_swd_of_a_shifted_painting_is_the_mean_squared_projected_shift():
    painting = _features(0)
    shift = torch.tensor([0.5, -1.0, 0.0, 2.0])
    torch.manual_seed(7)
    value = _loss_of("swd", [painting], [1.0], painting + shift.view(1, 4, 1, 1)).item()
    torch.manual_seed(7)  # the same directions, drawn as the loss draws them
    directions = torch.nn.functional.normalize(torch.randn(4, 32), dim=0)
    projected = painting[0].flatten(1).T @ directions
    expected = (shift @ directions).square().mean() / projected.square().mean()
    assert value == pytest.approx(expected.item(), rel=1e-4)


def test_nnfm_by_hand():
    """Painting features e1 and e2; a render feature (1, 1) is 45° from both: 1 − cos 45°. A render
    feature 2·e1 matches e1 exactly (cosine ignores length)."""
    painting = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    render = torch.tensor([[1.0, 2.0, 1.0, 2.0], [1.0, 0.0, 1.0, 0.0]]).view(1, 2, 2, 2)  # (1, 1), (2, 0), twice
    expected = (1 - math.cos(math.pi / 4) + 0) / 2
    assert _loss_of("nnfm", [painting], [1.0], render).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("kind", ["swd", "nnfm"])
def test_feature_taps_skip_positions_off_the_mesh(kind):
    """A render equal to the painting on the mesh and anything off it scores 0."""
    painting = _features(0)[..., :4, :]
    render = torch.cat([painting, _features(5)[..., :4, :] * 9], 2)  # the bottom half is off the mesh
    mask = torch.cat([torch.ones(1, 4, 8), torch.zeros(1, 4, 8)], 1).bool()
    loss = StyleLoss(kind, [{"relu1_1": painting}], [1.0], {"relu1_1": 1.0}, mask)
    taps = loss.taps(torch.tensor([0]))
    assert isinstance(taps["relu1_1"], FeatureTap)
    taps["relu1_1"](render)
    assert loss(taps).item() == pytest.approx(0.0, abs=1e-5)


def test_feature_mask_is_coverage_fraction():
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool).view(1, 2, 4)
    assert torch.allclose(feature_mask(mask, (1, 2)), torch.tensor([0.75, 0.0]).view(1, 1, 1, 2))


def test_shifted_correlation_by_hand():
    # One view, 2 channels along a row of 4 positions: f0 = [1, 2, 3, 4], f1 = [1, 0, 1, 0].
    features = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 1.0, 0.0]]).view(1, 2, 1, 4)
    everywhere = torch.ones(1, 1, 1, 4)
    # Pairs one apart: (p, q) = (0, 1), (1, 2), (2, 3); C[a, b] = mean of f_a(p) f_b(q).
    expected = torch.tensor([[(2 + 6 + 12) / 3, (0 + 2 + 0) / 3], [(2 + 0 + 4) / 3, 0.0]])
    assert torch.allclose(shifted_correlation(features, everywhere, 1, 3)[0], expected)
    # Position 2 off the mesh: only the pair (0, 1) is left.
    mask = torch.tensor([1.0, 1.0, 0.0, 1.0]).view(1, 1, 1, 4)
    assert torch.allclose(shifted_correlation(features, mask, 1, 3)[0], torch.tensor([[2.0, 0.0], [2.0, 0.0]]))
    # Down the columns: the same row transposed gives the same numbers.
    assert torch.allclose(shifted_correlation(features.transpose(2, 3), everywhere.transpose(2, 3), 1, 2), shifted_correlation(features, everywhere, 1, 3))
    # A bfloat16 trunk's features (these small integers are exact in it): products in bfloat16, result in float32.
    narrow = shifted_correlation(features.bfloat16(), everywhere, 1, 3)
    assert narrow.dtype == torch.float32
    assert torch.allclose(narrow[0], expected)


def _plain_shifted_correlation(features: torch.Tensor, weights: torch.Tensor, shift: int, axis: int) -> torch.Tensor:
    """The definition, written out with slices and left to autograd."""
    size = features.shape[axis]
    a, b = features.narrow(axis, 0, size - shift).flatten(2), features.narrow(axis, shift, size - shift).flatten(2)
    pairs = (weights.narrow(axis, 0, size - shift) * weights.narrow(axis, shift, size - shift)).flatten(2)
    return (a * pairs) @ b.transpose(1, 2) / pairs.sum(2, keepdim=True).clamp_min(1e-8)


def test_shifted_correlations_values_and_gradients_match_the_plain_definition():
    """The padded-rows layout and the hand-written backward of :func:`shifted_correlations` against the
    definition on random features and a ragged mask (float64): every shift of both layers, along the
    rows and down the columns, including a shift past the edge (no pairs: zero)."""
    torch.manual_seed(0)
    features = torch.randn(2, 3, 9, 11, dtype=torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    weights = (torch.rand(2, 1, 9, 11, dtype=torch.float64) > 0.3) * torch.rand(2, 1, 9, 11, dtype=torch.float64)
    terms = [(1, 2), (2, 3), (4, 2), (8, 3), (10, 2)]
    ours = shifted_correlations(features, weights, terms)
    plain = torch.stack([_plain_shifted_correlation(features, weights, s, a) for s, a in terms[:-1]])
    assert torch.allclose(ours[:-1], plain)
    assert ours[-1].abs().max() == 0
    probe = torch.randn_like(ours)
    ours_grad, = torch.autograd.grad((ours * probe).sum(), features)
    plain_grad, = torch.autograd.grad((plain * probe[:-1]).sum(), features)
    assert torch.allclose(ours_grad, plain_grad)


def test_long_range_loss_tells_long_strokes_from_the_same_marks_shuffled():
    """A painting of horizontal strokes (features constant along each row) and a render of the same
    features at shuffled positions: the Gram loss cannot tell them apart (0), the long-range term
    can; the painting itself scores 0, and the targets are buffers."""
    generator = torch.Generator().manual_seed(0)
    sizes = {"relu3_1": 16, "relu4_1": 8}  # 64² renders: cells of 4 and 8 pixels
    painting = {layer: torch.rand(1, 4, size, 1, generator=generator).expand(1, 4, size, size).contiguous() for layer, size in sizes.items()}
    shuffled = {}
    for layer, f in painting.items():
        order = torch.randperm(f[0, 0].numel(), generator=generator)
        shuffled[layer] = f.flatten(2)[..., order].view_as(f)
    masks = torch.ones(1, 64, 64, dtype=torch.bool)
    long_range = LongRangeLoss([painting], [1.0], masks)
    assert {name for name, _ in long_range.named_buffers() if name.startswith("target_")} == {
        f"target_{layer}_{shift}_{axis}" for layer, shifts in LONG_RANGE_SHIFTS.items() for shift in shifts for axis in (2, 3)
    }
    view = torch.tensor([0])
    assert long_range(painting, view).item() == pytest.approx(0.0, abs=1e-10)
    assert long_range(shuffled, view).item() > 0.01
    gram = StyleLoss("gram", [painting], [1.0], dict.fromkeys(sizes, 1.0), masks)
    taps = gram.taps(view)
    for layer, tap in taps.items():
        tap(shuffled[layer])
    assert gram(taps).item() == pytest.approx(0.0, abs=1e-10)


def test_long_range_term_on_the_tapped_trunk_gives_autograd_gradients():
    """The long-range term reads the trunk's outputs, which also pass through the Gram loss's
    in-place moment taps: the gradient at the image equals plain autograd on untapped features."""
    torch.manual_seed(0)
    channels = [3, 4, 4, 4, 4]
    convs = [(torch.randn(o, i, 3, 3, dtype=torch.float64) / 3, torch.randn(o, dtype=torch.float64) / 4) for i, o in zip(channels, channels[1:])]
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    vgg = VGGFeatures((1, 1, 1, 1), convs, IMAGENET, layers).double()
    masks = torch.rand(2, 64, 64) > 0.3
    with torch.no_grad():
        painting = vgg(torch.rand(1, 3, 64, 64, dtype=torch.float64))
    style = StyleLoss("gram", [painting], [1.0], dict.fromkeys(layers, 1.0), masks).double()
    long_range = LongRangeLoss([painting], [1.0], masks).double()
    ids = torch.tensor([1, 0])
    images = torch.rand(2, 3, 64, 64, dtype=torch.float64, requires_grad=True)

    taps = style.taps(ids)
    features = vgg(images, taps)
    tapped, = torch.autograd.grad((style(taps) + 3 * long_range(features, ids)).sum(), images)

    features = vgg(images)
    plain, = torch.autograd.grad((style(plain_moment_taps(style, features, ids)) + 3 * long_range(features, ids)).sum(), images)
    assert long_range(features, ids).min() > 0
    assert torch.allclose(tapped, plain, rtol=1e-7, atol=1e-12)


def test_long_range_loss_multiplies_only_the_box_around_the_meshes_and_matches_the_definition():
    """Meshes in small boxes at different places (and a view with no mesh): the loss and its
    gradient equal the definition over the whole frame, written out with plain slices (float64)."""
    torch.manual_seed(0)
    sizes = {"relu3_1": 32, "relu4_1": 16}  # 128² renders
    painting = {layer: torch.rand(1, 3, size, size, dtype=torch.float64) for layer, size in sizes.items()}
    masks = torch.zeros(3, 128, 128, dtype=torch.bool)
    masks[0, 20:70, 30:60] = True
    masks[1, 64:120, 8:100] = torch.rand(56, 92) > 0.2
    long_range = LongRangeLoss([painting], [1.0], masks).double()
    assert long_range.boxes["relu3_1"] == [(5, 18, 7, 15), (16, 30, 2, 25), (0, 0, 0, 0)]
    ids = torch.tensor([1, 2, 0])
    features = {layer: torch.randn(3, 3, size, size, dtype=torch.float64, requires_grad=True) for layer, size in sizes.items()}
    ours = long_range(features, ids)

    plain = torch.zeros(3, dtype=torch.float64)
    for layer, shift, axis in long_range.terms:
        weights = feature_mask(masks[ids], (sizes[layer], sizes[layer])).double()
        target = getattr(long_range, f"target_{layer}_{shift}_{axis}")[0]
        plain = plain + (_plain_shifted_correlation(features[layer], weights, shift, axis) - target).square().sum((1, 2)) / target.square().sum()
    plain = plain / len(long_range.terms)
    assert torch.allclose(ours, plain)
    assert ours[1].item() == pytest.approx(1.0)  # no mesh: no pairs, every term's error is its target's norm
    probe = torch.randn(3, dtype=torch.float64)
    ours_grad = torch.autograd.grad((ours * probe).sum(), list(features.values()))
    plain_grad = torch.autograd.grad((plain * probe).sum(), list(features.values()))
    for a, b in zip(ours_grad, plain_grad):
        assert torch.allclose(a, b)
