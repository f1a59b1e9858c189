"""Textures of every material as one flat array of texels, and bilinear lookups into it.

Optimising one ``(T, 3)`` tensor instead of a list of images lets a multi-material scene be stylised
in one optimisation, and lets a texture lookup be precomputed per view as four texel indices and
four weights (:func:`bilinear_taps`): each optimisation step is then a single gather.

Conventions (those of glTF, OBJ and trimesh): ``v = 0`` is the bottom row of the image, texel
centres sit at ``(i + 0.5) / W``, and UVs outside [0, 1] wrap around (REPEAT).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mesh_style.images import blur_chroma


@dataclass(frozen=True)
class TextureLayout:
    """Where each material's ``(H, W)`` image lives in the flat texel array."""

    sizes: tuple[tuple[int, int], ...]

    @property
    def offsets(self) -> tuple[int, ...]:
        starts, total = [], 0
        for height, width in self.sizes:
            starts.append(total)
            total += height * width
        return tuple(starts)

    @property
    def num_texels(self) -> int:
        return sum(h * w for h, w in self.sizes)

    def flatten(self, images: list[torch.Tensor]) -> torch.Tensor:
        """``[(H_m, W_m, 3)]`` → ``(T, 3)``."""
        return torch.cat([image.reshape(-1, image.shape[-1]) for image in images])

    def unflatten(self, texels: torch.Tensor) -> list[torch.Tensor]:
        """``(T, C)`` → ``[(H_m, W_m, C)]`` (views, no copy)."""
        counts = [h * w for h, w in self.sizes]
        return [chunk.view(h, w, -1) for chunk, (h, w) in zip(texels.split(counts), self.sizes)]


