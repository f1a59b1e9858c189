"""Rasterise once, shade every step: UV orientation against PyTorch3D, gradients, masks."""

import torch
import trimesh
from PIL import Image
from pytorch3d.renderer import TexturesUV
from pytorch3d.renderer.mesh.rasterizer import Fragments as P3DFragments

from conftest import textured_vase
from mesh_style.mesh import load_mesh
from mesh_style.rasterizer import rasterize_pytorch3d
from mesh_style.run import render_cache
from mesh_style.shader import ViewCache, facing_weighted, interpolate, pixel_image, shade
from mesh_style.views import sample_views


def _vase_mesh(tmp_path, make_cfg):
    path = tmp_path / "vase.glb"
    path.write_bytes(trimesh.Scene({"vase": textured_vase(segments=32, rings=16)}).export(file_type="glb"))
    return load_mesh(make_cfg(f"mesh.path={path}").mesh)


def test_texture_lookup_matches_pytorch3d_textures_uv(tmp_path, make_cfg):
    """Our cached bilinear lookup (unlit) equals PyTorch3D's own TexturesUV sampling of the same
    fragments: the UV convention (v up, texel centres) is the one PyTorch3D and glTF use."""
    mesh = _vase_mesh(tmp_path, make_cfg)
    bank, _ = sample_views(make_cfg("views.num=3").views, seed=0)
    cameras = bank.cameras()
    fragments = rasterize_pytorch3d(mesh.verts, mesh.faces, cameras, 64)
    cache = render_cache(mesh, bank, make_cfg("render.image_size=64", "render.ambient=1", "render.diffuse=0").render, torch.device("cpu"))
    ours = shade(mesh.layout.flatten(mesh.textures), cache, torch.zeros(3)).permute(0, 2, 3, 1)

    textures = TexturesUV(
        maps=[mesh.textures[0]] * 3, faces_uvs=[mesh.faces] * 3, verts_uvs=[mesh.verts_uvs] * 3, align_corners=False
    )
    offsets = torch.arange(3).view(3, 1, 1) * len(mesh.faces)
    packed = torch.where(fragments.mask, fragments.pix_to_face + offsets, -1)
    p3d = P3DFragments(pix_to_face=packed[..., None], bary_coords=fragments.bary[..., None, :], zbuf=None, dists=None)
    reference = textures.sample_textures(p3d)[..., 0, :] * fragments.mask[..., None]
    # PyTorch3D clamps at the image border where we wrap (REPEAT): compare where UVs are at least
    # one texel inside the image.
    uv = interpolate(fragments, mesh.faces, mesh.verts_uvs)
    inside = ((uv > 1 / 64) & (uv < 1 - 1 / 64)).all(-1)
    assert inside.float().mean() > 0.8
    difference = (ours - reference).abs().max(-1).values[fragments.mask][inside]
    assert difference.max() < 1e-4


def test_gradient_reaches_the_texture(tmp_path, make_cfg):
    mesh = _vase_mesh(tmp_path, make_cfg)
    bank, _ = sample_views(make_cfg("views.num=2").views, seed=0)
    cache = render_cache(mesh, bank, make_cfg("render.image_size=32").render, torch.device("cpu"))
    texels = mesh.layout.flatten(mesh.textures).clone().requires_grad_(True)
    shade(texels, cache, torch.ones(3)).mean().backward()
    seen = texels.grad.abs().sum(-1) > 0
    assert 0.01 < seen.float().mean() < 1.0  # some texels are seen, not all, none by accident


def test_cache_mask_and_shading(tmp_path, make_cfg):
    mesh = _vase_mesh(tmp_path, make_cfg)
    bank, _ = sample_views(make_cfg("views.num=2").views, seed=0)
    cache = render_cache(mesh, bank, make_cfg("render.image_size=32", "render.ambient=0.3", "render.diffuse=0.7").render, torch.device("cpu"))
    on = cache.mask
    assert 0.1 < on.float().mean() < 0.9
    pixels = int(on.sum())  # only mesh pixels are stored, view after view
    assert cache.index.dtype == torch.int32 and cache.index.shape == (pixels, 4)
    assert cache.start.tolist() == [0, int(on[0].sum()), pixels]
    for view in range(2):  # each view's pixels are its mask's, in the order of the texels they read
        rows = slice(cache.start[view], cache.start[view + 1])
        assert set(cache.pixel[rows].tolist()) == set(on[view].flatten().nonzero()[:, 0].tolist())
        assert (cache.index[rows, 0].diff() >= 0).all()
    assert torch.allclose(cache.weight.sum(-1), torch.ones(pixels))
    assert cache.shading.min() >= 0.3 - 1e-6 and cache.shading.max() <= 1.0 + 1e-6
    images = shade(mesh.layout.flatten(mesh.textures), cache, torch.tensor([0.2, 0.4, 0.6]))
    # Selecting views gives the renders of those views.
    assert torch.equal(shade(mesh.layout.flatten(mesh.textures), cache.select(torch.tensor([1])), torch.tensor([0.2, 0.4, 0.6])), images[1:])
    assert torch.allclose(images.permute(0, 2, 3, 1)[~on], torch.tensor([0.2, 0.4, 0.6]))


