"""Style, content and total-variation losses.

Style and content losses are relative: a squared error divided by the squared norm of the
target. Feature magnitudes differ by orders of magnitude between layers and between backbones
(torchvision's VGG sees ImageNet-normalised input, HED's sees 0-255), so relative losses keep
the loss weights meaningful whichever backbone and layers are chosen; a style loss of 1.0 means
"as far from the painting's Gram matrix as the matrix is large".
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mesh_style.backbone import feature_size
from mesh_style.images import chroma


def widened(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 or wider: losses keep full precision whatever dtype the backbone runs in."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class _GramTap(torch.autograd.Function):
    """Identity on ``x (N, C, H, W)`` that also returns ``G = sum_p w_p x_p x_p^T / sum_p w_p``
    over the positions with ``w_p > 0`` (``weights (N, H·W)``), ``(N, C, C)``, :func:`widened`.

    The costliest part of a step after VGG itself, hence written by hand. Background positions
    (about half of a render) are skipped. Placed inside the VGG trunk (see :class:`GramTap`), its
    backward receives the gradient flowing down the trunk and adds the Gram's share into it in place,
    at the mesh positions only: ``dx[keep] += (w x)[keep] (dG + dG^T) / sum w``. Computed on the
    trunk's output instead, autograd would fill a dense gradient for the Gram and then add the two.
    The identity output must therefore feed only ops with their own gradient buffers (convolutions,
    pooling, indexing, losses), not an addition that shares its gradient with another input.

    Positions are rows of the channels-last layout the trunk runs in, so each kept position is one
    contiguous row of C values. Products run in ``x``'s dtype (bfloat16 uses the CPU's matrix units
    and accumulates in float32); only the small ``(C, C)`` result is widened.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = x.permute(0, 2, 3, 1).reshape(len(x), -1, x.shape[1])  # (N, H·W, C); a view when channels-last
        grams, saved = [], []
        for features, w in zip(rows, weights):  # a loop over the few views of a batch, not over pixels
            keep = (w > 0).nonzero().squeeze(1)
            kept = features.index_select(0, keep)
            w = w.index_select(0, keep)
            weighted = kept * (w / w.sum().clamp_min(1e-8)).unsqueeze(1).to(kept.dtype)
            grams.append(widened(weighted.T @ kept))
            saved.append((keep, weighted))
        ctx.saved = saved
        return x.view_as(x), torch.stack(grams)

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor, grad_gram: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad_x.contiguous(memory_format=torch.channels_last)  # the trunk's gradient, ours to add into
        rows = grad.permute(0, 2, 3, 1).view(len(grad), -1, grad.shape[1])
        for n, (keep, weighted) in enumerate(ctx.saved):
            rows[n].index_add_(0, keep, weighted @ (grad_gram[n] + grad_gram[n].T).to(weighted.dtype))
        return grad, None


class GramTap:
    """Passes an activation through unchanged and keeps its masked Gram matrices in ``gram``.

    Given to :class:`~mesh_style.backbone.VGGFeatures` as a tap, so that the Gram's gradient joins
    the trunk's in place (see :class:`_GramTap`).

    Args:
        mask: ``(N, 1, h, w)`` weights in [0, 1] of the positions, at the activation's size.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask
        self.gram: torch.Tensor | None = None  # (N, C, C), set by a call

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        features, self.gram = _GramTap.apply(features, self.mask.reshape(len(self.mask), -1))
        return features


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices averaged over (masked) positions.

    Args:
        features: ``(N, C, H, W)``.
        mask: ``(N, 1, H, W)`` weights in [0, 1], or None for all positions.

    Returns:
        ``(N, C, C)``, :func:`widened`: ``sum_p m_p f_p f_p^T / sum_p m_p``.
    """
    tap = GramTap(features.new_ones(len(features), 1, *features.shape[2:], dtype=torch.float32) if mask is None else mask)
    tap(features)
    return tap.gram


