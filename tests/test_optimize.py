"""The content loss's weights and the texture's moving average over the steps (``optim.average``),
with values computed by hand."""

import torch

from mesh_style.optimize import MovingAverage, content_weights
from mesh_style.shader import ViewCache


def _cache(mask: list[list[bool]], reads: list[int]) -> ViewCache:
    """One view whose mesh pixels (row by row) each read one texel, ``reads``, with all their weight."""
    mask_t = torch.tensor([mask])
    p = len(reads)
    index = torch.zeros(p, 4, dtype=torch.int32)
    index[:, 0] = torch.tensor(reads)
    weight = torch.zeros(p, 4)
    weight[:, 0] = 1
    return ViewCache(
        mask=mask_t, pixel=mask_t.flatten(1).nonzero()[:, 1], index=index, weight=weight, shading=torch.ones(p),
        facing=torch.ones(p), start=torch.tensor([0, p]), footprint=torch.ones(p),
    )


def test_content_weights_drop_flat_materials_and_weigh_the_background_by_the_textured_share():
    flat = torch.tensor([True, False])  # texel 0: a flat material, texel 1: a textured one
    cache = _cache([[True, True, True, False], [False, False, False, False]], reads=[0, 1, 1])
    # mesh pixels 0, 1, 1; background 2/3, the textured share of the view's mesh pixels
    image = torch.tensor([[0, 1, 1, 2 / 3], [2 / 3] * 4])
    assert torch.allclose(content_weights(flat, cache, (2, 4)), image.view(1, 1, 2, 4))
    assert torch.allclose(content_weights(flat, cache, (1, 2)), torch.tensor([[(1 + 4 / 3) / 4, (1 + 6 / 3) / 4]]).view(1, 1, 1, 2))
    assert content_weights(torch.tensor([False, False]), cache, (2, 4)) is None  # all textured: the loss as it was
    assert content_weights(torch.tensor([True, True]), cache, (2, 4)).abs().max() == 0  # nothing to hold


def test_moving_average_ramps_its_decay_up_over_the_first_updates():
    average = MovingAverage(0.95)
    # Decays min(0.95, (1 + k) / (10 + k)): the first update copies, then 2/11, then 3/12.
    expected = [0.0, 9 / 11, 0.25 * 9 / 11 + 0.75]
    for x, want in zip([0.0, 1.0, 1.0], expected):
        average.update(torch.full((4, 3), x))
        assert torch.allclose(average.value, torch.full((4, 3), want))
    assert average.updates == 3


def test_moving_average_settles_at_its_decay():
    average = MovingAverage(0.95)
    for _ in range(500):  # (1 + k) / (10 + k) passes 0.95 at k = 170
        average.update(torch.zeros(2, 3))
    average.update(torch.ones(2, 3))
    assert torch.allclose(average.value, torch.full((2, 3), 0.05))


def test_moving_average_does_not_alias_the_texels_it_was_given():
    average, texels = MovingAverage(0.5), torch.zeros(2, 3)
    average.update(texels)
    texels += 1  # the optimiser's next texels may reuse the tensor
    assert average.value.abs().max() == 0


def test_moving_average_state_round_trip():
    average = MovingAverage(0.9)
    for x in (0.2, 0.4, 0.8):
        average.update(torch.full((3, 3), x))
    restored = MovingAverage(0.9)
    restored.load_state_dict(average.state_dict(), torch.device("cpu"))
    for a in (average, restored):
        a.update(torch.ones(3, 3))
    assert restored.updates == average.updates == 4
    assert torch.equal(restored.value, average.value)