def test_texel_footprint_of_a_frontal_quad(tmp_path, make_cfg):
    """A square quad seen head-on with a 512×128 texture: every pixel's footprint (texels per pixel
    side) is its long axis, the ratio of the texture's width to the quad's width in pixels (not the
    geometric mean of both axes, which would let detail alias along the long one)."""
    half = 0.7  # the quad's half side in the normalised frame (bounding-sphere radius 1)
    visual = trimesh.visual.TextureVisuals(
        uv=[[0, 0], [1, 0], [1, 1], [0, 1]],
        material=trimesh.visual.material.PBRMaterial(baseColorTexture=Image.new("RGB", (512, 128), (90, 120, 150))),
    )
    quad = trimesh.Trimesh([[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]], [[0, 1, 2], [0, 2, 3]], visual=visual, process=False)
    path = tmp_path / "quad.glb"
    path.write_bytes(trimesh.Scene({"quad": quad}).export(file_type="glb"))
    mesh = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    views, _ = sample_views(make_cfg("views.num=1", "views.elev=[0,0]", "views.azim=[0,0]").views, seed=0)
    cache = render_cache(mesh, views, make_cfg("render.image_size=128").render, torch.device("cpu"))
    pixels_across = cache.mask[0].sum(1).max().item()
    assert cache.footprint.shape == (int(cache.mask.sum()),)
    expected = 512 / pixels_across
    assert abs(cache.footprint.median().item() - expected) < 0.05 * expected
    assert (cache.footprint - expected).abs().max() < 0.2 * expected  # edge pixels take the median


def test_mean_background_is_each_views_mean_mesh_colour(tmp_path, make_cfg):
    """``shade(..., background=None)`` fills each view's background with that view's mean mesh
    colour, held constant for the gradient (only mesh pixels pass gradient to the texels)."""
    mesh = _vase_mesh(tmp_path, make_cfg)
    bank, _ = sample_views(make_cfg("views.num=2").views, seed=0)
    cache = render_cache(mesh, bank, make_cfg("render.image_size=48").render, torch.device("cpu"))
    texels = mesh.layout.flatten(mesh.textures).clone().requires_grad_(True)
    images = shade(texels, cache, None)
    for view in range(2):
        mask = cache.mask[view]
        mean = images[view][:, mask].mean(1)
        assert torch.allclose(images[view][:, ~mask], mean[:, None].expand(3, int((~mask).sum())), atol=1e-6)
    images[0][:, ~cache.mask[0]].sum().backward()  # the first view's background pixels only
    assert texels.grad is None or texels.grad.abs().sum() == 0


def test_facing_weighted_scales_each_pixels_gradient_by_its_facing(tmp_path, make_cfg):
    """Same images; the gradient is that of the images each weighted by ``|cos|²`` of its pixel."""
    mesh = _vase_mesh(tmp_path, make_cfg)
    bank, _ = sample_views(make_cfg("views.num=2").views, seed=0)
    cache = render_cache(mesh, bank, make_cfg("render.image_size=32").render, torch.device("cpu"))
    assert 0 < cache.facing.min() and cache.facing.max() <= 1 and cache.facing.std() > 0.1  # a vase: head-on and grazing
    grads = []
    for weighted in (True, False):
        texels = mesh.layout.flatten(mesh.textures).clone().requires_grad_(True)
        images = shade(texels, cache, torch.zeros(3))
        if weighted:
            out = facing_weighted(images, cache, 2.0)
            assert torch.equal(out, images)
            out.sum().backward()
        else:
            (images * pixel_image(cache.facing.square(), cache)).sum().backward()
        grads.append(texels.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_view_means_average_each_views_mesh_pixels_and_give_an_empty_view_zero():
    # Three 1 x 2 views: two mesh pixels, none, one.
    mask = torch.tensor([[[True, True]], [[False, False]], [[False, True]]])
    p = 3
    cache = ViewCache(
        mask=mask, pixel=torch.tensor([0, 1, 1]), index=torch.zeros(p, 4, dtype=torch.int32), weight=torch.ones(p, 4) / 4,
        shading=torch.ones(p), facing=torch.ones(p), start=torch.tensor([0, 2, 2, 3]), footprint=torch.ones(p),
    )
    values = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, -1.0]])
    assert torch.equal(cache.view_means(values), torch.tensor([[2.0, 4.0], [0.0, 0.0], [5.0, -1.0]]))
    assert torch.equal(cache.view_means(values[:, 0]), torch.tensor([2.0, 0.0, 5.0]))