def bilinear_taps(
    uv: torch.Tensor, material: torch.Tensor, layout: TextureLayout
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear sampling with REPEAT wrapping, as texel indices and weights.

    Args:
        uv: ``(P, 2)`` texture coordinates.
        material: ``(P,)`` index of the material (texture) each sample reads.
        layout: the texture sizes.

    Returns:
        ``index (P, 4)`` int32 into the flat texel array and ``weight (P, 4)`` float32 summing
        to 1 per row, so that ``colour = (texels[index] * weight[..., None]).sum(1)``.
    """
    sizes = torch.tensor(layout.sizes, dtype=torch.long, device=uv.device)  # (M, 2) as (H, W)
    offsets = torch.tensor(layout.offsets, dtype=torch.long, device=uv.device)
    height = sizes[material, 0]
    width = sizes[material, 1]
    # Continuous texel coordinates with texel centres at integers; image row 0 is v = 1.
    x = uv[:, 0].double() * width - 0.5
    y = (1.0 - uv[:, 1].double()) * height - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = (x - x0).float(), (y - y0).float()
    x0, y0 = x0.long(), y0.long()
    xs = torch.stack([x0, x0 + 1, x0, x0 + 1], dim=1).remainder(width[:, None])
    ys = torch.stack([y0, y0, y0 + 1, y0 + 1], dim=1).remainder(height[:, None])
    index = offsets[material, None] + ys * width[:, None] + xs
    weight = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], dim=1)
    return index.int(), weight


def gather_bilinear(texels: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Colours of precomputed taps: ``texels (T, C)``, ``index/weight (..., 4)`` → ``(..., C)``."""
    # int64: the backward pass (index_add_) is over ten times slower with int32 indices on CPU.
    taps = texels.index_select(0, index.reshape(-1).long()).view(*index.shape, texels.shape[-1])
    return (taps * weight.unsqueeze(-1)).sum(-2)


def texel_footprint(index: torch.Tensor, weight: torch.Tensor, footprint: torch.Tensor, layout: TextureLayout) -> torch.Tensor:
    """Texels per pixel side of the finest pixel that reads each texel: ``(T,)``.

    A pixel covering ``f × f`` texels reads only the four around its centre, so a minified view
    reads a sparse grid of texels (about four in ``f²``); the texels between them take the footprint of
    the read texels around them (push-pull of ``log2 f``), so that the level of detail, and with it
    what the renders teach (:func:`taught_texels`), is continuous over the surface. 1 in a material
    that no pixel reads.

    Args:
        index, weight: ``(P, 4)`` bilinear taps of cached pixels.
        footprint: ``(P,)`` texels per pixel side of each pixel (``ViewCache.footprint``).
        layout: the materials' texture sizes.
    """
    read = weight > 0
    finest = footprint.new_full((layout.num_texels,), float("inf"))
    finest.scatter_reduce_(0, index[read].long(), footprint[:, None].expand_as(index)[read], "amin")
    images = []
    for image in layout.unflatten(finest[:, None]):
        known = image[..., 0].isfinite()
        log_f = torch.where(known, image[..., 0], torch.ones_like(image[..., 0])).log2()
        images.append(push_pull(log_f[None], known)[0, ..., None].exp2())
    return layout.flatten(images)[:, 0]


def taught_texels(seen: torch.Tensor, footprint: torch.Tensor, layout: TextureLayout) -> torch.Tensor:
    """``(T,)`` bool: the texels that the renders taught, those some view reads (``seen``, ``(T,)``
    bool) and, where the footprint (:func:`texel_footprint`) is ``f ≥ 2``, every texel within
    ``2^⌊log2 f⌋ − 1`` texels (Chebyshev) of one. A minified view's reads lie ``f`` texels apart, and
    the level of detail (:class:`TexturePyramid`) made the texels between them of the same stuff;
    that reach, about ``f / 2`` to ``f``, closes those gaps and goes about as far past a chart's edge
    as a rendered pixel does. The rest kept their initial colour and need filling."""
    taught = []
    for mask, f in zip(layout.unflatten(seen[:, None]), layout.unflatten(footprint[:, None])):
        level = torch.log2(f[..., 0]).floor()
        out, grown = mask[..., 0].clone(), mask[..., 0].to(f.dtype)[None, None]
        for k in range(1, int(level.max().item()) + 1):
            # 3×3 max-pools of doubling dilation grow the reads by 1, 3, 7, ... texels, 9 reads a texel each.
            d = 2 ** (k - 1)
            grown = F.max_pool2d(F.pad(grown, (d, d, d, d)), 3, stride=1, dilation=d)
            out |= (grown[0, 0] > 0) & (level == k)
        taught.append(out[..., None])
    return layout.flatten(taught)[:, 0]


class TexturePyramid(nn.Module):
    """Textures as logits, learned, each texel shown at the level of detail the renders teach.

    Every texel has a footprint: the side, in texels, of the finest rendered pixel that reads it
    (:func:`texel_footprint`). Where it is ``f > 1`` the renders cannot tell the texels of an
    ``f × f`` patch apart, and Adam, which scales every parameter's step to the same size, would
    grow noise there that the training renders never see (speckle at close range). So the texture
    is composed per texel from a mip chain of the logits (box-averaged, upsampled bilinearly)
    at level ``log2 f``, blended between the two nearest levels: it varies only as finely as the
    renders can teach, at every place of the atlas (UV islands of one texture often differ several
    times in texel density), and stays smooth at any distance. A bilinear lookup of it is a
    trilinear mip read, free of aliasing.

    Optional coarser levels (``levels > 1``), half the size each, start at zero and add to the
    logits scaled by ``decay ** k``: their steps move whole regions (large strokes), and at full
    speed they wash the original's layout away. The sigmoid keeps texels in [0, 1] with a
    gradient everywhere.

    Args:
        images: initial ``(H_m, W_m, 3)`` textures in [0, 1].
        levels: 1 + the number of coarse offset levels.
        footprint: ``(T,)`` texels per pixel side of every texel (flat, as the layout).
        decay: scale of each coarse level relative to the next finer one.
        texels_per_pixel: detail kept per rendered pixel side (1: as fine as the renders).
        min_size: no level is smaller than this on its short side.
    """

    #: Initial values are kept this far from 0 and 1, where the logit is infinite.
    EPS = 1e-3

    def __init__(
        self,
        images: list[torch.Tensor],
        levels: int,
        footprint: torch.Tensor,
        decay: float = 1.0,
        texels_per_pixel: float = 1.0,
        min_size: int = 4,
    ) -> None:
        super().__init__()
        self.layout = TextureLayout(tuple((im.shape[0], im.shape[1]) for im in images))
        self.params = nn.ParameterList()
        self.scales: list[list[float]] = []
        for m, (image, f) in enumerate(zip(images, self.layout.unflatten(footprint[:, None]))):
            height, width, _ = image.shape
            deepest = max(0, int(math.log2(min(height, width) / min_size)))
            lod = torch.log2((f[..., 0] / texels_per_pixel).clamp_min(1.0)).clamp_max(deepest)
            mips = math.ceil(lod.max().item()) + 1
            # Each texel's weight of each mip level: linear between the two levels nearest its lod.
            hats = torch.stack([(1 - (lod - mip).abs()).clamp_min(0) for mip in range(mips)])
            self.register_buffer(f"hats_{m}", hats[:, None, None].to(image.dtype))  # (mips, 1, 1, H, W)
            logits = torch.logit(image.clamp(self.EPS, 1 - self.EPS)).permute(2, 0, 1)[None]
            self.params.append(nn.Parameter(logits.clone()))
            scales, size = [1.0], (height // 2, width // 2)
            while len(scales) < levels and min(size) >= min_size:
                self.params.append(nn.Parameter(logits.new_zeros(1, logits.shape[1], *size)))
                scales.append(decay ** len(scales))
                size = (size[0] // 2, size[1] // 2)
            self.scales.append(scales)

    def images(self) -> list[torch.Tensor]:
        """The composed ``(H_m, W_m, 3)`` textures in [0, 1]."""
        out, params = [], iter(self.params)
        for m, (scales, size) in enumerate(zip(self.scales, self.layout.sizes)):
            hats, level = getattr(self, f"hats_{m}"), next(params)
            logits = 0.0
            for mip in range(len(hats)):
                if mip:
                    level = F.avg_pool2d(level, 2, ceil_mode=True)
                logits = logits + hats[mip] * _resize(level, size)
            for scale in scales[1:]:
                logits = logits + scale * _resize(next(params), size)
            out.append(torch.sigmoid(logits)[0].permute(1, 2, 0))
        return out

    def forward(self) -> torch.Tensor:
        """``(T, 3)`` flat texels in [0, 1]."""
        return self.layout.flatten(self.images())


def _resize(level: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of a ``(1, C, h, w)`` level to ``size``; a full-size level passes through."""
    if level.shape[-2:] == size:
        return level
    if level.is_cuda:
        # CUDA's upsample_bilinear2d backward adds every output's gradient atomically into the 4
        # input texels it read: a mip of 8² texels under a 2048² texture takes 2¹⁸ additions per
        # texel in series (measured on an H100: 25 ms a level, 73 % of a preset=quality step).
        # On the CPU, which has no such contention, F.interpolate is 2-3× faster than the two passes.
        return resize_separable(level, size)
    return F.interpolate(level, size=size, mode="bilinear", align_corners=False)


@functools.lru_cache(maxsize=64)  # the same few (in, out) pairs every step: computed once per run
def _axis_taps(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``n_out`` samples along an axis of ``n_in``: the ``(n_out,)`` indices below and
    above it and its ``(n_out,)`` weight towards the one above."""
    # PyTorch's half-pixel convention: source coordinate (i + 0.5) · in / out − 0.5, clamped at 0,
    # computed in the precision F.interpolate uses for this dtype.
    exact = torch.promote_types(dtype, torch.float32)
    source = ((torch.arange(n_out, device=device, dtype=exact) + 0.5) * (n_in / n_out) - 0.5).clamp_min(0)
    below = source.long()
    return below, (below + 1).clamp_max(n_in - 1), (source - below).to(dtype)


def resize_separable(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.interpolate(image, size, mode="bilinear", align_corners=False)`` of an ``(N, C, h, w)``
    image as two 1-D passes (rows, then columns): the same values, and a backward pass whose
    scatters meet at most ``2 · out / in`` times per texel instead of ``4 · (out / in)²``."""
    for dim, n_out in ((2, size[0]), (3, size[1])):
        below, above, weight = _axis_taps(image.shape[dim], n_out, image.device, image.dtype)
        weight = weight.view(-1, *([1] * (image.dim() - 1 - dim)))
        image = torch.lerp(image.index_select(dim, below), image.index_select(dim, above), weight)
    return image


#: A material whose texels all lie within this of one another (about one level of 8 bits, so a flat
#: colour read back from a JPEG still counts) is one flat colour: an untextured part.
FLAT_RANGE = 1.5 / 255


def flat_texels(textures: list[torch.Tensor]) -> torch.Tensor:
    """``(T,)`` bool: the texels of the ``[(H_m, W_m, 3)]`` textures that are one flat colour."""
    return torch.cat([
        torch.full((t.shape[0] * t.shape[1],), bool((t.amax((0, 1)) - t.amin((0, 1))).max() <= FLAT_RANGE), device=t.device)
        for t in textures
    ])


def seen_texels(index: torch.Tensor, weight: torch.Tensor, num_texels: int) -> torch.Tensor:
    """``(T,)`` bool: texels that some cached lookup reads with a non-zero weight."""
    seen = torch.zeros(num_texels, dtype=torch.bool, device=index.device)
    seen[index[weight > 0].long()] = True
    return seen


def _neighbour_sum(image: torch.Tensor) -> torch.Tensor:
    """Sum over the 3×3 neighbourhood of every texel: ``(C, H, W)`` → ``(C, H, W)``."""
    kernel = image.new_ones(image.shape[0], 1, 3, 3)
    return F.conv2d(image[None], kernel, padding=1, groups=image.shape[0])[0]


def push_pull(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the unknown texels of ``image (C, H, W)`` from a pyramid of mask-weighted averages of
    the ``known (H, W)`` ones: each hole gets a smooth blend of the nearest known colours."""
    if known.all() or not known.any():
        return image
    weight = known[None].to(image.dtype)
    coarse_sum = F.avg_pool2d((image * weight)[None], 2, ceil_mode=True)[0]
    coarse_weight = F.avg_pool2d(weight[None], 2, ceil_mode=True)[0]
    coarse = push_pull(coarse_sum / coarse_weight.clamp_min(1e-12), coarse_weight[0] > 0)
    up = F.interpolate(coarse[None], size=image.shape[-2:], mode="bilinear", align_corners=False)[0]
    return torch.where(known[None], image, up)


def fill_unseen(image: torch.Tensor, seen: torch.Tensor, gutter: int) -> torch.Tensor:
    """Give texels no view sees the colour of their surroundings instead of the initial texture.

    First ``gutter`` rings of texels around every seen region are grown from their seen
    neighbours (so bilinear filtering and mipmaps across UV-island edges read the island's own
    colours), then push-pull fills what is left.

    Args:
        image: ``(H, W, C)`` texture.
        seen: ``(H, W)`` bool.
        gutter: rings of texels grown by dilation.
    """
    colour = image.permute(2, 0, 1)
    known = seen.clone()
    for _ in range(gutter):
        counts = _neighbour_sum(known[None].to(image.dtype))[0]
        grow = ~known & (counts > 0)
        if not grow.any():
            break
        sums = _neighbour_sum(colour * known.to(image.dtype))
        colour = torch.where(grow, sums / counts.clamp_min(1), colour)
        known = known | grow
    return push_pull(colour, known).permute(1, 2, 0)


def fill_unseen_texels(texels: torch.Tensor, seen: torch.Tensor, layout: TextureLayout, gutter: int) -> torch.Tensor:
    """:func:`fill_unseen` on every material of a flat ``(T, 3)`` texel array; ``seen`` is ``(T,)``."""
    images, masks = layout.unflatten(texels), layout.unflatten(seen[:, None])
    return layout.flatten([fill_unseen(image, mask[..., 0], gutter) for image, mask in zip(images, masks)])


def blur_chroma_texels(texels: torch.Tensor, layout: TextureLayout, sigmas: list[float]) -> torch.Tensor:
    """:func:`~mesh_style.images.blur_chroma` on every material of a flat ``(T, 3)`` texel array,
    material ``m`` with ``sigmas[m]`` texels."""
    return layout.flatten([blur_chroma(image, sigma) for image, sigma in zip(layout.unflatten(texels), sigmas)])
