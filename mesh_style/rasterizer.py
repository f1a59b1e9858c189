"""First stage of rendering: which face covers each pixel, and where inside it.

Geometry and cameras never change during an optimisation, so this runs once per view and its
output, :class:`~mesh_style.fragments.Fragments`, is turned into a
:class:`~mesh_style.shader.ViewCache`. Two backends give the same fragments: PyTorch3D's
rasteriser (the reference, and the fast one on GPU) and :mod:`mesh_style.zbuffer` (the fast one
on CPU, where PyTorch3D has no binning).
"""

from __future__ import annotations

import torch
from pytorch3d.renderer import FoVPerspectiveCameras, MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes

from mesh_style.fragments import Fragments
from mesh_style.zbuffer import rasterize_zbuffer


def rasterize_pytorch3d(
    verts: torch.Tensor, faces: torch.Tensor, cameras: FoVPerspectiveCameras, image_size: int
) -> Fragments:
    """PyTorch3D's rasteriser (the reference; coarse-to-fine binning on GPU, brute force on CPU).

    Args:
        verts: ``(V, 3)`` positions in world space.
        faces: ``(F, 3)`` vertex indices.
        cameras: ``N`` cameras.
        image_size: output is ``image_size × image_size``.
    """
    n = len(cameras)
    meshes = Meshes(verts=[verts.to(cameras.device)] * n, faces=[faces.to(cameras.device)] * n)
    # bin_size=0 is the naive rasteriser: CPU has no other; on GPU let PyTorch3D pick its bins.
    bin_size = 0 if cameras.device.type == "cpu" else None
    settings = RasterizationSettings(image_size=image_size, faces_per_pixel=1, bin_size=bin_size, max_faces_per_bin=None)
    fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
    pix_to_face = fragments.pix_to_face[..., 0]
    # Packed face indices count faces of earlier meshes in the batch; bring them back to one mesh.
    offsets = torch.arange(n, device=pix_to_face.device).view(n, 1, 1) * faces.shape[0]
    pix_to_face = torch.where(pix_to_face >= 0, pix_to_face - offsets, pix_to_face)
    bary = fragments.bary_coords[..., 0, :] * (pix_to_face >= 0).unsqueeze(-1)
    return Fragments(pix_to_face=pix_to_face, bary=bary)


def rasterize(
    verts: torch.Tensor, faces: torch.Tensor, cameras: FoVPerspectiveCameras, image_size: int, backend: str
) -> Fragments:
    """Rasterise with the backend named by ``render.rasterizer``; ``auto`` is the z-buffer on CPU
    and PyTorch3D on GPU."""
    if backend == "zbuffer" or (backend == "auto" and cameras.device.type == "cpu"):
        return rasterize_zbuffer(verts, faces, cameras, image_size)
    return rasterize_pytorch3d(verts, faces, cameras, image_size)
