"""Export round trips through tmp_path: what is written re-loads (with trimesh) to the same render."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from conftest import asymmetric_texture, render_mesh
from mesh_style.errors import MeshStyleError
from mesh_style.export import export_scene, material_names, staged_outputs
from mesh_style.images import pil_to_tensor
from mesh_style.mesh import load_mesh
from mesh_style.views import sample_views


def render(mesh, make_cfg):
    """Unlit renders of 4 views at 64², as ``(N, 3, H, W)``, and their masks."""
    views, _ = sample_views(make_cfg("views.num=4").views, seed=1)
    return render_mesh(mesh, views, make_cfg("render.image_size=64", "render.ambient=1", "render.diffuse=0").render)


@pytest.mark.parametrize("suffix", [".glb", ".obj"])
def test_uv_orientation_round_trip(tmp_path, make_cfg, vase_glb, suffix):
    """An asymmetric texture rendered by the pipeline equals the render of the exported file
    re-loaded with trimesh: no flip, no transpose, no shift."""
    mesh = load_mesh(make_cfg(f"mesh.path={vase_glb}").mesh)
    pattern = Image.fromarray(np.ascontiguousarray(asymmetric_texture(32)[:, ::-1]), mode="RGB")  # not the input's
    out = tmp_path / "out"
    out.mkdir()
    files = export_scene(mesh, [pattern], "vase", out, make_cfg().export)
    assert {"vase_stylized.glb", "vase_stylized.obj", "vase_stylized.mtl", "vase_stylized.png"} <= set(files)

    expected, mask = render(dataclasses.replace(mesh, textures=[pil_to_tensor(pattern)]), make_cfg)
    reloaded = load_mesh(make_cfg(f"mesh.path={out / ('vase_stylized' + suffix)}").mesh)
    assert torch.equal(reloaded.textures[0], pil_to_tensor(pattern))
    actual, reloaded_mask = render(reloaded, make_cfg)
    assert (mask == reloaded_mask).float().mean() > 0.999
    both = (mask & reloaded_mask).unsqueeze(1).expand_as(actual)
    assert (actual - expected).abs()[both].mean() < 1 / 255


def test_obj_references_texture_by_relative_path_with_white_diffuse(tmp_path, make_cfg, vase_glb):
    mesh = load_mesh(make_cfg(f"mesh.path={vase_glb}").mesh)
    export_scene(mesh, [Image.new("RGB", (8, 8), (10, 20, 30))], "my vase", tmp_path, make_cfg("export.formats=[obj]").export)
    mtl = (tmp_path / "my vase_stylized.mtl").read_text()
    assert "map_Kd my vase_stylized.png" in mtl and "Kd 1.00000000 1.00000000 1.00000000" in mtl
    assert "mtllib my vase_stylized.mtl" in (tmp_path / "my vase_stylized.obj").read_text()
    assert not (tmp_path / "my vase_stylized.glb").exists()


def test_staged_outputs_leave_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_outputs(tmp_path) as staging:
            (staging / "result.glb").write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
    with staged_outputs(tmp_path) as staging:
        (staging / "result.glb").write_bytes(b"whole")
    assert [p.relative_to(tmp_path).as_posix() for p in sorted(tmp_path.rglob("*"))] == ["result", "result/result.glb"]


def test_staged_outputs_appear_by_one_rename_that_replaces_no_result(tmp_path, monkeypatch):
    """Every file becomes visible at once: one rename of the staging folder, nothing moved file by
    file. A failed rename (a full disk, another run's result there meanwhile) is one user error and
    leaves the other result as it was; a staging folder left by a killed run is removed by the next one."""
    (tmp_path / ".partial-killed").mkdir()
    renames, real_rename = [], os.rename
    monkeypatch.setattr(os, "replace", lambda *a: pytest.fail("files moved one by one"))
    monkeypatch.setattr(os, "rename", lambda source, target: renames.append(Path(target).name) or real_rename(source, target))
    with staged_outputs(tmp_path) as staging:
        for name in ("metrics.json", "a.glb"):
            (staging / name).write_text(name)
    assert renames == ["result"] and sorted(p.name for p in (tmp_path / "result").iterdir()) == ["a.glb", "metrics.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["result"]  # the killed run's staging folder is gone
    with pytest.raises(MeshStyleError, match="another run wrote there meanwhile"):
        with staged_outputs(tmp_path) as staging:
            (staging / "metrics.json").write_text("second")
    assert [p.name for p in tmp_path.iterdir()] == ["result"] and (tmp_path / "result" / "metrics.json").read_text() == "metrics.json"


def test_material_names_are_kept_with_a_suffix_in_glb_and_obj(tmp_path, make_cfg, vase_glb):
    """Blender shows the source's material names, suffixed; names with spaces become one word (an
    OBJ reads one word after usemtl) and duplicates stay apart; files keep the mesh's stem."""
    mesh = load_mesh(make_cfg(f"mesh.path={vase_glb}").mesh)
    named = lambda *names: dataclasses.replace(mesh, slots=[dataclasses.replace(mesh.slots[0], name=n) for n in names])  # noqa: E731
    assert material_names(named("blinn3 fx", "blinn3 fx", "a\tb")) == ["blinn3_fx_stylized", "blinn3_fx_stylized_1", "a_b_stylized"]
    export_scene(named("blinn3 fx"), [Image.new("RGB", (8, 8), "red")], "vase", tmp_path, make_cfg().export)
    mtl = (tmp_path / "vase_stylized.mtl").read_text()
    assert "newmtl blinn3_fx_stylized\n" in mtl and "map_Kd vase_stylized.png" in mtl
    assert "usemtl blinn3_fx_stylized\n" in (tmp_path / "vase_stylized.obj").read_text()
    for suffix in (".glb", ".obj"):
        scene = trimesh.load(tmp_path / f"vase_stylized{suffix}", force="scene")
        assert [g.visual.material.name for g in scene.geometry.values()] == ["blinn3_fx_stylized"], suffix
