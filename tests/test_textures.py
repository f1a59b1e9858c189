"""Bilinear taps, REPEAT wrapping and the texture pyramid."""

import pytest
import torch
import torch.nn.functional as F

from mesh_style.textures import (
    TextureLayout,
    TexturePyramid,
    bilinear_taps,
    flat_texels,
    gather_bilinear,
    resize_separable,
    seen_texels,
    taught_texels,
    texel_footprint,
)


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
    pyramid = TexturePyramid([image], levels=4, footprint=torch.ones(32 * 16))
    assert [tuple(p.shape[-2:]) for p in pyramid.params] == [(32, 16), (16, 8), (8, 4)]
    assert torch.allclose(pyramid(), image.reshape(-1, 3), atol=1e-5)
    with torch.no_grad():
        for p in pyramid.params:
            p.add_(50.0 * torch.randn_like(p))
    texels = pyramid()
    assert texels.min() >= 0 and texels.max() <= 1


def checker_noise(size: int = 64) -> torch.Tensor:
    """A texture of independent random texels: everything in it is finer than a 4× minification."""
    return torch.rand(size, size, 3, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05


def test_a_texture_finer_than_the_renders_reads_box_filtered_at_4x_minification():
    """Footprint 4 (four texels per rendered pixel side): what a pixel-centre lookup of the composed
    texture reads at 4× minification is the box-filtered (4×4 average) original, not the one texel
    it happens to hit, so the renders see no aliasing."""
    image = checker_noise()
    pyramid = TexturePyramid([image], levels=1, footprint=torch.full((64 * 64,), 4.0))
    composed = pyramid.images()[0].detach()
    pixel_centres = (composed[1::4, 1::4] + composed[2::4, 2::4] + composed[1::4, 2::4] + composed[2::4, 1::4]) / 4
    box = F.avg_pool2d(image.permute(2, 0, 1)[None], 4)[0].permute(1, 2, 0)
    point_sampled = image[1::4, 1::4]
    error = (pixel_centres - box).abs().mean()
    assert error < 0.05, error
    assert (point_sampled - box).abs().mean() > 3 * error  # what a naive 4× minification reads


def test_level_of_detail_follows_each_texels_footprint():
    """One texture, two islands: where the renders see four texels per pixel, the learned texture
    varies smoothly whatever the optimiser does; where they see one, single texels move."""
    footprint = torch.ones(64, 64)
    footprint[:, 32:] = 4.0
    pyramid = TexturePyramid([torch.full((64, 64, 3), 0.5)], levels=1, footprint=footprint.flatten())
    with torch.no_grad():
        pyramid.params[0].add_(torch.randn(pyramid.params[0].shape, generator=torch.Generator().manual_seed(1)))
    texture = pyramid.images()[0].permute(2, 0, 1)[None]
    laplacian = F.conv2d(texture.flatten(0, 1)[:, None], torch.tensor([[[[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]]])).abs()
    fine, coarse = laplacian[..., :, :28].mean(), laplacian[..., :, 36:].mean()
    assert coarse < 0.1 * fine


def test_texel_footprint_is_the_finest_pixel_that_reads_each_texel():
    layout = TextureLayout(((1, 7), (2, 2)))
    index = torch.tensor([[0, 1, 2, 3], [2, 3, 4, 5]], dtype=torch.int32)
    weight = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    footprint = texel_footprint(index, weight, torch.tensor([3.0, 2.0]), layout)
    assert footprint[:4].tolist() == [3.0, 3.0, 2.0, 2.0]
    # 4 (weight 0) and 5, 6 (unread) take their read neighbours' footprints; nothing reads material 1.
    assert ((footprint[4:7] >= 2.0) & (footprint[4:7] <= 3.0)).all()
    assert footprint[7:].tolist() == [1.0] * 4


def test_a_minified_view_teaches_the_texels_between_those_it_reads():
    """Pixels 8 texels wide read a 2×2 texel cluster every 8 texels over the top half of a 64² texture:
    all of that half takes their footprint and is taught, up to 7 texels past the last read row, so
    the fill after the loop leaves it alone (it used to rebuild it as a mosaic of 8-texel blocks)."""
    layout = TextureLayout(((64, 64),))
    corners = [8 * (64 * i + j) + 64 * 3 + 3 for i in range(4) for j in range(8)]  # rows 3, 11, ..., 27
    index = torch.tensor([[c, c + 1, c + 64, c + 65] for c in corners], dtype=torch.int32)
    weight = torch.full((len(corners), 4), 0.25)
    footprint = texel_footprint(index, weight, torch.full((len(corners),), 8.0), layout)
    assert torch.allclose(footprint, torch.tensor(8.0))
    seen = seen_texels(index, weight, layout.num_texels)
    assert seen.float().mean() == 4 * len(corners) / 64**2
    taught = taught_texels(seen, footprint, layout).view(64, 64)
    assert taught[:32].all()  # the last read row is 28: 7 texels past it is row 35
    assert not taught[36:].any()
    # Where the footprint is below 2 the reads are dense: nothing is taught but what is read.
    assert torch.equal(taught_texels(seen, torch.full_like(footprint, 1.9), layout), seen)


def test_coarser_levels_are_scaled_by_the_decay():
    image = torch.full((32, 32, 3), 0.5)
    pyramid = TexturePyramid([image], levels=3, footprint=torch.ones(32 * 32), decay=0.5)
    assert pyramid.scales == [[1.0, 0.5, 0.25]]
    with torch.no_grad():
        pyramid.params[2].fill_(1.0)  # the coarsest level, 8×8
    assert torch.allclose(pyramid(), torch.sigmoid(torch.tensor(0.25)).expand(32 * 32, 3), atol=1e-6)


@pytest.mark.parametrize(("source", "size"), [((4, 6), (64, 96)), ((5, 3), (17, 40)), ((32, 32), (48, 40))])
def test_the_separable_resize_is_bilinear_upsampling_values_and_gradients(source, size):
    """The CUDA path's two 1-D passes give F.interpolate's values and gradients (odd factors too)."""
    image = torch.rand(1, 3, *source, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(1, 3, *size, dtype=torch.float64)
    reference = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
    (grad_reference,) = torch.autograd.grad((reference * weights).sum(), image)
    ours = resize_separable(image, size)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), image)
    assert torch.allclose(ours, reference, atol=1e-12)
    assert torch.allclose(grad_ours, grad_reference, atol=1e-10)


def test_flat_texels_are_the_materials_of_one_colour():
    flat = torch.full((2, 3, 3), 0.5)
    jpeg_flat = flat + torch.tensor([1.0, -0.5, 0.0]) / 255  # a level off: still one colour
    textured = flat.clone()
    textured[0, 0, 1] += 2 / 255
    assert flat_texels([flat, textured, jpeg_flat]).tolist() == [True] * 6 + [False] * 6 + [True] * 6
