"""Losses against values computed by hand."""

import pytest
import torch

from mesh_style.backbone import IMAGENET, VGGFeatures
from mesh_style.losses import EPSILON, ContentLoss, StyleLoss, chroma_smoothness, feature_mask, gram_matrix, relative_error, total_variation


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


def test_gram_taps_in_the_trunk_give_autograd_gradients():
    """Gram matrices taken inside the trunk add their gradient into the trunk's in place; the
    gradient at the image equals plain autograd on Grams of the trunk's outputs."""
    torch.manual_seed(0)
    channels = [3, 8, 8, 16, 16]
    convs = [(torch.randn(o, i, 3, 3, dtype=torch.float64) / 4, torch.randn(o, dtype=torch.float64) / 4) for i, o in zip(channels, channels[1:])]
    layers = ["rgb", "relu1_1", "relu2_1", "relu2_2"]
    vgg = VGGFeatures((2, 2), convs, IMAGENET, layers).double()
    masks = torch.rand(3, 8, 8) > 0.5
    targets = {layer: torch.rand(c, c, dtype=torch.float64) for layer, c in zip(layers, [3, 8, 16, 16])}
    style = StyleLoss(targets, dict.fromkeys(layers, 1.0), masks).double()
    ids = torch.tensor([2, 0])
    images = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    view_weights = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def loss(grams: dict, features: dict) -> torch.Tensor:  # relu2_2 also feeds a content-like term
        return (style(grams) * view_weights).sum() + features["relu2_2"].square().mean()

    taps = style.taps(ids)
    features = vgg(images, taps)
    tapped, = torch.autograd.grad(loss({layer: tap.gram for layer, tap in taps.items()}, features), images)

    features = vgg(images)
    def plain_gram(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x, w = x.flatten(2), mask.flatten(2)
        return (x * w) @ x.transpose(1, 2) / w.sum(-1, keepdim=True)
    grams = {layer: plain_gram(features[layer], getattr(style, f"mask_{layer}")[ids]) for layer in layers}
    plain, = torch.autograd.grad(loss(grams, features), images)
    assert torch.allclose(tapped, plain, rtol=1e-9, atol=0)


def test_relative_error_by_hand():
    value = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [3.0, 4.0]])
    # row 0: (0 + 4) / (1 + 0) = 4; row 1: (9 + 16) / (9 + 16) = 1
    assert torch.allclose(relative_error(value, target), torch.tensor([4.0, 1.0]))


def test_content_loss_by_hand():
    targets = torch.tensor([[1.0, 1.0], [2.0, 0.0]]).view(2, 2, 1, 1)
    loss = ContentLoss("relu4_2", targets)
    features = {"relu4_2": torch.tensor([[2.0, 0.0]]).view(1, 2, 1, 1)}
    # against view 0: ((2-1)² + (0-1)²) / (1 + 1) = 1; against view 1: 0
    assert torch.allclose(loss(features, torch.tensor([0])), torch.tensor([1.0]))
    assert torch.allclose(loss(features, torch.tensor([1])), torch.tensor([0.0]))


def test_style_loss_by_hand_and_targets_are_buffers():
    target = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    # Two views of 2×2 pixels; view 1 sees the mesh only in its left column.
    masks = torch.tensor([[[1, 1], [1, 1]], [[1, 0], [1, 0]]], dtype=torch.bool)
    loss = StyleLoss({"relu1_1": target, "relu2_1": target}, {"relu1_1": 3.0, "relu2_1": 1.0}, masks)
    assert {name for name, _ in loss.named_buffers()} == {"target_relu1_1", "target_relu2_1", "mask_relu1_1", "mask_relu2_1"}
    assert loss.mask_relu2_1.shape == (2, 1, 1, 1) and loss.mask_relu2_1[1].item() == 0.5
    # View 0. relu1_1 (2×2): positions (2,0),(2,0) on top, (0,2),(0,2) below → gram [[2,0],[0,2]], exact.
    # relu2_1 (1×1): gram [[1,0],[0,0]] → error (1 + 4) / 8 = 0.625, weight 1/4.
    relu1 = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0]]).T.reshape(1, 2, 2, 2)
    features = {"relu1_1": relu1.expand(2, -1, -1, -1), "relu2_1": torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).expand(2, -1, -1, -1)}
    # View 1 sees only the left column of relu1_1: (2,0) and (0,2) → gram [[2,0],[0,2]] as well.
    taps = loss.taps(torch.tensor([0, 1]))
    for layer, tap in taps.items():
        assert torch.equal(tap(features[layer]), features[layer])  # a tap passes its input through
    assert torch.allclose(loss({layer: tap.gram for layer, tap in taps.items()}), torch.tensor([0.625 / 4, 0.625 / 4]))


def test_feature_mask_is_coverage_fraction():
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool).view(1, 2, 4)
    assert torch.allclose(feature_mask(mask, (1, 2)), torch.tensor([0.75, 0.0]).view(1, 1, 1, 2))


def test_total_variation_by_hand():
    image = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).unsqueeze(-1)
    # vertical diffs: (0-0), (0-1) → 1; horizontal: (1-0), (0-0) → 1; mean over 4 diffs = 0.5
    assert total_variation([image]).item() == pytest.approx(0.5)


def test_chroma_smoothness_by_hand():
    """Pure red, grey, pure red in a row. Rec. 601 chroma: red has Y = 0.299, Cb = 0.564·(0 − 0.299),
    Cr = 0.713·(1 − 0.299); grey has none. Each of the two pairs differs by d = √(Cb² + Cr²), which
    costs √(d² + ε²) − ε (smooth at 0)."""
    red, grey = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.5, 0.5, 0.5])
    images = torch.stack([red, grey, red], 1).view(1, 3, 1, 3)
    d2 = (0.564 * 0.299) ** 2 + (0.713 * 0.701) ** 2
    step = (d2 + EPSILON**2) ** 0.5 - EPSILON
    assert torch.allclose(chroma_smoothness(images, torch.ones(1, 1, 3, dtype=torch.bool)), torch.tensor([step]), atol=1e-5)
    # A pair with a pixel off the mesh does not count; a view with no pair gives 0, not NaN.
    off = torch.tensor([[[True, True, False]]])
    assert torch.allclose(chroma_smoothness(images, off), torch.tensor([step]), atol=1e-5)
    assert chroma_smoothness(images, torch.tensor([[[True, False, True]]])).item() == 0.0
    # Brightness alone is free: black next to white costs nothing.
    ramp = torch.tensor([0.0, 1.0, 0.0]).expand(3, 3).reshape(1, 3, 1, 3)
    assert chroma_smoothness(ramp, torch.ones(1, 1, 3, dtype=torch.bool)).abs().item() < 1e-6
