"""Losses against values computed by hand."""

import math

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


def test_content_loss_weights_its_positions_by_hand():
    targets = torch.tensor([[1.0, 2.0]]).view(1, 1, 1, 2)
    features = {"relu4_2": torch.tensor([[3.0, 0.0]]).view(1, 1, 1, 2)}
    weights = torch.tensor([[0.25, 1.0]]).view(1, 1, 1, 2)
    # (0.25·(3-1)² + 1·(0-2)²) / (0.25·1² + 1·2²) = 5 / 4.25; unweighted (4 + 4) / 5
    assert torch.allclose(ContentLoss("relu4_2", targets, weights)(features, torch.tensor([0])), torch.tensor([5 / 4.25]))
    assert torch.allclose(ContentLoss("relu4_2", targets)(features, torch.tensor([0])), torch.tensor([8 / 5]))
    assert ContentLoss("relu4_2", targets, torch.zeros_like(weights))(features, torch.tensor([0])).item() == 0


def test_total_variation_by_hand():
    image = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).unsqueeze(-1)
    # vertical diffs: (0-0), (0-1) → 1; horizontal: (1-0), (0-0) → 1; mean over 4 diffs = 0.5
    assert total_variation([image]).item() == pytest.approx(0.5)


#: Chroma step from grey (none) to pure red: Y = 0.299, Cb = 0.564·(0 − 0.299), Cr = 0.713·(1 − 0.299).
GREY_TO_RED = ((0.564 * 0.299) ** 2 + (0.713 * 0.701) ** 2) ** 0.5


def _cost(d: float, edge: float) -> float:
    """One pair's cost by hand: the chroma step ``d``, smoothed at 0, then the Lorentzian."""
    d = (d**2 + EPSILON**2) ** 0.5 - EPSILON
    return edge * math.log(1 + d / edge)


def test_chroma_smoothness_by_hand():
    """Pure red, grey, pure red in a row: each of the two pairs differs by ``GREY_TO_RED``."""
    red, grey = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.5, 0.5, 0.5])
    images = torch.stack([red, grey, red], 1).view(1, 3, 1, 3)
    d = GREY_TO_RED
    everywhere = torch.ones(1, 1, 3, dtype=torch.bool)
    assert torch.allclose(chroma_smoothness(images, everywhere, 0.05), torch.tensor([_cost(d, 0.05)]), atol=1e-5)
    # A far edge is L1: the step's height (smoothed at 0).
    assert torch.allclose(chroma_smoothness(images, everywhere, 1e6), torch.tensor([(d**2 + EPSILON**2) ** 0.5 - EPSILON]), rtol=1e-4)
    # A pair with a pixel off the mesh does not count; a view with no pair gives 0, not NaN.
    off = torch.tensor([[[True, True, False]]])
    assert torch.allclose(chroma_smoothness(images, off, 0.05), torch.tensor([_cost(d, 0.05)]), atol=1e-5)
    assert chroma_smoothness(images, torch.tensor([[[True, False, True]]]), 0.05).item() == 0.0
    # Brightness alone is free: black next to white costs nothing.
    ramp = torch.tensor([0.0, 1.0, 0.0]).expand(3, 3).reshape(1, 3, 1, 3)
    assert chroma_smoothness(ramp, everywhere, 0.05).abs().item() < 1e-6


def test_chroma_smoothness_prefers_a_sharp_colour_edge_to_a_smeared_one():
    """Grey to red in one step, or in two through their mix. L1 costs both the same, so it gains as
    much from lowering an edge as from removing speckle, and merges colour regions; the Lorentzian
    (concave) costs the sharp edge less, so the edge survives. Chroma is linear in RGB: the mix
    sits halfway, d/2 from each."""
    grey, red = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([1.0, 0.0, 0.0])
    d = GREY_TO_RED
    sharp = torch.stack([grey, grey, red], 1).view(1, 3, 1, 3)
    smeared = torch.stack([grey, (grey + red) / 2, red], 1).view(1, 3, 1, 3)
    images, everywhere = torch.cat([sharp, smeared]), torch.ones(2, 1, 3, dtype=torch.bool)
    lorentz = chroma_smoothness(images, everywhere, 0.05)
    assert torch.allclose(lorentz, torch.tensor([_cost(d, 0.05) / 2, _cost(d / 2, 0.05)]), atol=1e-5)
    assert lorentz[0] < 0.75 * lorentz[1]
    l1 = chroma_smoothness(images, everywhere, 1e6)
    assert l1[0].item() == pytest.approx(l1[1].item(), abs=EPSILON)  # up to the smoothing at 0
