"""UV seams: edges where the surface is continuous but its texture coordinates jump.

Across a seam two UV charts (or two materials) meet. The renders see one continuous surface, but
nothing in the style or content loss asks the colours on the two sides to agree: a Gram matrix does
not mind an edge, so each chart grows its own strokes and the seam shows as a step of colour (a
patchwork on photogrammetry atlases, a line along every chart of an automatic unwrap).
:func:`seam_taps` finds every seam edge and places points along it, each read twice with bilinear
taps, once in each chart; :class:`~mesh_style.losses.SeamLoss` asks the two reads to agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mesh_style.mesh import Mesh
from mesh_style.textures import TextureLayout, bilinear_taps, gather_bilinear

#: Positions closer than this (the mesh's normalised frame: a unit bounding sphere) are one point.
WELD = 1e-5
#: UVs closer than this are the same UV (no seam).
SAME_UV = 1e-6
#: Weight of the seams against the smoothness in :func:`level_seams`.
SEAM_STIFFNESS = 100.0


@dataclass
class SeamTaps:
    """Bilinear taps of ``S`` points on the seams, read in the chart on each side.

    Attributes:
        index_a, index_b: ``(S, 4)`` int32 into the flat texel array
            (:class:`~mesh_style.textures.TextureLayout`).
        weight_a, weight_b: ``(S, 4)`` float32, summing to 1 per row.
    """

    index_a: torch.Tensor
    weight_a: torch.Tensor
    index_b: torch.Tensor
    weight_b: torch.Tensor

    def __len__(self) -> int:
        return self.index_a.shape[0]


def seam_edges(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The edges shared by exactly two faces whose UVs (or materials) differ along them.

    Vertices are welded by position first: loaders split a vertex wherever its UV changes.

    Returns:
        ``uv_a (E, 2, 2)`` the edge's two ends in the first face's UVs, ``uv_b (E, 2, 2)`` the same
        ends in the second face's, and ``material_a``, ``material_b (E,)``.
    """
    verts, faces = mesh.verts.numpy(), mesh.faces.numpy()
    uvs, material = mesh.verts_uvs.numpy(), mesh.face_material.numpy()
    point = np.unique(np.round(verts / WELD).astype(np.int64), axis=0, return_inverse=True)[1].reshape(-1)
    start = faces.reshape(-1)  # corner k of face f → edge from corner k to corner k + 1
    end = np.roll(faces, -1, axis=1).reshape(-1)
    face = np.repeat(np.arange(len(faces)), 3)
    flip = point[start] > point[end]  # each edge from its lower welded point to its higher one
    low_vertex, high_vertex = np.where(flip, end, start), np.where(flip, start, end)
    key = np.stack([point[low_vertex], point[high_vertex]], 1)
    _, group, count = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    shared = np.flatnonzero(count[group] == 2)  # manifold edges; border and non-manifold ones are left alone
    shared = shared[np.argsort(group[shared], kind="stable")]
    a, b = shared[0::2], shared[1::2]
    uv_a = np.stack([uvs[low_vertex[a]], uvs[high_vertex[a]]], 1)
    uv_b = np.stack([uvs[low_vertex[b]], uvs[high_vertex[b]]], 1)
    material_a, material_b = material[face[a]], material[face[b]]
    seam = (np.abs(uv_a - uv_b).max(axis=(1, 2)) > SAME_UV) | (material_a != material_b)
    return uv_a[seam], uv_b[seam], material_a[seam], material_b[seam]


