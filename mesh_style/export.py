"""Outputs: the stylised scene as GLB and OBJ + MTL + PNG, written atomically.

Everything is first written into a hidden staging folder of the run folder and renamed to
``result/`` only once every file is complete, so a crash leaves nothing that looks like a result.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
import trimesh
from omegaconf import DictConfig
from PIL import Image
from trimesh.exchange.obj import export_obj
from trimesh.visual.material import PBRMaterial

from mesh_style.errors import MeshStyleError
from mesh_style.images import tensor_to_pil
from mesh_style.layout import RESULT_DIR
from mesh_style.mesh import Mesh

_WHITE = [255, 255, 255, 255]


def texture_names(mesh: Mesh, stem: str) -> list[str]:
    """File stems of the stylised textures: ``<stem>_stylized`` or ``<stem>_stylized_<i>``."""
    if len(mesh.slots) == 1:
        return [f"{stem}_stylized"]
    return [f"{stem}_stylized_{i}" for i in range(len(mesh.slots))]


def material_names(mesh: Mesh) -> list[str]:
    """The source materials' names with ``_stylized`` added (so Blender shows which is which), made
    unique and free of whitespace (an OBJ reads one word after ``usemtl``)."""
    names: list[str] = []
    for slot in mesh.slots:
        base = re.sub(r"\s+", "_", slot.name) + "_stylized"
        name, i = base, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return names


def stylized_scene(mesh: Mesh, images: list[Image.Image], names: list[str]) -> trimesh.Scene:
    """A copy of the source scene whose materials, named ``names``, show the stylised images.

    The base-colour factor was baked into the texels at load time, so it is reset to white here.
    Other material properties (metallic, roughness, normal maps) are kept.
    """
    scene = mesh.source.copy()
    for slot, image, name in zip(mesh.slots, images, names):
        # One material per slot, shared by its geometries as in the source.
        source = scene.geometry[slot.geometries[0]].visual.material
        material = copy.copy(source) if isinstance(source, PBRMaterial) else PBRMaterial()
        material.name = name
        material.baseColorTexture = image
        material.baseColorFactor = _WHITE
        for geometry_name in slot.geometries:
            geometry = scene.geometry[geometry_name]
            geometry.visual = trimesh.visual.TextureVisuals(uv=geometry.visual.uv, material=material)
    return scene


def write_obj(scene: trimesh.Scene, folder: Path, stem: str, renamed: dict[str, str]) -> None:
    """``<stem>.obj`` + ``<stem>.mtl`` + one PNG per material, referenced by relative paths.

    trimesh names each PNG after its material: the scene's materials carry the file stems, and
    ``renamed`` (``{file stem: material name}``) gives the materials their names in the .obj and .mtl.
    """
    text, files = export_obj(scene, include_texture=True, return_texture=True, mtl_name=f"{stem}.mtl")

    def rename(text: str, keyword: str) -> str:
        return re.sub(rf"^{keyword} (.+)$", lambda m: f"{keyword} {renamed.get(m[1], m[1])}", text, flags=re.MULTILINE)

    (folder / f"{stem}.obj").write_text(rename(text, "usemtl"))
    for name, data in files.items():
        (folder / name).write_bytes(rename(data.decode(), "newmtl").encode() if name.endswith(".mtl") else data)


@contextlib.contextmanager
def staged_outputs(out_dir: Path) -> Iterator[Path]:
    """Yield a hidden staging folder inside ``out_dir``; on success rename it to ``out_dir/result``.

    One rename makes every file visible at once, so a failure at any moment (Ctrl-C, SIGTERM, SIGKILL,
    a full disk) leaves either the complete result or none of it. Staging folders that killed runs
    left behind are removed first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))
    try:
        yield staging
        try:
            os.rename(staging, out_dir / RESULT_DIR)  # replaces nothing but an empty folder
        except OSError as error:
            raise MeshStyleError(
                f"cannot move the result into {out_dir / RESULT_DIR}: {error.strerror} (another run wrote there meanwhile? "
                "give each run its own hydra.run.dir)"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # nothing left after the rename


def export_scene(
    mesh: Mesh, images: list[Image.Image], stem: str, folder: Path, cfg: DictConfig
) -> list[str]:
    """Write the stylised scene in the formats of ``cfg.formats`` (``glb``, ``obj``); returns file names."""
    files, materials = texture_names(mesh, stem), material_names(mesh)
    before = set(os.listdir(folder))
    if "glb" in cfg.formats:
        (folder / f"{stem}_stylized.glb").write_bytes(stylized_scene(mesh, images, materials).export(file_type="glb"))
    if "obj" in cfg.formats:
        write_obj(stylized_scene(mesh, images, files), folder, f"{stem}_stylized", dict(zip(files, materials)))
    return sorted(set(os.listdir(folder)) - before)


def write_history(history: list[dict[str, float]], folder: Path) -> list[str]:
    """``history.csv`` (every step's losses) and ``losses.png`` (their curves) into ``folder``;
    returns the file names (none for a run of 0 steps)."""
    if not history:
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state in a user's process

    names = list(history[0])
    with open(folder / "history.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["step", *names])
        writer.writerows([step, *(f"{row[n]:.6g}" for n in names)] for step, row in enumerate(history, 1))
    figure = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    steps = range(1, len(history) + 1)
    for name in names:
        axes.plot(steps, [max(row[name], 1e-12) for row in history], label=name, linewidth=1)
    axes.set(xlabel="step", ylabel="loss (unweighted; total is weighted)", yscale="log", title="training losses")
    axes.legend()
    FigureCanvasAgg(figure).print_png(folder / "losses.png")
    return ["history.csv", "losses.png"]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_reference_views(images: torch.Tensor, cameras: list[dict[str, Any]], folder: Path) -> list[str]:
    """``held_out_views.json`` (cameras in the file's coordinates) and ``held_out_<i>.png``: unlit
    RGBA renders of the held-out views, alpha = mesh mask (see ``scripts/blender_check.py``)."""
    names = [f"held_out_{i}.png" for i in range(len(images))]
    for image, name in zip(images, names):
        tensor_to_pil(image.permute(1, 2, 0)).save(folder / name)
    write_json(folder / "held_out_views.json", {"views": [{**c, "image": n} for c, n in zip(cameras, names)]})
    return names + ["held_out_views.json"]
