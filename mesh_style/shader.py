"""Second stage of rendering: texture lookup and shading, the only part that runs every step.

:func:`build_view_cache` turns :class:`~mesh_style.rasterizer.Fragments` into everything a render
needs that does not depend on the texture: bilinear texel taps, a Lambertian shading factor and
the mask. :func:`shade` then renders any texture from those in one gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig

from mesh_style.mesh import Mesh
from mesh_style.fragments import Fragments
from mesh_style.textures import bilinear_taps, gather_bilinear


@dataclass
class ViewCache:
    """What the optimisation needs from geometry and cameras, for ``N`` views of ``H × W``.

    Attributes:
        index: ``(N, H, W, 4)`` int32 bilinear taps into the flat texel array (0 on background).
        weight: ``(N, H, W, 4)`` float32 tap weights (0 on background).
        shading: ``(N, H, W)`` float32 ambient + diffuse light factor (0 on background).
        mask: ``(N, H, W)`` bool, True on the mesh.
    """

    index: torch.Tensor
    weight: torch.Tensor
    shading: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.mask.shape[0]

    def select(self, ids: torch.Tensor | slice) -> "ViewCache":
        return ViewCache(self.index[ids], self.weight[ids], self.shading[ids], self.mask[ids])


def interpolate(fragments: Fragments, faces: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``(V, D)`` attribute at every covered pixel: ``(P, D)`` for the P mask pixels."""
    mask = fragments.mask
    corners = attribute[faces[fragments.pix_to_face[mask]]]  # (P, 3, D)
    return (fragments.bary[mask].unsqueeze(-1) * corners).sum(1)


def build_view_cache(
    fragments: Fragments, mesh: Mesh, camera_centres: torch.Tensor, cfg: DictConfig
) -> ViewCache:
    """Precompute texel taps and shading for rasterised views.

    Args:
        fragments: ``N`` rasterised views of ``mesh``.
        mesh: the mesh that was rasterised.
        camera_centres: ``(N, 3)`` camera positions in the mesh's frame.
        cfg: the ``render`` config group (``ambient``, ``diffuse``).
    """
    mask = fragments.mask
    n, height, width = mask.shape
    device = fragments.bary.device
    faces = mesh.faces.to(device)
    uv = interpolate(fragments, faces, mesh.verts_uvs.to(device))
    material = mesh.face_material.to(device)[fragments.pix_to_face[mask]]
    taps, tap_weight = bilinear_taps(uv, material, mesh.layout)

    # Headlight: the light sits at the camera, so a face is brightest when it faces the viewer.
    # |n·v| lights both sides alike, which keeps meshes with flipped normals usable.
    position = interpolate(fragments, faces, mesh.verts.to(device))
    normal = torch.nn.functional.normalize(interpolate(fragments, faces, mesh.normals.to(device)), dim=-1)
    view_ids = torch.arange(n, device=device).view(n, 1, 1).expand(n, height, width)[mask]
    to_camera = torch.nn.functional.normalize(camera_centres.to(device)[view_ids] - position, dim=-1)
    lambert = (normal * to_camera).sum(-1).abs()

    index = torch.zeros(n, height, width, 4, dtype=torch.int32, device=device)
    weight = torch.zeros(n, height, width, 4, dtype=torch.float32, device=device)
    shading = torch.zeros(n, height, width, dtype=torch.float32, device=device)
    index[mask], weight[mask] = taps, tap_weight
    shading[mask] = cfg.ambient + cfg.diffuse * lambert
    return ViewCache(index=index, weight=weight, shading=shading, mask=mask)


def shade(texels: torch.Tensor, cache: ViewCache, background: torch.Tensor) -> torch.Tensor:
    """Render a texture through cached views.

    Args:
        texels: ``(T, 3)`` flat texture (see :class:`~mesh_style.textures.TextureLayout`).
        cache: ``N`` views.
        background: ``(3,)`` colour of pixels off the mesh.

    Returns:
        ``(N, 3, H, W)`` images.
    """
    mask = cache.mask
    # Only mesh pixels are looked up: the background is about half of a render.
    colour = gather_bilinear(texels, cache.index[mask], cache.weight[mask]) * cache.shading[mask].unsqueeze(-1)
    rgb = background.to(colour).expand(*mask.shape, 3).index_put((mask,), colour)
    return rgb.permute(0, 3, 1, 2)

