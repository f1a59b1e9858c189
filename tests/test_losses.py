"""Losses against values computed by hand."""

import pytest
import torch

from mesh_style.losses import EPSILON, ContentLoss, chroma_smoothness, relative_error, total_variation


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
