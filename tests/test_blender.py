"""Blender round trip (scripts/blender_check.py in its own virtualenv with bpy 5.0.1): every
material shows the stylised image, and Blender's unlit renders of the exported GLB and OBJ match
the pipeline's own renders with PSNR >= 30 dB over the mesh's pixels."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import trimesh

from conftest import ROOT, TINY, shared_file
from mesh_style.run import run
from test_scenes import two_mesh_scene

BLENDER_PYTHON = Path(os.environ.get("BLENDER_PYTHON", ROOT / ".venv-blender" / "bin" / "python"))


def blender_check(run_dir: Path) -> dict:
    if not BLENDER_PYTHON.is_file():
        pytest.skip(f"no Blender virtualenv at {BLENDER_PYTHON} (make test creates it)")
    result = subprocess.run(
        [str(BLENDER_PYTHON), str(ROOT / "scripts" / "blender_check.py"), str(run_dir), "--min-psnr", "30"],
        capture_output=True, text=True, timeout=600,
    )
    start = result.stdout.index("{\n")  # Blender prints its own lines before the report
    report = json.loads(result.stdout[start:])
    assert result.returncode == (0 if report["ok"] else 1)
    return report


def _mesh(name: str, tmp_path: Path) -> Path:
    if name == "scene":
        return two_mesh_scene(tmp_path / "scene.glb")
    return shared_file(f"meshes/{name}")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scene", "monkey.glb", "BoxTextured.glb", "fuze.obj", "Duck.glb"])
def test_blender_renders_match_the_pipeline(tmp_path, make_cfg, style_png, name):
    path = _mesh(name, tmp_path)
    out = tmp_path / "run" / "result"
    metrics = run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY, "export.reference_size=96"), out.parent)
    report = blender_check(out)
    assert report["ok"], json.dumps(report, indent=1)
    for suffix in (".glb", ".obj"):
        checked = report[f"{path.stem}_stylized{suffix}"]
        assert len(checked["materials"]) == metrics["scene"]["materials"]
        assert all(m["stylised_png"] for m in checked["materials"])
        assert min(checked["psnr_db"]) >= 30 and min(checked["mask_iou"]) > 0.95
    assert report[f"{path.stem}_stylized.glb"]["meshes"] == metrics["scene"]["meshes"]


def test_blender_check_fails_on_a_wrong_texture(tmp_path, make_cfg, style_png):
    """The check can fail: a GLB whose texture is swapped for another image is caught."""
    path = shared_file("meshes/Duck.glb")
    out = tmp_path / "run" / "result"
    run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY, "export.formats=[glb]"), out.parent)
    scene = trimesh.load(out / "Duck_stylized.glb", force="scene")
    for geometry in scene.geometry.values():
        material = geometry.visual.material
        material.baseColorTexture = material.baseColorTexture.transpose(0)  # mirrored
    (out / "Duck_stylized.glb").write_bytes(scene.export(file_type="glb"))
    report = blender_check(out)
    assert not report["ok"]
    assert report["Duck_stylized.glb"]["materials"][0]["stylised_png"] is None
