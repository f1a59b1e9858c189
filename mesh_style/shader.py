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

    Only the ``P`` pixels on the mesh are stored, view after view (view ``n`` owns rows
    ``start[n]:start[n + 1]``) and, within a view, in the order of the texels they read, so that a
    render and its gradient walk the texture in order rather than at random.

    Attributes:
        mask: ``(N, H, W)`` bool, True on the mesh.
        pixel: ``(P,)`` int64 position ``y·W + x`` of each mesh pixel in its view.
        index: ``(P, 4)`` int32 bilinear taps into the flat texel array.
        weight: ``(P, 4)`` float32 tap weights, summing to 1 per row.
        shading: ``(P,)`` float32 ambient + diffuse light factor.
        facing: ``(P,)`` float32 ``|cos|`` of the angle between the surface normal and the view ray
            (1: seen head-on, 0: at a grazing angle).
        start: ``(N + 1,)`` int64 first row of each view, and ``P``.
        footprint: ``(P,)`` float32 side, in texels, of the patch of texture each pixel covers
            (> 1: the texture is finer there than these renders can teach).
    """

    mask: torch.Tensor
    pixel: torch.Tensor
    index: torch.Tensor
    weight: torch.Tensor
    shading: torch.Tensor
    facing: torch.Tensor
    start: torch.Tensor
    footprint: torch.Tensor

    def __len__(self) -> int:
        return self.mask.shape[0]

    def views(self) -> torch.Tensor:
        """``(P,)`` int64 view of each mesh pixel."""
        return torch.repeat_interleave(torch.arange(len(self), device=self.pixel.device), self.start.diff().to(self.pixel.device))

    def view_means(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over each view's mesh pixels of ``values (P, ...)``: ``(N, ...)`` (0 for a view without any)."""
        sums = values.new_zeros(len(self), *values.shape[1:]).index_add_(0, self.views(), values)
        counts = self.start.diff().to(values.device).clamp_min(1)
        return sums / counts.view(-1, *[1] * (values.dim() - 1))

    def positions(self) -> torch.Tensor:
        """``(P,)`` int64 position of each mesh pixel in the ``N·H·W`` pixels of all views."""
        _, height, width = self.mask.shape
        return self.views() * (height * width) + self.pixel

    def select(self, ids: torch.Tensor | slice) -> "ViewCache":
        """The views ``ids`` (a tensor of view numbers or a slice), in that order."""
        ids = range(len(self))[ids] if isinstance(ids, slice) else ids.tolist()
        bounds = self.start.tolist()
        counts = torch.tensor([bounds[i + 1] - bounds[i] for i in ids], dtype=torch.long)
        rows = torch.cat([torch.arange(bounds[i], bounds[i + 1]) for i in ids] or [torch.zeros(0, dtype=torch.long)])
        rows = rows.to(self.pixel.device)
        return ViewCache(
            mask=self.mask[list(ids)],
            pixel=self.pixel[rows],
            index=self.index[rows],
            weight=self.weight[rows],
            shading=self.shading[rows],
            facing=self.facing[rows],
            start=torch.cat([counts.new_zeros(1), counts.cumsum(0)]),
            footprint=self.footprint[rows],
        )


