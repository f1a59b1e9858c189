"""Filling texels that no view sees: values by hand."""

import torch

from mesh_style.textures import fill_unseen, push_pull, seen_texels


def test_single_seen_texel_colours_everything():
    image = torch.zeros(5, 7, 3)
    image[2, 3] = torch.tensor([0.2, 0.4, 0.6])
    seen = torch.zeros(5, 7, dtype=torch.bool)
    seen[2, 3] = True
    filled = fill_unseen(image, seen, gutter=1)
    assert torch.allclose(filled, torch.tensor([0.2, 0.4, 0.6]).expand(5, 7, 3), atol=1e-6)


def test_gutter_grows_each_island_from_its_own_colour():
    # Two islands in one row, red at column 0, blue at column 9; gutter 2.
    image = torch.zeros(1, 10, 3)
    image[0, 0] = torch.tensor([1.0, 0.0, 0.0])
    image[0, 9] = torch.tensor([0.0, 0.0, 1.0])
    seen = torch.zeros(1, 10, dtype=torch.bool)
    seen[0, 0] = seen[0, 9] = True
    filled = fill_unseen(image, seen, gutter=2)
    assert torch.allclose(filled[0, 1:3], torch.tensor([1.0, 0.0, 0.0]).expand(2, 3))
    assert torch.allclose(filled[0, 7:9], torch.tensor([0.0, 0.0, 1.0]).expand(2, 3))
    middle = filled[0, 3:7]
    assert (middle[:, 0] + middle[:, 2] - 1).abs().max() < 1e-5  # a blend of the two, nothing else
    assert torch.equal(filled[seen], image[seen])  # seen texels are never touched


def test_push_pull_keeps_known_and_fills_all():
    image = torch.rand(3, 9, 6)
    known = torch.rand(9, 6) > 0.7
    known[0, 0] = True
    filled = push_pull(image, known)
    assert torch.equal(filled[:, known], image[:, known])
    assert torch.isfinite(filled).all() and filled.min() >= image.min() - 1e-6 and filled.max() <= image.max() + 1e-6


def test_seen_texels_ignore_zero_weight_taps():
    index = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]], dtype=torch.int32)
    weight = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert seen_texels(index, weight, 9).tolist() == [True, True] + [False] * 7
