"""The objective (VGG features of renders → losses) and the Adam loop on the texture."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from mesh_style.backbone import LuminanceOnly, VGGFeatures
from mesh_style.checkpoint import Checkpoint
from mesh_style.errors import MeshStyleError
from mesh_style.images import keep_chroma
from mesh_style.losses import ContentLoss, SeamLoss, chroma_smoothness, total_variation, widened
from mesh_style.shader import ViewCache, facing_weighted, pixel_image, shade
from mesh_style.schema import active_style_layers
from mesh_style.seams import SeamTaps
from mesh_style.style import Paintings
from mesh_style.style_losses import LONG_RANGE_SHIFTS, LongRangeLoss, StyleLoss
from mesh_style.textures import TextureLayout, TexturePyramid, texel_footprint

log = logging.getLogger(__name__)


class Objective(nn.Module):
    """Renders cached views of a texture and scores them against the style and content targets.

    Args:
        extractor: frozen VGG feature extractor (or its :class:`~mesh_style.backbone.LuminanceOnly` view).
        style: style loss holding the paintings' targets.
        content: content loss holding features of the original texture for every cached view.
        background: ``(3,)`` colour behind the mesh, or None for each view's mean mesh colour.
        facing_power: each pixel's gradient is scaled by ``|cos(normal, view)| ** facing_power``
            (see :func:`~mesh_style.shader.facing_weighted`); 0: every pixel alike.
        chroma_edge: the chroma step beyond which the chroma smoothness cost flattens out
            (see :func:`~mesh_style.losses.chroma_smoothness`).
        seam: colour agreement across the UV seams, or None (no seams).
        long_range: the long-range term, added to the style loss with weight ``long_range_weight``,
            or None (off).
    """

    def __init__(
        self,
        extractor: VGGFeatures | LuminanceOnly,
        style: StyleLoss,
        content: ContentLoss,
        background: torch.Tensor | None,
        facing_power: float,
        chroma_edge: float,
        seam: SeamLoss | None = None,
        long_range: LongRangeLoss | None = None,
        long_range_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.style = style
        self.content = content
        self.register_buffer("background", background)
        self.facing_power = facing_power
        self.chroma_edge = chroma_edge
        self.seam = seam
        self.long_range = long_range
        self.long_range_weight = long_range_weight

    def forward(self, texels: torch.Tensor, cache: ViewCache, view_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-view losses ``{"style": (N,), "content": (N,), "chroma": (N,)}`` of views ``view_ids`` of ``cache``
        (``style``: the long-range term included)."""
        views = cache.select(view_ids)
        images = shade(texels, views, self.background)
        if self.facing_power > 0:
            images = facing_weighted(images, views, self.facing_power)
        return {**self.score(images, view_ids), "chroma": chroma_smoothness(images, views.mask, self.chroma_edge)}

    def score(self, images: torch.Tensor, view_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-view losses of ``(N, 3, H, W)`` renders of views ``view_ids``."""
        taps = self.style.taps(view_ids)  # style statistics taken inside the trunk, see style_losses
        features = self.extractor(images, taps)
        style = self.style(taps)
        if self.long_range is not None:
            style = style + self.long_range_weight * self.long_range(features, view_ids)
        return {"style": style, "content": self.content(features, view_ids)}


def painting_features(extractor: VGGFeatures | LuminanceOnly, paintings: Paintings, layers: list[str]) -> list[dict[str, torch.Tensor]]:
    """Each painting's ``{layer: (1, C, H, W)}`` features."""
    with torch.inference_mode():
        return [{layer: f.clone() for layer, f in extractor(image).items() if layer in layers} for image in paintings.images]


def content_targets(
    extractor: VGGFeatures, texels: torch.Tensor, cache: ViewCache, background: torch.Tensor | None, layer: str, chunk: int
) -> torch.Tensor:
    """Features at ``layer`` of every cached view rendered with ``texels``: ``(V, C, h, w)``, widened."""
    with torch.inference_mode():
        return widened(torch.cat([
            extractor(shade(texels, cache.select(slice(i, i + chunk)), background))[layer]
            for i in range(0, len(cache), chunk)
        ])).clone()


def content_weights(flat: torch.Tensor, cache: ViewCache, size: tuple[int, int]) -> torch.Tensor | None:
    """How much the content loss holds at each ``size = (h, w)`` position of its layer: ``(V, 1, h, w)``
    in [0, 1] for the views of ``cache``, or None where every view reads only textured materials.

    A material of one flat colour (``flat``, ``(T,)`` bool per texel) has no layout to keep: the
    object's look there is its geometry and shading, which the texture cannot change, and holding
    the renders' features only pulls the painting back towards the flat colour (README Quality,
    "Untextured parts"). Mesh pixels count by the share of their taps on textured materials,
    background pixels by the textured share of their view's mesh pixels; each position averages
    the pixels it covers.
    """
    flat_taps = flat[cache.index.long()]
    if not bool((flat_taps & (cache.weight > 0)).any()):
        return None
    textured = (cache.weight * ~flat_taps).sum(1)  # (P,)
    share = cache.view_means(textured)
    background = (~cache.mask).unsqueeze(1).to(textured.dtype) * share.view(-1, 1, 1, 1)
    return F.adaptive_avg_pool2d(pixel_image(textured, cache) + background, size)


def build_objective(
    extractor: VGGFeatures | LuminanceOnly,
    paintings: Paintings,
    texels: torch.Tensor,
    cache: ViewCache,
    cfg: DictConfig,
    background: torch.Tensor,
    seams: SeamTaps | None = None,
    flat: torch.Tensor | None = None,
) -> Objective:
    """Targets computed once for every view of ``cache``: the paintings' statistics (of the kind
    ``cfg.style_kind``), the mesh masks at each layer's resolution and the original texture's
    content features.

    ``cfg`` is the ``loss`` config group; ``background`` the render's, used where
    ``cfg.background`` is ``render`` (``mean``: each view's mean mesh colour); ``seams`` the
    points along the mesh's UV seams (None: no seam loss); ``flat`` the ``(T,)`` texels of
    flat-coloured materials, whose layout the content loss does not hold (None: none).
    """
    layer_weights = active_style_layers(cfg)
    background = background if cfg.background == "render" else None
    features = painting_features(extractor, paintings, [*layer_weights, *LONG_RANGE_SHIFTS])
    style = StyleLoss(cfg.style_kind, features, paintings.weights, layer_weights, cache.mask)
    long_range = LongRangeLoss(features, paintings.weights, cache.mask) if cfg.long_range_weight > 0 else None
    targets = content_targets(extractor, texels, cache, background, cfg.content_layer, chunk=cfg.eval_chunk)
    weights = None if flat is None else content_weights(flat.to(targets.device), cache, tuple(targets.shape[-2:]))
    content = ContentLoss(cfg.content_layer, targets, weights)
    seam = SeamLoss(seams).to(texels.device) if seams is not None and len(seams) else None
    return Objective(extractor, style, content, background, cfg.facing_power, cfg.chroma_edge, seam, long_range, cfg.long_range_weight)


class MovingAverage:
    """Exponential moving average of ``(T, 3)`` texels over the steps.

    Adam on a few random views per step leaves step-to-step noise in the texture, which shows as
    speckle; the average keeps what the steps agree on. The decay ramps up as ``(1 + k) / (10 + k)``
    over the first ``k`` updates (as TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``),
    so a short run is not held back at its start.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.value: torch.Tensor | None = None

    def update(self, texels: torch.Tensor) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.value = texels.detach().clone() if self.value is None else self.value.lerp_(texels.detach(), 1 - decay)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "value": self.value}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """``state`` from :meth:`state_dict`, its texels copied to ``device`` (checkpoints load on the CPU)."""
        self.updates = state["updates"]
        self.value = None if state["value"] is None else state["value"].to(device, copy=True)


class TextureOptimizer:
    """Adam on a :class:`~mesh_style.textures.TexturePyramid` of the textures, one step at a time.

    Args:
        images: initial ``(H_m, W_m, 3)`` textures, on the device of the objective.
        objective: losses of rendered views.
        footprint: ``(T,)`` texels per rendered pixel side of every texel (:func:`texel_footprint`).
        loss_cfg: the ``loss`` group (weights).
        cfg: the ``optim`` group (lr, pyramid_levels, level_decay, average).
        chroma_of: ``(T, 3)`` texels whose chroma every step keeps (:func:`~mesh_style.images.keep_chroma`;
            ``style.colour=preserve`` by luminance), or None.
    """

    def __init__(
        self,
        images: list[torch.Tensor],
        objective: Objective,
        footprint: torch.Tensor,
        loss_cfg: DictConfig,
        cfg: DictConfig,
        chroma_of: torch.Tensor | None = None,
    ) -> None:
        self.pyramid = TexturePyramid(images, cfg.pyramid_levels, footprint, cfg.level_decay, cfg.texels_per_pixel)
        self.optimizer = torch.optim.Adam(self.pyramid.parameters(), lr=cfg.lr)
        self.objective = objective
        self.loss_cfg = loss_cfg
        self.chroma_of = chroma_of
        self.average = MovingAverage(cfg.average) if cfg.average > 0 else None

    def current(self) -> torch.Tensor:
        """``(T, 3)`` texels in [0, 1], with the kept chroma where there is one."""
        texels = self.pyramid()
        return texels if self.chroma_of is None else keep_chroma(texels, self.chroma_of)

    def step(self, cache: ViewCache, view_ids: torch.Tensor) -> dict[str, float]:
        """One Adam step on the views ``view_ids`` of ``cache``; returns the step's losses."""
        texels = self.current()
        losses = self.objective(texels, cache, view_ids)
        style, content = losses["style"].mean(), losses["content"].mean()
        tv = total_variation(self.pyramid.layout.unflatten(texels))
        chroma = losses["chroma"].mean()
        seam = self.objective.seam(texels) if self.objective.seam is not None else tv.new_zeros(())
        total = (
            self.loss_cfg.style_weight * style
            + self.loss_cfg.content_weight * content
            + self.loss_cfg.tv_weight * tv
            + self.loss_cfg.chroma_weight * chroma
            + self.loss_cfg.seam_weight * seam
        )
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.average is not None:
            self.average.update(texels)  # the texels this step scored: the last step's update is left out
        return {
            "total": total.item(), "style": style.item(), "content": content.item(), "tv": tv.item(), "chroma": chroma.item(), "seam": seam.item(),
        }

    def texels(self) -> torch.Tensor:
        """The result so far: ``(T, 3)`` texels in [0, 1], the steps' moving average where there is one."""
        if self.average is not None and self.average.value is not None:
            return self.average.value.clone()
        with torch.no_grad():
            return self.current().detach()


def optimize(
    images: list[torch.Tensor],
    objective: Objective,
    cache: ViewCache,
    loss_cfg: DictConfig,
    cfg: DictConfig,
    views_per_step: int,
    seed: int,
    chroma_of: torch.Tensor | None = None,
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
    recolour: Callable[[torch.Tensor], torch.Tensor] | None = None,
    recolour_at: int = 0,
) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """``cfg.steps`` steps of :class:`TextureOptimizer`, each on ``views_per_step`` views of ``cache``
    (the optimisation bank) drawn at random without replacement; ``seed`` seeds their order;
    ``chroma_of`` as in :class:`TextureOptimizer`. Saves into ``checkpoint`` when it is due and, with
    ``resume``, continues from the one saved there. With ``recolour``, after ``recolour_at`` steps
    the result so far ``(T, 3)`` is replaced by ``recolour(result)`` and the steps go on from it.

    Returns:
        The optimised ``(T, 3)`` texels in [0, 1] (the steps' moving average, where ``cfg.average``
        is on) and the loss history, one dict per step.

    Raises:
        MeshStyleError: a loss became NaN or infinite (the last checkpoint is kept).
    """
    layout = TextureLayout(tuple((im.shape[0], im.shape[1]) for im in images))
    footprint = texel_footprint(cache.index, cache.weight, cache.footprint, layout)
    optimizer = TextureOptimizer(images, objective, footprint, loss_cfg, cfg, chroma_of)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    state = checkpoint.load() if checkpoint is not None and resume else None
    if state is not None:
        optimizer.pyramid.load_state_dict(state["pyramid"])
        optimizer.optimizer.load_state_dict(state["adam"])
        if optimizer.average is not None:
            optimizer.average.load_state_dict(state["average"], cache.mask.device)
        generator.set_state(state["views_rng"])
        torch.set_rng_state(state["torch_rng"])  # swd's random directions
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"])
        history = state["history"]
    # disable=None: a progress bar on a terminal; in logs and pipes (sweeps, clusters) a line every 10 %.
    progress = tqdm(range(len(history), cfg.steps), desc="stylising", unit="step", dynamic_ncols=True, disable=None, leave=False, position=1,
                    initial=len(history), total=cfg.steps)
    every = max(1, cfg.steps // 10)
    for step in progress:
        if recolour is not None and step == recolour_at:
            # A fresh optimiser: Adam's moments and the moving average would pull back to the old colours.
            optimizer = TextureOptimizer(layout.unflatten(recolour(optimizer.texels())), objective, footprint, loss_cfg, cfg, chroma_of)
        view_ids = torch.randperm(len(cache), generator=generator)[:views_per_step].to(cache.mask.device)
        losses = optimizer.step(cache, view_ids)
        if not math.isfinite(losses["total"]):  # name the term that blew up, where one did
            bad = next((name for name, value in losses.items() if name != "total" and not math.isfinite(value)), "total")
            raise MeshStyleError(
                f"the {bad} loss became {losses[bad]} at step {step + 1} (lower optim.lr, now {cfg.lr}, or the loss weights)"
            )
        history.append(losses)
        progress.set_postfix(style=f"{losses['style']:.3f}", content=f"{losses['content']:.3f}")
        if progress.disable and ((step + 1) % every == 0 or step + 1 == cfg.steps):
            log.info(
                "stylising: step %d/%d (%.0f %%), style %.3f, content %.3f",
                step + 1, cfg.steps, 100 * (step + 1) / cfg.steps, losses["style"], losses["content"],
            )
        if checkpoint is not None and checkpoint.due(step + 1, cfg.steps):
            checkpoint.save({
                "step": step + 1,
                "pyramid": optimizer.pyramid.state_dict(),
                "adam": optimizer.optimizer.state_dict(),
                "average": optimizer.average.state_dict() if optimizer.average is not None else None,
                "views_rng": generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state() if cache.mask.is_cuda else None,
                "history": history,
            })
    return optimizer.texels(), history