def interpolate(fragments: Fragments, faces: torch.Tensor, attribute: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``(V, D)`` attribute at every covered pixel: ``(P, D)`` for the P mask pixels."""
    mask = fragments.mask
    corners = attribute[faces[fragments.pix_to_face[mask]]]  # (P, 3, D)
    return (fragments.bary[mask].unsqueeze(-1) * corners).sum(1)


def pixel_footprint(uv: torch.Tensor, material: torch.Tensor, mask: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
    """Texels per pixel side at every mesh pixel: the largest singular value of the UV Jacobian in
    texels, from differences with the right and lower neighbours.

    The long axis, not ``sqrt |det J|``: where a pixel is stretched over the texture (grazing
    angles, anisotropic atlases) detail finer than its long side is skipped by the bilinear read
    and grows unseen into stripes.

    Args:
        uv: ``(P, 2)`` texture coordinates of the mesh pixels of ``mask``.
        material: ``(P,)`` material of each.
        mask: ``(N, H, W)`` bool.
        sizes: ``(H_m, W_m)`` of every material's texture.

    Returns:
        ``(P,)``; pixels without both neighbours on the same material, or across a UV seam (a jump
        of over a tenth of the texture), take their view's median.
    """
    scale = torch.tensor(sizes, dtype=uv.dtype, device=uv.device).flip(1)[material]  # (P, 2) as (W, H)
    n, height, width = mask.shape
    dense = uv.new_zeros(n, height + 1, width + 1, 2)
    dense[:, :height, :width][mask] = uv * scale
    owner = torch.full((n, height + 1, width + 1), -1, dtype=torch.long, device=uv.device)
    owner[:, :height, :width][mask] = material
    here, right, down = dense[:, :height, :width], dense[:, :height, 1:], dense[:, 1:, :width]
    du, dv = right - here, down - here
    det = du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]
    trace = du.square().sum(-1) + dv.square().sum(-1)  # σ₁² + σ₂², while det² = σ₁² σ₂²
    footprint = ((trace + (trace.square() - 4 * det.square()).clamp_min(0).sqrt()) / 2).sqrt()
    limit = 0.1 * scale.max()
    valid = (
        (owner[:, :height, 1:] == owner[:, :height, :width])
        & (owner[:, 1:, :width] == owner[:, :height, :width])
        & (du.abs().amax(-1) < limit)
        & (dv.abs().amax(-1) < limit)
        & mask
    )
    for view in range(n):
        measured = footprint[view][valid[view]]
        fallback = measured.median() if len(measured) else footprint.new_tensor(1.0)
        footprint[view] = torch.where(valid[view], footprint[view], fallback)
    return footprint[mask].clamp_min(1e-3)


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
    footprint = pixel_footprint(uv, material, mask, list(mesh.layout.sizes))

    # Headlight: the light sits at the camera, so a face is brightest when it faces the viewer.
    # |n·v| lights both sides alike, which keeps meshes with flipped normals usable.
    position = interpolate(fragments, faces, mesh.verts.to(device))
    normal = torch.nn.functional.normalize(interpolate(fragments, faces, mesh.normals.to(device)), dim=-1)
    view_ids = torch.arange(n, device=device).view(n, 1, 1).expand(n, height, width)[mask]
    to_camera = torch.nn.functional.normalize(camera_centres.to(device)[view_ids] - position, dim=-1)
    lambert = (normal * to_camera).sum(-1).abs()

    # Mesh pixels come view by view from the boolean mask; order each view's by the texel it reads first.
    order = torch.argsort(view_ids.long() * mesh.layout.num_texels + taps[:, 0].long(), stable=True)
    counts = mask.flatten(1).sum(1)
    return ViewCache(
        mask=mask,
        pixel=mask.flatten(1).nonzero()[:, 1][order],
        index=taps[order],
        weight=tap_weight[order],
        shading=(cfg.ambient + cfg.diffuse * lambert)[order],
        facing=lambert[order],
        start=torch.cat([counts.new_zeros(1), counts.cumsum(0)]).cpu(),
        footprint=footprint[order],
    )


def pixel_image(values: torch.Tensor, cache: ViewCache, fill: float = 0.0) -> torch.Tensor:
    """Per-pixel ``values (P,)`` of ``cache`` as ``(N, 1, H, W)`` images, ``fill`` off the mesh."""
    n, height, width = cache.mask.shape
    return values.new_full((n * height * width,), fill).index_put((cache.positions(),), values).view(n, 1, height, width)


def shade(texels: torch.Tensor, cache: ViewCache, background: torch.Tensor | None) -> torch.Tensor:
    """Render a texture through cached views.

    Args:
        texels: ``(T, 3)`` flat texture (see :class:`~mesh_style.textures.TextureLayout`).
        cache: ``N`` views.
        background: ``(3,)`` colour of pixels off the mesh, or None for each view's mean mesh
            colour (held constant for the gradient): the silhouette then makes no edge.

    Returns:
        ``(N, 3, H, W)`` images.
    """
    n, height, width = cache.mask.shape
    colour = gather_bilinear(texels, cache.index, cache.weight) * cache.shading.unsqueeze(-1)
    if background is None:
        fill = cache.view_means(colour.detach())
    else:
        fill = background.to(colour).expand(n, 3)
    canvas = fill[:, None].expand(n, height * width, 3).reshape(-1, 3)
    rgb = canvas.index_put((cache.positions(),), colour)
    return rgb.reshape(n, height, width, 3).permute(0, 3, 1, 2)


def shown_colours(texels: torch.Tensor, cache: ViewCache) -> torch.Tensor:
    """``(P, 3)``: the shaded colours of every mesh pixel of ``cache``'s views (the palette the
    renders show), in the order of ``cache.mask``."""
    return shade(texels, cache, None).permute(0, 2, 3, 1)[cache.mask]


def facing_weighted(images: torch.Tensor, cache: ViewCache, power: float) -> torch.Tensor:
    """``images (N, 3, H, W)`` of ``cache``, unchanged, whose gradient at each mesh pixel is scaled by
    ``facing ** power`` (StyleMesh's angle-aware loss): a surface seen at a grazing angle shows the
    painting's strokes squashed, and should teach the texture less."""
    weight = pixel_image(cache.facing.pow(power), cache)
    return images.detach() + (images - images.detach()) * weight
