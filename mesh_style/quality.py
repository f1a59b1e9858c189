"""Quality figures of stylised renders, independent of the training objective.

They answer "is this the object, painted?" with four numbers (the issue "Quality" defines them):

* **style distance** — Σ over ``FIGURE_LAYERS`` of ``‖G(x) − G(s)‖² / ‖G(s)‖²`` with
  ``G = F Fᵀ / (C·H·W)``; renders have their background filled with their mean mesh colour, so only
  the mesh's own statistics count. Lower is closer to the painting.
* **structure** — Pearson correlation over mesh pixels of luminance blurred with σ = 1.5 % of the
  image width, result against original render: 1 keeps the layout, 0 has none of it.
* **colour distance** — sliced Wasserstein distance between mesh-pixel RGB and the painting's RGB.
* **speckle** — mean ``|Laplacian|`` of the chroma (Cb, Cr) over mesh pixels of close-up renders,
  divided by the same for the painting at the same magnification: 1 is as busy as the painting.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from mesh_style.backbone import VGGFeatures
from mesh_style.images import chroma, gaussian_blur, grey, luminance
from mesh_style.style_losses import feature_mask

#: Layers of the offline VGG16 the style distance is measured at (not the ones trained on).
FIGURE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
#: Blur of the structure figure, as a fraction of the image width.
STRUCTURE_SIGMA = 0.015
#: Random directions of the sliced Wasserstein colour distance, and quantiles compared per direction.
PROJECTIONS = 64
QUANTILES = 256


def structure(result: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> float | None:
    """Pearson correlation of blurred luminance over the mesh pixels of all views.

    Args:
        result, original: ``(N, 3, H, W)`` renders of the same views.
        mask: ``(N, H, W)`` bool, True on the mesh.

    Returns:
        In [-1, 1]; None where the original is flat (no layout to keep).
    """
    sigma = STRUCTURE_SIGMA * result.shape[-1]
    a, b = (gaussian_blur(luminance(x)[:, None], sigma)[:, 0][mask] for x in (result, original))
    a, b = a - a.mean(), b - b.mean()
    if b.square().mean().sqrt() < 1e-3:
        return None
    return float((a * b).sum() / (a.square().sum().sqrt() * b.square().sum().sqrt()).clamp_min(1e-12))


def fill_background(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixels off the mesh take the view's mean mesh colour: ``(N, 3, H, W)``, ``(N, H, W)``."""
    m = mask[:, None].to(images)
    mean = (images * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp_min(1)
    return images * m + mean * (1 - m)


def figure_grams(extractor: VGGFeatures, images: torch.Tensor, positions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``(N, 3, H, W)`` → ``{layer: (N, C, C)}`` with ``G = F Fᵀ / (C·H·W)`` at :data:`FIGURE_LAYERS`;
    with ``positions (N, H, W)`` (bool) the average is over those positions only."""
    with torch.inference_mode():
        features = extractor(images.to(extractor.dtype))
    grams = {}
    for layer in FIGURE_LAYERS:
        f = features[layer].float()
        w = torch.ones_like(f[:, :1]) if positions is None else feature_mask(positions, f.shape[-2:])
        f, w = f.flatten(2), w.flatten(2)
        grams[layer] = (f * w) @ f.transpose(1, 2) / (f.shape[1] * w.sum(2, keepdim=True))
    return grams


class FigurePainting:
    """A painting as the style figures see it, its Gram matrices taken once, when first asked for:
    a run's figures compare two textures' renders four ways with each painting (8 passes of VGG
    over the painting where 2 do).

    Args:
        extractor: the VGG16 of the figures.
        image: ``(1, 3, h, w)`` style image in [0, 1].
    """

    def __init__(self, extractor: VGGFeatures, image: torch.Tensor) -> None:
        self.extractor, self.image = extractor, image

    @functools.cached_property
    def grams(self) -> dict[str, torch.Tensor]:
        """``{layer: (1, C, C)}`` of the painting in colour."""
        return figure_grams(self.extractor, self.image)

    @functools.cached_property
    def grey_grams(self) -> dict[str, torch.Tensor]:
        """``{layer: (1, C, C)}`` of the painting in grey."""
        return figure_grams(self.extractor, grey(self.image))

    @functools.cached_property
    def brightness(self) -> float:
        """Mean luma of the painting."""
        return float(luminance(self.image).mean())


def _as_painting(extractor: VGGFeatures, painting: torch.Tensor | FigurePainting) -> FigurePainting:
    return painting if isinstance(painting, FigurePainting) else FigurePainting(extractor, painting)


def _gram_distances(
    extractor: VGGFeatures, images: torch.Tensor, mask: torch.Tensor | None, target: dict[str, torch.Tensor], over_mask: bool
) -> dict[str, float]:
    """``{layer: mean over views of ‖G(x) − G(s)‖² / ‖G(s)‖²}`` against the painting's Gram matrices ``target``."""
    if mask is not None:
        images = fill_background(images, mask)
    ours = figure_grams(extractor, images, mask if over_mask else None)
    return {
        layer: float(((ours[layer] - target[layer]).square().sum((1, 2)) / target[layer].square().sum()).mean())
        for layer in FIGURE_LAYERS
    }


def style_distance_per_layer(
    extractor: VGGFeatures, images: torch.Tensor, mask: torch.Tensor | None, painting: torch.Tensor | FigurePainting,
    over_mask: bool = False,
) -> dict[str, float]:
    """``{layer: mean over views of ‖G(x) − G(s)‖² / ‖G(s)‖²}`` at :data:`FIGURE_LAYERS`: which
    scale of the painting an image is missing (arguments as :func:`style_distance`)."""
    return _gram_distances(extractor, images, mask, _as_painting(extractor, painting).grams, over_mask)


def style_distance(
    extractor: VGGFeatures, images: torch.Tensor, mask: torch.Tensor | None, painting: torch.Tensor | FigurePainting,
    over_mask: bool = False,
) -> float:
    """Mean over views of Σ_layers ``‖G(x) − G(s)‖² / ‖G(s)‖²``.

    Args:
        extractor: VGG16 returning at least :data:`FIGURE_LAYERS`.
        images: ``(N, 3, H, W)`` renders (or images) in [0, 1].
        mask: ``(N, H, W)`` mesh mask; None when every pixel counts (a 2D image).
        painting: ``(1, 3, h, w)`` style image, or a :class:`FigurePainting` that several figures share.
        over_mask: Gram matrices over the mask's positions only, as the training's style loss
            (default: over every position, the filled background included).
    """
    return sum(style_distance_per_layer(extractor, images, mask, painting, over_mask).values())


def grey_style_distance(
    extractor: VGGFeatures, images: torch.Tensor, mask: torch.Tensor | None, painting: torch.Tensor | FigurePainting
) -> float:
    """:func:`style_distance` of the images and the painting in grey: the palette drops out."""
    return sum(_gram_distances(extractor, grey(images), mask, _as_painting(extractor, painting).grey_grams, False).values())


def levelled_grey(images: torch.Tensor, mask: torch.Tensor, brightness: float) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB → grey of the same shape whose mean luma over each view's mesh pixels
    (``mask (N, H, W)``) is ``brightness``; light and dark keep their differences, clamped to [0, 1]."""
    y = luminance(images)
    m = mask.to(y)
    mean = (y * m).sum((1, 2), keepdim=True) / m.sum((1, 2), keepdim=True).clamp_min(1)
    return (y - mean + brightness).clamp(0, 1).unsqueeze(1).expand_as(images)


def stroke_style_distance(
    extractor: VGGFeatures, images: torch.Tensor, mask: torch.Tensor, painting: torch.Tensor | FigurePainting
) -> float:
    """The style distance of the strokes alone: renders and painting in grey, each view's mesh
    brought to the painting's mean brightness, Gram matrices over the mesh's positions.

    The grey figure still counts brightness: a bright yellow duck darkened to Starry Night's
    level by the palette move alone reads most of the optimised result's grey style gain. With the
    brightness levelled and the background left out, what is left is the light and dark *pattern*
    (strokes, their contrast and scale), which the palette move barely changes.
    """
    painting = _as_painting(extractor, painting)
    levelled = levelled_grey(images, mask, painting.brightness)
    return sum(_gram_distances(extractor, levelled, mask, painting.grey_grams, True).values())


def colour_distance(pixels: torch.Tensor, painting_pixels: torch.Tensor, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance between two sets of RGB colours ``(P, 3)`` and ``(Q, 3)``.

    Both sets are projected on :data:`PROJECTIONS` fixed random directions and compared at
    :data:`QUANTILES` quantiles, so sets of different sizes compare directly.
    """
    generator = torch.Generator().manual_seed(seed)
    directions = F.normalize(torch.randn(3, PROJECTIONS, generator=generator), dim=0)
    q = (torch.arange(QUANTILES, dtype=torch.float32) + 0.5) / QUANTILES
    a = torch.quantile((pixels.float().cpu() @ directions), q, dim=0)
    b = torch.quantile((painting_pixels.float().cpu() @ directions), q, dim=0)
    return float((a - b).square().mean().sqrt())


def _chroma_laplacian(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` → ``(N, H-2, W-2)``: |Laplacian| summed over Cb and Cr, interior pixels."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=images.device)
    c = chroma(images.float())
    n, channels, height, width = c.shape
    lap = F.conv2d(c.reshape(n * channels, 1, height, width), kernel.view(1, 1, 3, 3))
    return lap.abs().view(n, channels, height - 2, width - 2).sum(1)


def busyness(images: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean chroma ``|Laplacian|`` over pixels whose whole 3×3 neighbourhood is on the mesh."""
    lap = _chroma_laplacian(images)
    if mask is None:
        return float(lap.mean())
    inside = -F.max_pool2d(-mask[:, None].float(), 3, stride=1)[:, 0] > 0.5  # eroded by one pixel
    return float(lap[inside].mean()) if inside.any() else 0.0


def speckle(close_ups: torch.Tensor, mask: torch.Tensor, painting: torch.Tensor) -> float:
    """Chroma busyness of ``close_ups (N, 3, H, W)`` over the mesh ``mask (N, H, W)``, relative to
    ``painting (1, 3, h, w)`` at the same magnification (the caller resizes it)."""
    reference = busyness(painting)
    return busyness(close_ups, mask) / max(reference, 1e-8)
