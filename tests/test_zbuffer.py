"""The CPU z-buffer rasteriser agrees with PyTorch3D's: same face for >= 99.5 % of pixels and
barycentrics within 1e-4 where the face agrees."""

import torch

import mesh_style.zbuffer as zbuffer
from conftest import assert_agree, shared_file, textured_vase
from mesh_style.rasterizer import rasterize
from mesh_style.views import Views, sample_views


def _views(make_cfg, num=3):
    return sample_views(make_cfg(f"views.num={num}").views, seed=2)[0].cameras()


def test_agrees_on_a_real_model(make_cfg):
    from mesh_style.mesh import load_mesh

    mesh = load_mesh(make_cfg(f"mesh.path={shared_file('meshes/Duck.glb')}").mesh)
    assert_agree(mesh.verts, mesh.faces, _views(make_cfg), 96)


def test_agrees_on_huge_triangles_and_in_chunks(make_cfg, monkeypatch):
    vase = textured_vase(segments=8, rings=4)
    verts = torch.tensor(vase.vertices, dtype=torch.float32)
    verts = verts / verts.norm(dim=1).max()
    faces = torch.tensor(vase.faces)
    assert_agree(verts, faces, _views(make_cfg), 80)
    monkeypatch.setattr(zbuffer, "PAIRS_PER_CHUNK", 500)  # many chunks, merged through the z-buffer
    assert_agree(verts, faces, _views(make_cfg), 80)


def test_agrees_on_overlapping_triangle_soup(make_cfg):
    """Random intersecting triangles: only a correct depth test gets the same faces."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(300, 1, 3, generator=generator) * 1.2 - 0.6
    verts = (centres + 0.25 * torch.randn(300, 3, 3, generator=generator)).reshape(-1, 3)
    verts = verts / verts.norm(dim=1).max()
    faces = torch.arange(900).view(300, 3)
    assert_agree(verts, faces, _views(make_cfg, num=4), 64)


def test_auto_backend_is_the_zbuffer_on_cpu(make_cfg, monkeypatch):
    calls = []
    monkeypatch.setattr("mesh_style.rasterizer.rasterize_zbuffer", lambda *a: calls.append(a) or "zbuffer")
    views = Views(torch.tensor([10.0]), torch.tensor([20.0]), dist=3.0, fov=40.0)
    assert rasterize(torch.rand(3, 3), torch.tensor([[0, 1, 2]]), views.cameras(), 8, "auto") == "zbuffer"
    assert len(calls) == 1