def seam_taps(mesh: Mesh, spacing: float = 1.0) -> SeamTaps:
    """Points every ``spacing`` texels along each seam edge (measured on its longer side), with
    their bilinear taps in the charts on both sides, for :class:`~mesh_style.losses.SeamLoss`."""
    uv_a, uv_b, material_a, material_b = seam_edges(mesh)
    scale = np.asarray(mesh.layout.sizes, dtype=np.float64)[:, ::-1]  # (M, 2) as (W, H)
    length = np.maximum(
        np.linalg.norm((uv_a[:, 1] - uv_a[:, 0]) * scale[material_a], axis=1),
        np.linalg.norm((uv_b[:, 1] - uv_b[:, 0]) * scale[material_b], axis=1),
    )
    count = np.maximum(1, np.ceil(length / spacing)).astype(np.int64)
    edge = np.repeat(np.arange(len(count)), count)
    # Midpoints of ``count`` equal pieces of every edge.
    t = (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + 0.5) / np.repeat(count, count)

    def taps(uv: np.ndarray, material: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        points = uv[edge, 0] + t[:, None] * (uv[edge, 1] - uv[edge, 0])
        return bilinear_taps(torch.from_numpy(points), torch.from_numpy(material[edge]), mesh.layout)

    (index_a, weight_a), (index_b, weight_b) = taps(uv_a, material_a), taps(uv_b, material_b)
    return SeamTaps(index_a, weight_a, index_b, weight_b)


def level_seams(texels: torch.Tensor, taps: SeamTaps, layout: TextureLayout, reach: list[float], iterations: int = 100) -> torch.Tensor:
    """``texels (T, 3)`` plus the smoothest correction that makes the two sides of every seam agree
    (seam levelling, Lempitsky & Ivanov 2007).

    The steps after the optimisation (the palette transport, the chroma blur) act on each chart
    alone and open the seams again; so does an atlas whose charts already disagree (photographs
    of one object under different light). The correction ``d`` minimises
    ``k Σ_seam points |(x + d)_a - (x + d)_b|² + Σ_neighbours |d_i - d_j|² + Σ |d|² / reach²``: it
    closes each seam (``k`` = :data:`SEAM_STIFFNESS` makes that nearly exact) and fades into the
    charts over about ``reach`` texels, so the step becomes a gradient too gentle to see. Solved by
    preconditioned conjugate gradients (the problem is quadratic).

    Args:
        texels: ``(T, 3)`` flat textures laid out by ``layout``.
        taps: the points along the seams (:func:`seam_taps`).
        layout: where each material's texture lives in ``texels``.
        reach: per material, how far in texels the correction fades.
        iterations: conjugate-gradient iterations.
    """
    if len(taps) == 0:
        return texels
    device = texels.device
    index_a, index_b = taps.index_a.long().to(device), taps.index_b.long().to(device)
    weight_a, weight_b = taps.weight_a.to(device), taps.weight_b.to(device)
    anchor = layout.flatten([texels.new_full((h, w, 1), 1.0 / max(r, 1.0) ** 2) for (h, w), r in zip(layout.sizes, reach)])

    def across(x: torch.Tensor) -> torch.Tensor:  # (T, 3) → (S, 3): side a minus side b
        return gather_bilinear(x, index_a, weight_a) - gather_bilinear(x, index_b, weight_b)

    def across_t(r: torch.Tensor) -> torch.Tensor:  # its transpose: (S, 3) → (T, 3)
        out = torch.zeros_like(texels)
        out.index_add_(0, index_a.reshape(-1), (weight_a[..., None] * r[:, None]).reshape(-1, 3))
        out.index_add_(0, index_b.reshape(-1), (-weight_b[..., None] * r[:, None]).reshape(-1, 3))
        return out

    def laplacian(x: torch.Tensor) -> torch.Tensor:  # Σ over grid neighbours of (x_i - x_j), per texture
        parts = []
        for image in layout.unflatten(x):
            out = torch.zeros_like(image)
            dy, dx = image[1:] - image[:-1], image[:, 1:] - image[:, :-1]
            out[1:] += dy
            out[:-1] -= dy
            out[:, 1:] += dx
            out[:, :-1] -= dx
            parts.append(out)
        return layout.flatten(parts)

    def system(d: torch.Tensor) -> torch.Tensor:
        return SEAM_STIFFNESS * across_t(across(d)) + laplacian(d) + anchor * d

    # Conjugate gradients on system(d) = -k across_t(across(texels)) from d = 0, each channel alike,
    # preconditioned by the system's diagonal (about 4 + anchor, far more on the seams' texels).
    diagonal = 4.0 + anchor
    for index, weight in ((index_a, weight_a), (index_b, weight_b)):
        diagonal = diagonal.index_add(0, index.reshape(-1), SEAM_STIFFNESS * weight.reshape(-1, 1).square())
    residual = -SEAM_STIFFNESS * across_t(across(texels))
    d = torch.zeros_like(texels)
    preconditioned = residual / diagonal
    direction = preconditioned.clone()
    energy = (residual * preconditioned).sum(0)
    for _ in range(iterations):
        product = system(direction)
        step = energy / (direction * product).sum(0).clamp_min(1e-30)
        d += step * direction
        residual -= step * product
        preconditioned = residual / diagonal
        new_energy = (residual * preconditioned).sum(0)
        direction = preconditioned + (new_energy / energy.clamp_min(1e-30)) * direction
        energy = new_energy
    return (texels + d).clamp(0, 1)