def relative_error(value: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||value - target||² / ||target||²`` per batch item: ``(N, ...)`` → ``(N,)``."""
    dims = tuple(range(1, value.dim()))
    return (value - target).square().sum(dims) / target.square().sum(dims).clamp_min(1e-12)


def feature_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, H, W)`` bool image mask → ``(N, 1, h, w)`` fraction of each feature cell on the mesh."""
    return F.adaptive_avg_pool2d(mask.unsqueeze(1).float(), size)


class StyleLoss(nn.Module):
    """Gram-matrix style loss against a painting, restricted to the mesh's pixels.

    Args:
        target_grams: ``{layer: (C, C)}`` Gram matrices of the style image.
        layer_weights: ``{layer: weight}``; the loss is the weighted mean over layers.
        masks: ``(V, H, W)`` bool mesh masks of every view; pooled once to each layer's resolution.
    """

    def __init__(
        self, target_grams: Mapping[str, torch.Tensor], layer_weights: Mapping[str, float], masks: torch.Tensor
    ) -> None:
        super().__init__()
        self.layers = list(target_grams)
        total = sum(layer_weights[layer] for layer in self.layers)
        self.weights = {layer: layer_weights[layer] / total for layer in self.layers}
        for layer, gram in target_grams.items():
            self.register_buffer(f"target_{layer}", gram.detach().clone())
            size = feature_size(layer, masks.shape[-1])
            self.register_buffer(f"mask_{layer}", feature_mask(masks, (size, size)))

    def taps(self, view_ids: torch.Tensor) -> dict[str, GramTap]:
        """A :class:`GramTap` per style layer, masked for views ``view_ids (N,)``."""
        return {layer: GramTap(getattr(self, f"mask_{layer}")[view_ids]) for layer in self.layers}

    def forward(self, grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``{layer: (N, C, C)}`` masked Gram matrices of N views → ``(N,)`` loss per view."""
        loss = 0.0
        for layer in self.layers:
            target = getattr(self, f"target_{layer}").expand_as(grams[layer])
            loss = loss + self.weights[layer] * relative_error(grams[layer], target)
        return loss


class ContentLoss(nn.Module):
    """Feature reconstruction loss against renders of the original texture.

    Args:
        layer: the VGG layer compared.
        targets: ``(V, C, h, w)`` features of the original texture for every view ``V``; compared in
            their dtype (float32 for a bfloat16 backbone: keep the precision of the loss).
    """

    def __init__(self, layer: str, targets: torch.Tensor) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer("targets", targets.detach().clone())

    def forward(self, features: Mapping[str, torch.Tensor], view_ids: torch.Tensor) -> torch.Tensor:
        """``features {layer: (N, C, h, w)}`` of views ``view_ids (N,)`` → ``(N,)`` loss per view."""
        return relative_error(features[self.layer].to(self.targets.dtype), self.targets[view_ids])


#: Chroma difference below which :func:`chroma_smoothness` turns quadratic (Charbonnier).
EPSILON = 1e-3


def chroma_smoothness(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean chroma (Cb, Cr) difference ``|Δc|`` between neighbouring mesh pixels, per view.

    Measured on the renders, at the scale the style loss teaches, where texel-space smoothness is
    weak: a texel-space difference shrinks with the footprint, a hue alternating from one rendered
    pixel to the next does not. An L1 (total variation) penalty, not a squared one: one edge between
    two colour regions costs its height once, while noise costs every alternation, so the red of a
    bridge against a blue sky survives what speckle does not.

    Args:
        images: ``(N, 3, H, W)`` renders.
        mask: ``(N, H, W)`` bool, True on the mesh; pairs with a pixel off it are not counted.

    Returns:
        ``(N,)``.
    """
    c = chroma(images)
    total, count = images.new_zeros(len(images)), images.new_zeros(len(images))
    for dim in (2, 3):
        n = c.shape[dim] - 1
        pair = (mask.narrow(dim - 1, 1, n) & mask.narrow(dim - 1, 0, n)).unsqueeze(1).to(c.dtype)
        step = (c.narrow(dim, 1, n) - c.narrow(dim, 0, n)).square().sum(1, keepdim=True)
        total = total + (((step + EPSILON**2).sqrt() - EPSILON) * pair).sum((1, 2, 3))  # smooth at 0, 0 when flat
        count = count + pair.sum((1, 2, 3))
    return total / count.clamp_min(1)


def total_variation(images: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared difference between neighbouring texels, over all ``(H, W, C)`` images."""
    total, count = 0.0, 0
    for image in images:
        dy = image[1:] - image[:-1]
        dx = image[:, 1:] - image[:, :-1]
        total = total + dy.square().sum() + dx.square().sum()
        count += dy.numel() + dx.numel()
    return total / max(count, 1)
