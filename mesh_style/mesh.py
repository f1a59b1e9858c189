"""Mesh input: a GLB/glTF/OBJ/PLY file → one triangle soup ready to render, plus the scene to export.

The scene is flattened into world coordinates (node transforms applied), then moved into a
normalised frame (bounding box centred at the origin, bounding sphere of radius 1) in which the
cameras are placed. The trimesh scene is kept for export, so the output keeps the original
coordinates, node transforms and names; only base-colour textures are replaced, and parts that
had no UVs, or UVs that stretch texels (their texture baked on), are swapped (in memory) for
their xatlas-unwrapped copies.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
import xatlas
from omegaconf import DictConfig
from PIL import Image

from mesh_style.errors import MeshStyleError
from mesh_style.images import pil_to_tensor, read_image, tensor_to_pil
from mesh_style.textures import TextureLayout, bilinear_taps, fill_unseen, gather_bilinear
from mesh_style.zbuffer import rasterize_triangles

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".ply")


@dataclass
class MaterialSlot:
    """One texture being stylised, and the scene geometries whose material uses it."""

    name: str
    geometries: list[str] = field(default_factory=list)


@dataclass
class Mesh:
    """A whole scene as one triangle mesh in the normalised frame.

    Attributes:
        verts: ``(V, 3)`` float32 positions, centred, inside the unit sphere.
        normals: ``(V, 3)`` float32 unit vertex normals.
        faces: ``(F, 3)`` int64 vertex indices.
        verts_uvs: ``(V, 2)`` float32 texture coordinates (trimesh splits vertices on UV seams).
        face_material: ``(F,)`` int64 index into ``textures`` / ``slots``.
        textures: initial texture of every slot, ``(H_m, W_m, 3)`` float32 in [0, 1], with the
            material's base-colour factor multiplied in.
        slots: which geometries each texture belongs to.
        source: the scene as loaded, in its original coordinates, for export.
        centre: ``(3,)`` world position of the normalised frame's origin.
        radius: world length of one normalised unit (``world = centre + radius × verts``).
        warnings: what was wrong with the file and was let pass (``mesh.missing_texture=blank``).
    """

    verts: torch.Tensor
    normals: torch.Tensor
    faces: torch.Tensor
    verts_uvs: torch.Tensor
    face_material: torch.Tensor
    textures: list[torch.Tensor]
    slots: list[MaterialSlot]
    source: trimesh.Scene
    centre: tuple[float, float, float]
    radius: float
    warnings: list[str] = field(default_factory=list)

    @property
    def layout(self) -> TextureLayout:
        return TextureLayout(tuple((t.shape[0], t.shape[1]) for t in self.textures))


def _base_colour(material: trimesh.visual.material.Material | None) -> tuple[Image.Image | None, np.ndarray | None]:
    """The base-colour image and RGB factor in [0, 1] of a trimesh material (either may be None)."""
    if isinstance(material, trimesh.visual.material.PBRMaterial):
        factor = material.baseColorFactor
        return material.baseColorTexture, None if factor is None else np.asarray(factor[:3], dtype=np.float32) / 255.0
    if isinstance(material, trimesh.visual.material.SimpleMaterial):
        return material.image, np.asarray(material.diffuse[:3], dtype=np.float32) / 255.0 if material.image is None else None
    return None, None


#: Textures smaller than this are placeholders (trimesh makes a 2×2 one for a missing material):
#: they are replaced by a blank texture of their mean colour.
MIN_TEXTURE_SIZE = 16


def _initial_texture(material: trimesh.visual.material.Material | None, cfg: DictConfig) -> torch.Tensor:
    image, factor = _base_colour(material)
    if image is None:
        colour = torch.tensor(factor if factor is not None else list(cfg.blank_color), dtype=torch.float32)
    else:
        texture = pil_to_tensor(image)
        # Bake the factor into the texels so that what is optimised is exactly what is displayed.
        texture = texture * torch.from_numpy(factor) if factor is not None else texture
        if min(image.size) >= MIN_TEXTURE_SIZE:
            return texture
        colour = texture.mean((0, 1))
    return colour.expand(cfg.blank_texture_size, cfg.blank_texture_size, 3).clone()


def _plain_colour(geometry: trimesh.Trimesh, cfg: DictConfig) -> np.ndarray:
    """Base colour of a mesh without texture: its material factor, mean vertex/face colour, or the default."""
    visual = geometry.visual
    _, factor = _base_colour(getattr(visual, "material", None))
    if factor is not None:
        return factor
    if isinstance(visual, trimesh.visual.ColorVisuals) and visual.kind is not None:
        colours = visual.vertex_colors if visual.kind == "vertex" else visual.face_colors
        return np.asarray(colours, np.float32)[:, :3].mean(0) / 255.0
    return np.asarray(list(cfg.blank_color), np.float32)


def _degenerate(uv: np.ndarray, faces: np.ndarray) -> bool:
    """UVs that cannot carry a texture: most faces have zero area in UV space (e.g. all zeros)."""
    a, b, c = (uv[faces[:, i]] for i in range(3))
    area = np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    return bool(np.mean(area < 1e-12) > 0.5)


#: A face whose UV map stretches texels more than this (long side over short side) can only hold
#: stripes: the renders read texels at the level of detail of their long side, so along the short
#: side one texel spans several rendered pixels (the Duck's atlas: horizontal bands).
STRETCH = 3.0
#: ``mesh.unwrap.when=stretched`` re-unwraps a textured part when more than this share of its surface
#: is stretched (Duck: 0.31; fuze: 0.09, BoxTextured: 0).
STRETCHED_SHARE = 0.2


def stretched_share(geometry: trimesh.Trimesh, uv: np.ndarray, texture_size: tuple[int, int] = (1, 1)) -> float:
    """Share of the surface area whose UV map stretches texels more than :data:`STRETCH` : 1.

    Each face's map from its own plane to texel space (``uv`` times the texture's ``(height,
    width)``: a wide texture has more texels per unit of u) is a 2×2 matrix; the ratio of its
    singular values is how much more texture one direction of the face gets than the other.
    """
    uv = np.asarray(uv, np.float64) * [texture_size[1], texture_size[0]]
    v, f = np.asarray(geometry.vertices, np.float64), np.asarray(geometry.faces)
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    normal = np.cross(e1, e2)
    area = np.linalg.norm(normal, axis=1)
    # An orthonormal frame (t1, t2) in each face's plane; the edges' coordinates in it.
    t1 = e1 / np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-30)
    t2 = np.cross(normal / np.maximum(area[:, None], 1e-30), t1)
    plane = np.stack([np.stack([(e1 * t1).sum(1), (e1 * t2).sum(1)], 1), np.stack([(e2 * t1).sum(1), (e2 * t2).sum(1)], 1)], 1)
    texture = np.stack([uv[f[:, 1]] - uv[f[:, 0]], uv[f[:, 2]] - uv[f[:, 0]]], 1)
    ok = np.abs(np.linalg.det(plane)) > 1e-12 * np.maximum(area, 1e-30)
    if not ok.any():
        return 0.0
    sigma = np.linalg.svd(np.linalg.solve(plane[ok], texture[ok]), compute_uv=False)  # (F, 2), descending
    stretched = sigma[:, 0] > STRETCH * sigma[:, 1]
    return float(area[ok][stretched].sum() / area[ok].sum())


def _atlas(geometries: list[trimesh.Trimesh], resolution: int, padding: int) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], int]:
    """One xatlas atlas for all ``geometries``: per geometry ``vmapping (V',)`` (the old vertex of each
    new one), ``faces (F, 3)`` and ``uvs (V', 2)``; and the chart count."""
    atlas = xatlas.Atlas()
    for geometry in geometries:
        atlas.add_mesh(np.asarray(geometry.vertices, np.float32), np.asarray(geometry.faces, np.uint32),
                       np.asarray(geometry.vertex_normals, np.float32))
    pack = xatlas.PackOptions()
    pack.padding = padding
    pack.resolution = resolution
    atlas.generate(pack_options=pack)
    parts = [atlas[i] for i in range(len(geometries))]
    return [(vmapping, faces.astype(np.int64), uvs) for vmapping, faces, uvs in parts], atlas.chart_count


def rasterize_atlas(uv: torch.Tensor, faces: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The faces laid out flat at their UVs ``(V, 2)``: which face covers each texel of a ``size × size``
    atlas, ``pix_to_face (size, size)``, and where inside it, ``bary (size, size, 3)``."""
    # NDC x = 1 - 2u and y = 2v - 1 put texel (row, col) where the rasteriser puts pixel (row, col),
    # with row 0 at v = 1 as in every texture here.
    corners = uv[faces].double()
    return rasterize_triangles(torch.stack([1 - 2 * corners[..., 0], 2 * corners[..., 1] - 1, torch.ones_like(corners[..., 0])], -1), size)


def bake(texture: torch.Tensor, old_uv: torch.Tensor, faces: torch.Tensor, new_uv: torch.Tensor, size: int, gutter: int) -> torch.Tensor:
    """Resample a texture onto new UVs of the same faces.

    Each texel of the new ``size × size`` atlas reads the old texture (bilinear, REPEAT) where its
    surface point had it, averaged over 2 × 2 samples; texels outside every chart get their
    surroundings' colours (:func:`~mesh_style.textures.fill_unseen`, ``gutter`` rings grown first).

    Args:
        texture: ``(H, W, 3)`` the old texture.
        old_uv: ``(V, 2)`` every vertex's old UV.
        faces: ``(F, 3)`` vertex indices.
        new_uv: ``(V, 2)`` every vertex's new UV.
        size: side of the new atlas.
        gutter: texels grown around every chart before the rest is filled.

    Returns:
        ``(size, size, 3)``.
    """
    pix_to_face, bary = rasterize_atlas(new_uv, faces, 2 * size)
    covered = pix_to_face >= 0
    uv = (bary[covered].unsqueeze(-1) * old_uv.double()[faces[pix_to_face[covered]]]).sum(1).float()
    layout = TextureLayout(((texture.shape[0], texture.shape[1]),))
    samples = texture.new_zeros(2 * size, 2 * size, 3)
    samples[covered] = gather_bilinear(texture.reshape(-1, 3), *bilinear_taps(uv, torch.zeros(len(uv), dtype=torch.long), layout))
    # 2 × 2 samples per texel, each counted where a chart covers it.
    weight = F.avg_pool2d(covered[None, None].float(), 2)[0, 0]
    image = F.avg_pool2d(samples.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0) / weight.clamp_min(1e-6)[..., None]
    return fill_unseen(image, weight > 0, gutter)


def unwrap(geometries: list[trimesh.Trimesh], name: str, cfg: DictConfig, texture: torch.Tensor | None = None) -> list[trimesh.Trimesh]:
    """Copies of ``geometries`` (parts of one material) with UVs from one xatlas atlas (``cfg`` is
    the ``mesh`` group), sharing one copy of the material.

    Without ``texture`` the material gets the first part's plain colour as base colour and no
    image, so it starts from a blank texture like any untextured material, on an atlas of
    ``unwrap.resolution`` with ``unwrap.padding`` texels between charts. With ``texture`` (its
    ``(H, W, 3)`` base colour, factor included) the texture is baked onto an atlas of its own
    long side. Vertices are split along the new seams; positions and normals are kept, and the
    material's other settings too.
    """
    resolution = max(texture.shape[:2]) if texture is not None else int(cfg.unwrap.resolution)
    parts, charts = _atlas(geometries, resolution, int(cfg.unwrap.padding))
    source = getattr(geometries[0].visual, "material", None)
    material = copy.copy(source) if isinstance(source, trimesh.visual.material.PBRMaterial) else trimesh.visual.material.PBRMaterial(name=getattr(source, "name", None) or f"{name}_material")
    if texture is None:
        material.baseColorTexture = None
        material.baseColorFactor = [*(np.clip(_plain_colour(geometries[0], cfg), 0, 1) * 255 + 0.5).astype(np.uint8).tolist(), 255]
    else:
        # All parts' faces in one list, each vertex with its old and its new UV.
        starts = np.cumsum([0] + [len(vmapping) for vmapping, _, _ in parts])
        old_uv = np.concatenate([np.asarray(g.visual.uv, np.float32)[vmapping] for g, (vmapping, _, _) in zip(geometries, parts)])
        faces = np.concatenate([f + start for (_, f, _), start in zip(parts, starts)])
        new_uv = np.concatenate([uvs for _, _, uvs in parts])
        baked = bake(texture, torch.from_numpy(old_uv), torch.from_numpy(faces), torch.from_numpy(new_uv).float(), resolution, int(cfg.unwrap.padding))
        material.baseColorTexture = tensor_to_pil(baked)
        alpha = source.baseColorFactor[3] if isinstance(source, trimesh.visual.material.PBRMaterial) and source.baseColorFactor is not None else 255
        material.baseColorFactor = [255, 255, 255, alpha]  # the colour factor is baked in
    log.info("unwrapped %s with xatlas: %d charts%s", name, charts, "" if texture is None else f", its texture baked onto a {resolution}² atlas")
    return [
        trimesh.Trimesh(
            vertices=geometry.vertices[vmapping],
            faces=faces,
            vertex_normals=np.asarray(geometry.vertex_normals, np.float32)[vmapping],
            visual=trimesh.visual.TextureVisuals(uv=uvs, material=material),
            process=False,
        )
        for geometry, (vmapping, faces, uvs) in zip(geometries, parts)
    ]


def _statement_args(line: str, keyword: str) -> str | None:
    """The rest of an OBJ/MTL statement ``keyword args``, or None; options (``-bm 1``) are not parsed."""
    parts = line.strip().split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 and parts[0] == keyword else None


def check_obj_textures(path: Path, missing: str = "error") -> list[str]:
    """Every material library an OBJ names, and every ``map_Kd`` texture in them, exists and decodes.

    trimesh skips a missing or broken one with a log message, and the material silently becomes
    blank; an error naming the file is what a user needs. With ``missing="blank"`` each problem is
    returned as a warning instead, and trimesh's blank material (its base colour) is kept.
    """
    problems: list[str] = []

    def found(problem: MeshStyleError) -> None:
        if missing != "blank":
            raise problem
        problems.append(f"{problem.args[0].split(' (')[0]}: its material is left blank (mesh.missing_texture=blank)")

    text = path.read_bytes().decode("utf-8", errors="replace")
    for library in filter(None, (_statement_args(line, "mtllib") for line in text.splitlines())):
        mtl = path.parent / library
        if not mtl.is_file():
            found(MeshStyleError(f"mesh {path} names the material library {library!r}, which is not at {mtl} "
                                 "(copy it there, or mesh.missing_texture=blank)"))
            continue
        for line in mtl.read_bytes().decode("utf-8", errors="replace").splitlines():
            if (texture := _statement_args(line, "map_Kd")) is not None:
                name = texture.split()[-1] if texture.startswith("-") else texture  # options first, then the file
                try:
                    read_image(mtl.parent / name, f"texture of {mtl.name}", f"map_Kd in {mtl}, or mesh.missing_texture=blank")
                except MeshStyleError as problem:
                    found(problem)
    return problems


def load_scene(path: Path, missing_texture: str = "error") -> tuple[trimesh.Scene, list[str]]:
    """Read a mesh file as a trimesh scene, and the warnings about it (see :func:`check_obj_textures`
    for ``missing_texture``); any failure becomes a one-line :class:`MeshStyleError`.

    Geometry is checked before trimesh's processing, which would silently drop NaN or infinite
    vertices and every face using them.
    """
    if path.is_dir():
        raise MeshStyleError(f"mesh.path={path} is a folder (give the mesh file inside it)")
    if not path.is_file():
        raise MeshStyleError(f"mesh file not found: {path} (check mesh.path)")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise MeshStyleError(
            f"unsupported mesh format {path.suffix or '(none)'!r} for {path}: "
            f"convert it to one of {', '.join(SUPPORTED_SUFFIXES)} (e.g. File > Export in Blender)"
        )
    problems = check_obj_textures(path, missing_texture) if path.suffix.lower() == ".obj" else []
    try:
        # resolve(): the OS follows symlinks before "..", trimesh would cancel them lexically.
        scene = trimesh.load(path.resolve(), force="scene", process=False)
    except Exception as error:  # trimesh raises many types for broken files
        raise MeshStyleError(f"cannot read mesh {path}: {type(error).__name__}: {error} (is the file complete?)") from error
    for name, geometry in scene.geometry.items():
        if isinstance(geometry, trimesh.Trimesh):
            if not np.isfinite(geometry.vertices).all():
                raise MeshStyleError(
                    f"mesh {path} has NaN or infinite vertex positions in {name!r} (repair it, e.g. delete those vertices in Blender)"
                )
            geometry.process()  # what trimesh.load does by default: merge duplicate vertices
            if len(geometry.faces) and not geometry.area > 0:
                raise MeshStyleError(
                    f"mesh {path}: {name!r} has zero surface area, every face degenerate (delete it, or repair it: Mesh > Clean Up in Blender)"
                )
    return scene, problems


#: Material maps other than the base colour: they follow the authored UVs, which a re-unwrap would break.
OTHER_MAPS = ("normalTexture", "occlusionTexture", "emissiveTexture", "metallicRoughnessTexture")


def make_uvs_usable(scene: trimesh.Scene, cfg: DictConfig) -> None:
    """Give the parts of ``scene`` UVs a texture can be optimised on, in place (``cfg`` is the
    ``mesh`` group): xatlas UVs for every part without usable ones; as ``unwrap.when`` says, for
    the parts of a material whose UVs stretch texels too, all of them on one atlas, the texture
    baked on. A material whose other maps follow its UVs keeps them."""
    by_material: dict[int, list[str]] = {}
    for name, geometry in scene.geometry.items():
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            continue
        uv = getattr(geometry.visual, "uv", None)
        if uv is None or len(uv) != len(geometry.vertices) or _degenerate(uv, geometry.faces):
            scene.geometry[name] = unwrap([geometry], name, cfg)[0]
        elif cfg.unwrap.when != "missing":
            by_material.setdefault(id(getattr(geometry.visual, "material", None)), []).append(name)
    for names in by_material.values():
        parts = [scene.geometry[name] for name in names]
        material = parts[0].visual.material
        image, _ = _base_colour(material)
        size = (1, 1) if image is None else image.size[::-1]
        areas = np.array([part.area for part in parts])
        share = float(np.dot([stretched_share(part, part.visual.uv, size) for part in parts], areas) / areas.sum())
        label = names[0] if len(names) == 1 else f"{len(names)} parts of material {getattr(material, 'name', None)!r}"
        if cfg.unwrap.when == "stretched" and share <= STRETCHED_SHARE:
            continue
        if others := [m for m in OTHER_MAPS if getattr(material, m, None) is not None]:
            log.warning("%s keep their UVs, which stretch texels over %.0f %% of the surface: the material's %s follow them",
                        label, 100 * share, ", ".join(others))
            continue
        try:
            texture = _initial_texture(material, cfg) if image is not None and min(image.size) >= MIN_TEXTURE_SIZE else None
        except (OSError, ValueError, SyntaxError):  # a broken image: load_mesh reports it
            continue
        log.warning("%s: UVs stretch texels more than %g:1 over %.0f %% of the surface (stripes), so new ones, "
                    "the texture baked on (mesh.unwrap.when=missing keeps them)", label, STRETCH, 100 * share)
        for name, part in zip(names, unwrap(parts, label, cfg, texture)):
            scene.geometry[name] = part


def load_mesh(cfg: DictConfig) -> Mesh:
    """Load ``cfg.path`` (the ``mesh`` config group) into a :class:`Mesh`."""
    path = Path(cfg.path)
    scene, problems = load_scene(path, cfg.missing_texture)
    for problem in problems:
        log.warning(problem)

    slots: list[MaterialSlot] = []
    textures: list[torch.Tensor] = []
    slot_of_material: dict[int, int] = {}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]] = []
    # The scene in memory gets the unwrapped geometry, so that the export carries its UVs.
    make_uvs_usable(scene, cfg)
    for node in scene.graph.nodes_geometry:
        transform, geometry_name = scene.graph[node]
        geometry = scene.geometry[geometry_name]
        if not isinstance(geometry, trimesh.Trimesh) or len(geometry.faces) == 0:
            continue
        uv = geometry.visual.uv
        material = getattr(geometry.visual, "material", None)
        key = id(material)
        if key not in slot_of_material:
            slot_of_material[key] = len(slots)
            name = getattr(material, "name", None) or f"material{len(slots)}"
            slots.append(MaterialSlot(name=name))
            try:  # embedded images decode lazily, here
                textures.append(_initial_texture(material, cfg))
            except (OSError, ValueError, SyntaxError) as error:  # what Pillow raises for broken image data
                raise MeshStyleError(
                    f"cannot decode the texture of material {name!r} in {path}: {error} (re-export it with a valid PNG or JPEG texture)"
                ) from error
        slot = slot_of_material[key]
        if geometry_name not in slots[slot].geometries:
            slots[slot].geometries.append(geometry_name)
        verts = trimesh.transform_points(geometry.vertices, transform)
        normals = geometry.vertex_normals @ np.linalg.inv(transform[:3, :3])  # inverse transpose, row vectors
        parts.append((verts, normals, np.asarray(geometry.faces), np.asarray(uv), slot))

    if not parts:
        raise MeshStyleError(f"mesh {path} has no triangle faces (give a surface mesh, not a point cloud or lines)")

    offsets = np.cumsum([0] + [len(p[0]) for p in parts])
    verts = np.concatenate([p[0] for p in parts])
    normals = np.concatenate([p[1] for p in parts])
    faces = np.concatenate([p[2] + offset for p, offset in zip(parts, offsets)])
    uvs = np.concatenate([p[3] for p in parts])
    face_material = np.concatenate([np.full(len(p[2]), p[4]) for p in parts])
    if not (np.isfinite(verts).all() and np.isfinite(uvs).all()):
        raise MeshStyleError(f"mesh {path} has NaN or infinite UVs or node transforms (repair them, or delete the UVs to have it unwrapped)")

    centre = (verts.min(0) + verts.max(0)) / 2
    radius = np.linalg.norm(verts - centre, axis=1).max()
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    log.info("mesh %s: %d faces, %d vertices, %d texture(s)", path.name, len(faces), len(verts), len(textures))
    return Mesh(
        verts=torch.from_numpy((verts - centre) / radius).float(),
        normals=torch.from_numpy(normals).float(),
        faces=torch.from_numpy(faces).long(),
        verts_uvs=torch.from_numpy(uvs).float(),
        face_material=torch.from_numpy(face_material).long(),
        textures=textures,
        slots=slots,
        source=scene,
        centre=tuple(float(c) for c in centre),
        radius=float(radius),
        warnings=problems,
    )
