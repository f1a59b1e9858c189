"""Mesh input: real files from ../shared, meshes made in code, and every broken case."""

import logging

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from conftest import render_mesh, shared_file, textured_vase
from mesh_style.errors import MeshStyleError
from mesh_style.export import material_names
from mesh_style.mesh import load_mesh, rasterize_atlas, stretched_share
from mesh_style.views import sample_views


def test_duck_glb_node_transform_and_normalised_frame(make_cfg):
    mesh = load_mesh(make_cfg(f"mesh.path={shared_file('meshes/Duck.glb')}").mesh)
    assert mesh.faces.shape == (4212, 3) and len(mesh.textures) == 1
    assert mesh.textures[0].shape == (512, 512, 3)
    radius = mesh.verts.norm(dim=-1)
    assert radius.max() == pytest.approx(1.0, abs=1e-5)
    centre = (mesh.verts.min(0).values + mesh.verts.max(0).values) / 2
    assert centre.abs().max() < 1e-5
    assert torch.allclose(mesh.normals.norm(dim=-1), torch.ones(len(mesh.normals)), atol=1e-4)
    # The source scene keeps the file's own coordinates (node scale 0.01) for export.
    node = mesh.source.graph.nodes_geometry[0]
    assert mesh.source.graph[node][0][0, 0] == pytest.approx(0.01)


def test_obj_with_mtl_and_space_in_texture_name(make_cfg):
    mesh = load_mesh(make_cfg(f"mesh.path={shared_file('meshes/fuze.obj')}").mesh)
    assert mesh.faces.shape[0] == 1000
    assert mesh.textures[0].shape == (1024, 1024, 3)
    assert mesh.textures[0].std() > 0.05  # the JPEG was read, not a blank


def test_uvs_beyond_one_are_kept_for_repeat_wrapping(make_cfg):
    mesh = load_mesh(make_cfg(f"mesh.path={shared_file('meshes/BoxTextured.glb')}").mesh)
    assert mesh.faces.shape[0] == 12 and mesh.verts_uvs.max() > 1.5


@pytest.mark.parametrize(
    "material, expected",
    [
        (trimesh.visual.material.PBRMaterial(baseColorFactor=[255, 0, 0, 255]), [1.0, 0.0, 0.0]),
        (trimesh.visual.material.SimpleMaterial(diffuse=[0, 255, 0, 255]), [0.0, 1.0, 0.0]),
        # A 2×2 placeholder image is treated as no texture; trimesh's default diffuse factor (102) applies.
        (trimesh.visual.material.SimpleMaterial(image=Image.new("RGB", (2, 2), (0, 0, 255))), [0.0, 0.0, 102 / 255]),
    ],
)
def test_uvs_without_texture_start_from_uniform_texture(tmp_path, make_cfg, material, expected):
    vase = textured_vase()
    vase.visual = trimesh.visual.TextureVisuals(uv=vase.visual.uv, material=material)
    path = tmp_path / "plain.glb"
    path.write_bytes(trimesh.Scene({"vase": vase}).export(file_type="glb"))
    mesh = load_mesh(make_cfg(f"mesh.path={path}", "mesh.blank_texture_size=16").mesh)
    assert mesh.textures[0].shape == (16, 16, 3)
    assert torch.allclose(mesh.textures[0], torch.tensor(expected).expand(16, 16, 3), atol=1e-6)


def test_ply_with_uvs_keeps_them(tmp_path, make_cfg):
    vase = textured_vase()
    path = tmp_path / "vase.ply"
    path.write_bytes(vase.export(file_type="ply"))
    mesh = load_mesh(make_cfg(f"mesh.path={path}", "mesh.blank_texture_size=32").mesh)
    assert torch.allclose(mesh.verts_uvs, torch.tensor(vase.visual.uv, dtype=torch.float32))
    assert mesh.textures[0].shape == (32, 32, 3)  # UVs but no texture: a blank one


def test_degenerate_uvs_are_replaced_by_an_unwrap(tmp_path, make_cfg):
    vase = textured_vase()
    vase.visual = trimesh.visual.TextureVisuals(uv=np.zeros((len(vase.vertices), 2)))
    path = tmp_path / "flat_uvs.glb"
    path.write_bytes(trimesh.Scene({"vase": vase}).export(file_type="glb"))
    mesh = load_mesh(make_cfg(f"mesh.path={path}", "mesh.blank_texture_size=64").mesh)
    a, b, c = (mesh.verts_uvs[mesh.faces[:, i]] for i in range(3))
    area = ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).abs()
    assert (area > 0).float().mean() > 0.99 and mesh.textures[0].shape == (64, 64, 3)


