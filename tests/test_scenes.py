"""Real-world models: scenes with several meshes and materials, meshes without UVs, unseen texels."""

import numpy as np
import torch
import trimesh

from conftest import TINY, shared_file, textured_vase
from mesh_style.images import chroma, luminance, pil_to_tensor, read_image
from mesh_style.mesh import load_mesh
from mesh_style.run import render_cache, run
from mesh_style.shader import shade
from mesh_style.views import sample_views

TRANSFORM = trimesh.transformations.compose_matrix(translate=[1.5, 0.2, 0.0], angles=[0.3, 0.8, 0.0], scale=[0.7] * 3)


def two_mesh_scene(path):
    """A textured vase and, under a node transform, a sphere with no UVs and a plain red colour."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.visual = trimesh.visual.ColorVisuals(sphere, face_colors=[200, 30, 30, 255])
    scene = trimesh.Scene()
    scene.add_geometry(textured_vase(), node_name="vase_node", geom_name="vase")
    scene.add_geometry(sphere, node_name="ball_node", geom_name="ball", transform=TRANSFORM)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def renders(mesh, make_cfg):
    views, _ = sample_views(make_cfg("views.num=3").views, seed=9)
    cache = render_cache(mesh, views, make_cfg("render.image_size=80").render, torch.device("cpu"))
    return shade(mesh.layout.flatten(mesh.textures), cache, torch.zeros(3))


def stylised_textures(out, stem, count):
    names = [f"{stem}_stylized.png"] if count == 1 else [f"{stem}_stylized_{i}.png" for i in range(count)]
    return [pil_to_tensor(read_image(out / name, "texture", "-")) for name in names]


def test_scene_with_two_meshes_transform_and_untextured_part(tmp_path, make_cfg, style_png):
    path = two_mesh_scene(tmp_path / "scene.glb")
    source = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    assert len(source.slots) == 2  # both parts are stylised in one optimisation
    ball = next(i for i, slot in enumerate(source.slots) if slot.geometries == ["ball"])
    red = torch.tensor([200 / 255, 30 / 255, 30 / 255])
    assert torch.allclose(source.textures[ball], red.expand(512, 512, 3), atol=1e-6)  # unwrapped, its colour

    out = tmp_path / "run" / "result"
    metrics = run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY), out.parent)
    assert 0 < metrics["texels_seen_fraction"] < 1
    textures = stylised_textures(out, "scene", 2)

    reloaded_scene = trimesh.load(out / "scene_stylized.glb", force="scene")
    assert sorted(reloaded_scene.geometry) == ["ball", "vase"]
    assert set(reloaded_scene.graph.nodes_geometry) == {"vase_node", "ball_node"}
    assert np.allclose(reloaded_scene.graph["ball_node"][0], TRANSFORM, atol=1e-6)
    materials = {id(g.visual.material) for g in reloaded_scene.geometry.values()}
    assert len(materials) == 2

    source.textures = textures
    expected = renders(source, make_cfg)
    for suffix in (".glb", ".obj"):
        reloaded = load_mesh(make_cfg(f"mesh.path={out / ('scene_stylized' + suffix)}").mesh)
        assert len(reloaded.textures) == 2
        assert (renders(reloaded, make_cfg) - expected).abs().mean() < 2 / 255


def test_preserving_colour_keeps_an_untextured_part_s_colour(tmp_path, make_cfg, style_png):
    """``style.colour=preserve`` (by luminance): the painting changes only the luma, so the red
    ball keeps red's chroma exactly (up to 8-bit rounding); ``transfer`` moves it."""
    path = two_mesh_scene(tmp_path / "scene.glb")
    ball = next(i for i, slot in enumerate(load_mesh(make_cfg(f"mesh.path={path}").mesh).slots) if slot.geometries == ["ball"])
    red = chroma(torch.tensor([200 / 255, 30 / 255, 30 / 255]).view(1, 3, 1, 1))
    drift = {}
    for colour in ("preserve", "transfer"):
        run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY, f"style.colour={colour}"), tmp_path / colour)
        texture = stylised_textures(tmp_path / colour / "result", "scene", 2)[ball].permute(2, 0, 1)[None]
        drift[colour] = (chroma(texture) - red).abs().amax().item()
        assert luminance(texture).std() > 1 / 255  # painted: the luma moved
    assert drift["preserve"] < 1.5 / 255 < 10 / 255 < drift["transfer"]


def test_mesh_without_uvs_is_unwrapped_and_stylised(tmp_path, make_cfg, style_png):
    path = shared_file("meshes/monkey.glb")
    mesh = load_mesh(make_cfg(f"mesh.path={path}", "mesh.blank_texture_size=128").mesh)
    assert mesh.verts_uvs.min() >= 0 and mesh.verts_uvs.max() <= 1 and mesh.textures[0].shape == (128, 128, 3)
    out = tmp_path / "run" / "result"
    run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY), out.parent)
    (texture,) = stylised_textures(out, "monkey", 1)
    assert texture.std() > 0.01  # no longer a blank colour
    reloaded = load_mesh(make_cfg(f"mesh.path={out / 'monkey_stylized.glb'}").mesh)
    assert torch.equal(reloaded.textures[0], texture)
    original = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    original.textures = [texture]
    assert (renders(reloaded, make_cfg) - renders(original, make_cfg)).abs().mean() < 2 / 255


def test_no_held_out_pixel_shows_an_initial_texel(tmp_path, make_cfg, style_png):
    """A closed sphere of a sentinel colour, optimised from one side only: the far side's texels
    are never seen, and must be filled rather than left at the initial colour, where views from
    the far side (as in an artist's viewport) see them."""
    sentinel = (130, 60, 190)
    sphere = trimesh.creation.icosphere(subdivisions=3)
    sphere.visual = trimesh.visual.ColorVisuals(sphere, face_colors=[*sentinel, 255])
    path = tmp_path / "sentinel.glb"
    path.write_bytes(trimesh.Scene({"ball": sphere}).export(file_type="glb"))
    out = tmp_path / "run" / "result"
    one_side = ["views.azim=[0,30]", "views.elev=[0,20]"]
    metrics = run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY, *one_side), out.parent)
    assert 0.2 < metrics["texels_seen_fraction"] < 0.8
    mesh = load_mesh(make_cfg(f"mesh.path={out / 'sentinel_stylized.glb'}").mesh)
    views, _ = sample_views(make_cfg("views.num=4", "views.azim=[150,210]", "views.elev=[-30,30]").views, seed=0)
    cache = render_cache(mesh, views, make_cfg("render.image_size=64").render, torch.device("cpu"))
    read = cache.index[cache.weight > 0].long().unique()
    colours = (mesh.layout.flatten(mesh.textures)[read] * 255).round()
    assert not (colours == torch.tensor(sentinel, dtype=colours.dtype)).all(-1).any()
    # Without the fill, the far side would show the sentinel: the check can fail.
    original = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    initial = (original.layout.flatten(original.textures) * 255).round()
    assert (initial == torch.tensor(sentinel, dtype=initial.dtype)).all(-1).all()
