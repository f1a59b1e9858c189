"""Blender round trip of a mesh-style run: what an artist opens must look like what was optimised.

For the run's GLB and OBJ, Blender (the ``bpy`` module) imports the file, checks that every
material's base colour comes from an image texture holding one of the stylised PNGs, renders the
held-out views (``held_out_views.json``: same cameras) unlit, and compares them with the
pipeline's own unlit renders (``held_out_<i>.png``): PSNR over the pixels both see as mesh.

Runs in its own virtualenv, because bpy pins numpy 1.26 (``make blender-check RUN=outputs/demo``):

    .venv-blender/bin/python scripts/blender_check.py RUN_DIR [--min-psnr 30]   (RUN_DIR or RUN_DIR/result)

Prints a JSON report; exits with status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector


def gltf_to_blender(point: list[float]) -> Vector:
    """glTF and OBJ are Y-up; Blender's importers turn them Z-up: (x, y, z) → (x, −z, y)."""
    x, y, z = point
    return Vector((x, -z, y))


def pixels(image: bpy.types.Image) -> np.ndarray:
    """``(H, W, 4)`` float pixels, row 0 at the top (Blender stores the bottom row first)."""
    width, height = image.size
    buffer = np.empty(width * height * 4, np.float32)
    image.pixels.foreach_get(buffer)
    return buffer.reshape(height, width, 4)[::-1]


def load_png(path: Path) -> np.ndarray:
    return pixels(bpy.data.images.load(str(path), check_existing=False))


def base_colour_image(material: bpy.types.Material) -> bpy.types.ImageTexture | None:
    """The Image Texture node feeding the Principled BSDF's Base Color, through any nodes between."""
    if not material.use_nodes:
        return None
    for node in material.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            pending = [link.from_node for link in node.inputs["Base Color"].links]
            while pending:
                current = pending.pop()
                if current.type == "TEX_IMAGE" and current.image is not None:
                    return current
                pending += [link.from_node for socket in current.inputs for link in socket.links]
    return None


def setup_scene(size: int) -> bpy.types.Scene:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 0
    scene.cycles.filter_width = 0.01  # sample pixel centres, as the pipeline's rasteriser does
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.render.dither_intensity = 0.0
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    return scene


def make_unlit(material: bpy.types.Material, texture: bpy.types.ShaderNodeTexImage) -> None:
    """Route the base-colour image straight to the output through an emission shader."""
    nodes, links = material.node_tree.nodes, material.node_tree.links
    emission = nodes.new("ShaderNodeEmission")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output)
    links.new(emission.outputs["Emission"], output.inputs["Surface"])


def render_view(scene: bpy.types.Scene, view: dict, path: Path) -> np.ndarray:
    position, target = gltf_to_blender(view["position"]), gltf_to_blender(view["target"])
    data = bpy.data.cameras.new("check")
    data.sensor_fit = "VERTICAL"
    data.angle = math.radians(view["fov_degrees"])
    distance = (target - position).length
    data.clip_start, data.clip_end = distance * 1e-3, distance * 10
    camera = bpy.data.objects.new("check", data)
    scene.collection.objects.link(camera)
    camera.location = position
    camera.rotation_euler = (target - position).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    bpy.data.objects.remove(camera)
    return load_png(path)


def check_file(path: Path, run_dir: Path, views: list[dict], size: int, work: Path) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if path.suffix == ".glb":
        bpy.ops.import_scene.gltf(filepath=str(path))
    else:
        bpy.ops.wm.obj_import(filepath=str(path))
    scene = setup_scene(size)
    expected = {p.name: load_png(p)[..., :3] for p in sorted(run_dir.glob("*_stylized*.png"))}
    objects = [o for o in scene.objects if o.type == "MESH"]
    materials = {slot.material for o in objects for slot in o.material_slots if slot.material}
    report: dict = {"meshes": len(objects), "materials": []}
    for material in sorted(materials, key=lambda m: m.name):
        texture = base_colour_image(material)
        match = None
        if texture is not None:
            image = pixels(texture.image)[..., :3]
            match = next((name for name, png in expected.items() if png.shape == image.shape and np.abs(png - image).max() <= 1.5 / 255), None)
            make_unlit(material, texture)
        report["materials"].append({"name": material.name, "image": texture.image.name if texture else None, "stylised_png": match})

    report["psnr_db"], report["mask_iou"] = [], []
    for i, view in enumerate(views):
        rendered = render_view(scene, view, work / f"{path.suffix[1:]}_{i}.png")
        reference = load_png(run_dir / view["image"])
        ours, theirs = reference[..., 3] > 0.5, rendered[..., 3] > 0.5
        both = ours & theirs
        report["mask_iou"].append(float(both.sum() / max((ours | theirs).sum(), 1)))
        mse = float(np.mean((rendered[both, :3] - reference[both, :3]) ** 2)) if both.any() else 1.0
        report["psnr_db"].append(100.0 if mse == 0 else 10 * math.log10(1.0 / mse))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--min-psnr", type=float, default=30.0)
    args = parser.parse_args(sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:])
    # A run folder or its result/ (mesh_style.layout.RESULT_DIR: bpy's virtualenv has no mesh_style).
    run_dir = args.run_dir / "result" if (args.run_dir / "result").is_dir() else args.run_dir
    views = json.loads((run_dir / "held_out_views.json").read_text())["views"]
    size = load_png(run_dir / views[0]["image"]).shape[0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report: dict = {"run": str(run_dir), "scene": metrics.get("scene")}
    with tempfile.TemporaryDirectory() as work:
        for path in sorted(run_dir.glob("*_stylized.glb")) + sorted(run_dir.glob("*_stylized.obj")):
            report[path.name] = check_file(path, run_dir, views, size, Path(work))
    files = [v for k, v in report.items() if k.endswith((".glb", ".obj"))]
    report["ok"] = bool(files) and all(
        all(m["stylised_png"] for m in f["materials"]) and min(f["psnr_db"]) >= args.min_psnr for f in files
    )
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
