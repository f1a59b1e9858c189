"""A vectorised z-buffer rasteriser for the CPU, matching PyTorch3D's conventions.

PyTorch3D's CPU rasteriser tests every face against every pixel (O(pixels × faces)). Here each
face is only tested against the pixels of its own bounding box: all (face, pixel) candidate pairs
are enumerated at once with tensor ops, their barycentrics computed, and the nearest inside face
per pixel kept with a scatter-min. The cost is O(sum of bounding-box areas), which for a real
mesh is about the number of pixels plus a few per face.

Conventions follow ``pytorch3d.renderer.mesh.rasterize_meshes`` with ``faces_per_pixel=1``,
``blur_radius=0`` and perspective-correct barycentrics: NDC +x points left and +y up, pixel
``(row, col)`` has its centre at ``x = 1 - (2 col + 1) / W``, ``y = 1 - (2 row + 1) / H``; a pixel
is inside a face when all three screen-space barycentrics are > 0; depth is the view-space z.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer import FoVPerspectiveCameras, MeshRasterizer
from pytorch3d.structures import Meshes

from mesh_style.fragments import Fragments

#: Candidate (face, pixel) pairs processed at once; bounds memory at about 1 GB.
PAIRS_PER_CHUNK = 8_000_000
#: Faces whose screen-space area (in NDC²) is below this are skipped, as PyTorch3D does.
MIN_AREA = 1e-8


def project(verts: torch.Tensor, faces: torch.Tensor, cameras: FoVPerspectiveCameras) -> torch.Tensor:
    """``(N, V, 3)`` vertices in NDC x, y with view-space z, exactly as PyTorch3D's rasteriser sees them."""
    n = len(cameras)
    meshes = Meshes(verts=[verts] * n, faces=[faces] * n)
    return MeshRasterizer(cameras=cameras).transform(meshes).verts_padded()


def rasterize_zbuffer(
    verts: torch.Tensor, faces: torch.Tensor, cameras: FoVPerspectiveCameras, image_size: int
) -> Fragments:
    """Rasterise ``N`` views of one mesh; same output as :func:`~mesh_style.rasterizer.rasterize_pytorch3d`.

    Args:
        verts: ``(V, 3)`` positions in world space.
        faces: ``(F, 3)`` vertex indices.
        cameras: ``N`` cameras; every vertex must be in front of each of them.
        image_size: output is ``image_size × image_size``.
    """
    projected = project(verts, faces, cameras)
    views = [rasterize_triangles(p[faces], image_size) for p in projected]
    return Fragments(
        pix_to_face=torch.stack([v[0] for v in views]), bary=torch.stack([v[1] for v in views])
    )


def rasterize_triangles(triangles: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F, 3, 3)`` NDC triangles (x, y, depth > 0) of one view → ``pix_to_face (size, size)``,
    ``bary (size, size, 3)``; also used flat, to lay out a UV atlas (``mesh.rasterize_atlas``)."""
    x, y, z = triangles.unbind(-1)  # each (F, 3)
    # Continuous pixel coordinates of the vertices (inverse of the pixel-centre formula above).
    col = ((1 - x) * size - 1) / 2
    row = ((1 - y) * size - 1) / 2
    col_min = col.min(1).values.ceil().clamp(0, size - 1).long()
    col_max = col.max(1).values.floor().clamp(-1, size - 1).long()
    row_min = row.min(1).values.ceil().clamp(0, size - 1).long()
    row_max = row.max(1).values.floor().clamp(-1, size - 1).long()
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    width = (col_max - col_min + 1).clamp_min(0)
    height = (row_max - row_min + 1).clamp_min(0)
    keep = (width > 0) & (height > 0) & (area.abs() > MIN_AREA) & (z > 0).all(1)
    face_ids = keep.nonzero().squeeze(1)
    pairs = width[face_ids] * height[face_ids]

    zbuf = torch.full((size * size,), float("inf"), dtype=triangles.dtype)
    pix_to_face = torch.full((size * size,), -1, dtype=torch.long)
    bary = torch.zeros(size * size, 3, dtype=triangles.dtype)
    # Chunks of consecutive faces whose candidate pairs fit the memory budget.
    bounds = torch.cumsum(pairs, 0)
    start = 0
    while start < len(face_ids):
        budget = (bounds[start - 1] if start else 0) + PAIRS_PER_CHUNK
        stop = max(int(torch.searchsorted(bounds, budget, right=True)), start + 1)
        chunk = face_ids[start:stop]
        _rasterize_chunk(
            chunk, pairs[start:stop], x, y, z, area, col_min, row_min, width, size, zbuf, pix_to_face, bary
        )
        start = stop
    return pix_to_face.view(size, size), bary.view(size, size, 3)


def _rasterize_chunk(
    face_ids: torch.Tensor,
    pairs: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    z: torch.Tensor,
    area: torch.Tensor,
    col_min: torch.Tensor,
    row_min: torch.Tensor,
    width: torch.Tensor,
    size: int,
    zbuf: torch.Tensor,
    pix_to_face: torch.Tensor,
    bary: torch.Tensor,
) -> None:
    """Test every pixel in the bounding boxes of ``face_ids`` and update the buffers in place."""
    face = torch.repeat_interleave(face_ids, pairs)
    first = torch.cumsum(pairs, 0) - pairs
    local = torch.arange(len(face)) - torch.repeat_interleave(first, pairs)
    pix_row = row_min[face] + local // width[face]
    pix_col = col_min[face] + local % width[face]
    px = 1 - (2 * pix_col + 1).to(x.dtype) / size
    py = 1 - (2 * pix_row + 1).to(x.dtype) / size

    fx, fy = x[face], y[face]  # (P, 3)
    # Screen-space barycentrics from edge functions: w_i is the area opposite vertex i.
    w0 = (fx[:, 2] - fx[:, 1]) * (py - fy[:, 1]) - (fy[:, 2] - fy[:, 1]) * (px - fx[:, 1])
    w1 = (fx[:, 0] - fx[:, 2]) * (py - fy[:, 2]) - (fy[:, 0] - fy[:, 2]) * (px - fx[:, 2])
    w2 = (fx[:, 1] - fx[:, 0]) * (py - fy[:, 0]) - (fy[:, 1] - fy[:, 0]) * (px - fx[:, 0])
    screen = torch.stack([w0, w1, w2], 1) / area[face, None]
    inside = (screen > 0).all(1)
    face, screen = face[inside], screen[inside]
    pixel = (pix_row * size + pix_col)[inside]

    # Perspective correction: weights proportional to b_i / z_i.
    corrected = screen / z[face]
    corrected = corrected / corrected.sum(1, keepdim=True)
    depth = (corrected * z[face]).sum(1)

    # Nearest face per pixel (ties: lowest face index), merged with earlier chunks.
    nearest = torch.full_like(zbuf, float("inf")).scatter_reduce_(0, pixel, depth, "amin")
    winner = (depth == nearest[pixel]) & (depth < zbuf[pixel])
    best_face = torch.full_like(pix_to_face, torch.iinfo(torch.long).max)
    best_face.scatter_reduce_(0, pixel[winner], face[winner], "amin")
    winner &= face == best_face[pixel]
    zbuf[pixel[winner]] = depth[winner]
    pix_to_face[pixel[winner]] = face[winner]
    bary[pixel[winner]] = corrected[winner]