def test_base_colour_factor_is_baked_into_the_texture(tmp_path, make_cfg):
    vase = textured_vase()
    vase.visual.material.baseColorFactor = [255, 128, 0, 255]
    path = tmp_path / "tinted.glb"
    path.write_bytes(trimesh.Scene({"vase": vase}).export(file_type="glb"))
    mesh = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert mesh.textures[0][..., 2].max() == 0  # blue × 0
    image = np.asarray(vase.visual.material.baseColorTexture.convert("RGB"), np.float32) / 255
    assert torch.allclose(mesh.textures[0][..., 1], torch.from_numpy(image[..., 1]) * 128 / 255, atol=1e-6)


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make_file, message",
    [
        (lambda p: p / "missing.glb", "mesh file not found"),
        (lambda p: _write(p, "model.fbx", b"Kaydara FBX Binary"), "unsupported mesh format '.fbx'"),
        (lambda p: _write(p, "truncated.glb", trimesh.Scene({"v": textured_vase()}).export(file_type="glb")[:200]), "cannot read mesh"),
        (lambda p: _write(p, "points.obj", b"v 0 0 0\nv 1 0 0\nv 0 1 0\n"), "no triangle faces"),
        (lambda p: _write(p, "garbage.glb", b"\x00\x01 not a mesh at all"), "cannot read mesh"),
    ],
)
def test_broken_inputs_give_one_clear_error(tmp_path, make_cfg, make_file, message):
    path = make_file(tmp_path)
    with pytest.raises(MeshStyleError, match=message) as error:
        load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert "\n" not in str(error.value)


def test_input_file_is_not_modified(make_cfg):
    path = shared_file("meshes/Duck.glb")
    before = path.read_bytes()
    load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert path.read_bytes() == before
    assert np.frombuffer(before, np.uint8).size > 0


def _grid(width: float, uv_scale: tuple[float, float], x0: float = 0.0, n: int = 4) -> trimesh.Trimesh:
    """A flat ``width × 1`` grid in the xy-plane whose UVs are its x and y times ``uv_scale``."""
    xs, ys = np.meshgrid(np.linspace(x0, x0 + width, n + 1), np.linspace(0, 1, n + 1))
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    i = np.arange(n)[:, None] * (n + 1) + np.arange(n)[None, :]  # lower-left corner of each cell
    faces = np.concatenate([np.stack([i, i + 1, i + n + 2], -1), np.stack([i, i + n + 2, i + n + 1], -1)]).reshape(-1, 3)
    uv = (verts[:, :2] - [x0, 0]) * uv_scale
    return trimesh.Trimesh(verts, faces, visual=trimesh.visual.TextureVisuals(uv=uv), process=False)


@pytest.mark.parametrize(
    "parts, expected",
    [
        ([(1.0, (0.25, 1.0))], 1.0),  # u gets a quarter of v's texels per unit: 4:1 > 3:1
        ([(1.0, (0.5, 1.0))], 0.0),  # 2:1
        ([(1.0, (1.0, 0.2))], 1.0),  # 5:1 the other way
        ([(1.0, (0.25, 1.0)), (3.0, (0.3, 0.3))], 0.25),  # a stretched quarter of the area, the rest square
    ],
)
def test_stretched_share_by_hand(parts, expected):
    grids = [_grid(width, scale, x0=2.0 * k) for k, (width, scale) in enumerate(parts)]
    whole = trimesh.util.concatenate(grids)
    assert stretched_share(whole, np.asarray(whole.visual.uv)) == pytest.approx(expected, abs=1e-9)


def test_stretched_share_counts_texels_not_uv_units():
    """u squeezed to a quarter, on a texture four times wider than tall: square texels again."""
    grid = _grid(1.0, (0.25, 1.0))
    assert stretched_share(grid, np.asarray(grid.visual.uv), texture_size=(64, 256)) == 0.0
    assert stretched_share(grid, np.asarray(grid.visual.uv), texture_size=(256, 64)) == 1.0  # 16:1


def _stretched_vase(tmp_path, normal_map: bool = False):
    """The textured vase with its u squeezed to a quarter: most faces stretched beyond 3:1."""
    vase = textured_vase()
    material = vase.visual.material
    if normal_map:
        material.normalTexture = Image.new("RGB", (16, 16), (128, 128, 255))
    vase.visual = trimesh.visual.TextureVisuals(uv=vase.visual.uv * [0.25, 1.0], material=material)
    path = tmp_path / "stretched.glb"
    path.write_bytes(trimesh.Scene({"vase": vase}).export(file_type="glb"))
    return path, vase


def _renders(meshes, cfg) -> list[torch.Tensor]:
    """Each mesh from the held-out views of ``cfg``, shaded: ``(N, 3, H, W)`` each."""
    _, held = sample_views(cfg.views, cfg.seed)
    return [render_mesh(m, held, cfg.render)[0] for m in meshes]


