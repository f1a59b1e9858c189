"""Bilinear taps, REPEAT wrapping and the texture pyramid."""

import torch

from mesh_style.textures import TextureLayout, TexturePyramid, bilinear_taps, gather_bilinear


def _sample(texture: torch.Tensor, uv: list[list[float]]) -> torch.Tensor:
    layout = TextureLayout(((texture.shape[0], texture.shape[1]),))
    uv_t = torch.tensor(uv)
    index, weight = bilinear_taps(uv_t, torch.zeros(len(uv), dtype=torch.long), layout)
    return gather_bilinear(layout.flatten([texture]), index, weight)


def test_texel_centres_and_orientation():
    # 2×2 texture; row 0 is the top (v = 1), so texel (row 1, col 0) is at UV (0.25, 0.25).
    texture = torch.tensor([[[0.0], [1.0]], [[2.0], [3.0]]])
    values = _sample(texture, [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75], [0.5, 0.5]])
    assert torch.allclose(values.squeeze(-1), torch.tensor([2.0, 3.0, 0.0, 1.0, 1.5]))


def test_uvs_wrap_around():
    texture = torch.arange(12.0).view(3, 4, 1)
    uv = [[0.3, 0.6], [0.9, 0.2]]
    shifted = [[u + 2.0, v - 3.0] for u, v in uv]
    assert torch.allclose(_sample(texture, uv), _sample(texture, shifted), atol=1e-5)
    # Halfway between the last and the first column blends both (REPEAT, not clamp).
    row = torch.tensor([[[0.0], [0.0], [0.0], [8.0]]])
    assert torch.allclose(_sample(row, [[0.0, 0.5]]), torch.tensor([[4.0]]))


def test_gradient_reaches_only_sampled_texels():
    texture = torch.zeros(4, 4, 3, requires_grad=True)
    layout = TextureLayout(((4, 4),))
    index, weight = bilinear_taps(torch.tensor([[0.125, 0.875]]), torch.zeros(1, dtype=torch.long), layout)
    gather_bilinear(layout.flatten([texture]), index, weight).sum().backward()
    touched = texture.grad.abs().sum(-1) > 0
    assert touched.sum() == 1 and touched[0, 0]  # exactly the top-left texel's centre


def test_layout_of_several_materials_round_trips():
    images = [torch.rand(2, 3, 3), torch.rand(4, 1, 3)]
    layout = TextureLayout(((2, 3), (4, 1)))
    flat = layout.flatten(images)
    assert flat.shape == (10, 3) and layout.offsets == (0, 6)
    assert all(torch.equal(a, b) for a, b in zip(layout.unflatten(flat), images))


def test_pyramid_starts_at_the_texture_and_stays_in_range():
    image = torch.rand(32, 16, 3) * 0.98 + 0.01
    pyramid = TexturePyramid([image], levels=4)
    assert [tuple(p.shape[-2:]) for p in pyramid.params] == [(32, 16), (16, 8), (8, 4), (4, 2)][: len(pyramid.params)]
    assert torch.allclose(pyramid(), image.reshape(-1, 3), atol=1e-5)
    with torch.no_grad():
        for p in pyramid.params:
            p.add_(50.0 * torch.randn_like(p))
    texels = pyramid()
    assert texels.min() >= 0 and texels.max() <= 1
