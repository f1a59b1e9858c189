"""First stage of rendering: which face covers each pixel, and where inside it.

Geometry and cameras never change during an optimisation, so this runs once per view and its
output, :class:`Fragments`, is turned into a :class:`~mesh_style.shader.ViewCache`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pytorch3d.renderer import FoVPerspectiveCameras, MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes

from mesh_style.errors import MeshStyleError


@dataclass
class Fragments:
    """Rasterised views, one face per pixel.

    Attributes:
        pix_to_face: ``(N, H, W)`` int64 index into the mesh's faces, -1 for background.
        bary: ``(N, H, W, 3)`` float32 perspective-correct barycentric coordinates (0 on background).
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(N, H, W)`` bool, True where a face covers the pixel."""
        return self.pix_to_face >= 0


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


RASTERIZERS = ("auto", "pytorch3d")


def rasterize(
    verts: torch.Tensor, faces: torch.Tensor, cameras: FoVPerspectiveCameras, image_size: int, backend: str
) -> Fragments:
    """Rasterise with the backend named by ``render.rasterizer``."""
    if backend not in RASTERIZERS:
        raise MeshStyleError(f"render.rasterizer={backend!r} is not one of {', '.join(RASTERIZERS)}")
    return rasterize_pytorch3d(verts, faces, cameras, image_size)