def test_stretched_uvs_are_replaced_and_the_texture_baked_on(tmp_path, make_cfg, caplog):
    path, vase = _stretched_vase(tmp_path)
    assert stretched_share(vase, np.asarray(vase.visual.uv)) > 0.5
    kept = load_mesh(make_cfg(f"mesh.path={path}", "mesh.unwrap.when=missing").mesh)
    assert torch.allclose(kept.verts_uvs, torch.tensor(vase.visual.uv, dtype=torch.float32))
    with caplog.at_level(logging.WARNING, logger="mesh_style.mesh"):
        new = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert "mesh.unwrap.when=missing keeps them" in caplog.text
    geometry = next(iter(new.source.geometry.values()))  # the scene to export carries the new UVs
    assert stretched_share(geometry, np.asarray(geometry.visual.uv)) < 0.02
    assert new.textures[0].shape == kept.textures[0].shape == (64, 64, 3)  # the texture's own size
    # Seen from the same cameras, the baked texture shows what the original did.
    renders = _renders((kept, new), make_cfg(f"mesh.path={path}", "render.image_size=96"))
    assert (renders[0] - renders[1]).abs().mean() < 0.005  # measured 0.0008; the atlas upside down: 0.036


def test_duck_gets_an_unstretched_atlas_that_renders_as_its_own(make_cfg):
    """The glTF sample Duck's atlas stretches texels over 31 % of its surface (horizontal bands
    in every result); the re-unwrapped one over none, and it shows the same duck."""
    path = shared_file("meshes/Duck.glb")
    kept, new = (load_mesh(make_cfg(f"mesh.path={path}", f"mesh.unwrap.when={when}").mesh) for when in ("missing", "stretched"))
    shares = [stretched_share(g, np.asarray(g.visual.uv)) for m in (kept, new) for g in m.source.geometry.values()]
    assert shares[0] == pytest.approx(0.31, abs=0.01) and shares[1] < 0.01
    renders = _renders((kept, new), make_cfg(f"mesh.path={path}", "render.image_size=128"))
    assert (renders[0] - renders[1]).abs().mean() < 0.002  # measured 1e-4 at 256²: the eye, beak and wing spots in place


def test_parts_sharing_a_texture_get_one_atlas(tmp_path, make_cfg, caplog):
    """Two parts reading one texture through stretched UVs: one new atlas for both, one texture."""
    path, vase = _stretched_vase(tmp_path)
    twin = vase.copy()
    twin.visual.material = vase.visual.material
    twin.apply_translation([3.0, 0.0, 0.0])
    path.write_bytes(trimesh.Scene({"vase": vase, "twin": twin}).export(file_type="glb"))
    kept = load_mesh(make_cfg(f"mesh.path={path}", "mesh.unwrap.when=missing").mesh)
    with caplog.at_level(logging.WARNING, logger="mesh_style.mesh"):
        new = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert "2 parts of material" in caplog.text
    assert len(new.textures) == 1 and len({id(g.visual.material) for g in new.source.geometry.values()}) == 1
    assert all(stretched_share(g, np.asarray(g.visual.uv)) < 0.02 for g in new.source.geometry.values())
    # The two parts' charts do not overlap: no texel lies inside faces of both.
    covered = [rasterize_atlas(torch.from_numpy(np.asarray(g.visual.uv)), torch.from_numpy(g.faces), 128)[0] >= 0
               for g in new.source.geometry.values()]
    assert covered[0].float().mean() > 0.1 and covered[1].float().mean() > 0.1 and not (covered[0] & covered[1]).any()
    renders = _renders((kept, new), make_cfg(f"mesh.path={path}", "render.image_size=96"))
    assert (renders[0] - renders[1]).abs().mean() < 0.005


def test_stretched_uvs_stay_where_other_maps_follow_them(tmp_path, make_cfg, caplog):
    path, vase = _stretched_vase(tmp_path, normal_map=True)
    with caplog.at_level(logging.WARNING, logger="mesh_style.mesh"):
        mesh = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert torch.allclose(mesh.verts_uvs, torch.tensor(vase.visual.uv, dtype=torch.float32))
    assert "normalTexture follow them" in caplog.text


def test_a_rebaked_obj_material_keeps_its_name(tmp_path, make_cfg):
    """OBJ materials load as trimesh's SimpleMaterial; the baked copy is a PBR one with the same name."""
    vase = textured_vase()
    image = vase.visual.material.baseColorTexture
    vase.visual = trimesh.visual.TextureVisuals(uv=vase.visual.uv * [0.25, 1.0], material=trimesh.visual.material.SimpleMaterial(image=image, name="glaze"))
    vase.export(tmp_path / "vase.obj")
    mesh = load_mesh(make_cfg(f"mesh.path={tmp_path / 'vase.obj'}").mesh)
    geometry = next(iter(mesh.source.geometry.values()))
    assert stretched_share(geometry, np.asarray(geometry.visual.uv)) < 0.02  # it was re-unwrapped
    assert material_names(mesh) == ["glaze_stylized"]
