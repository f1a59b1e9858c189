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


class _MaskedGram(torch.autograd.Function):
    """``G = sum_p w_p x_p x_p^T / sum_p w_p`` over the positions with ``w_p > 0``.

    Written by hand because it is the costliest part of a step after VGG itself: background
    positions (about half of a render) are skipped, and the backward pass is one matrix product,
    ``dx = (dG + dG^T) (w x) / sum w``, where autograd would do two and add them.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:  # (N, C, P), (N, P)
        grams, saved = [], []
        for x, w in zip(flat, weights):  # a loop over the few views of a batch, not over pixels
            keep = (w > 0).nonzero().squeeze(1)
            x = x.index_select(1, keep)
            w = w.index_select(0, keep)
            weighted = x * (w / w.sum().clamp_min(1e-8))
            grams.append(weighted @ x.T)
            saved.append((keep, weighted))
        ctx.saved, ctx.shape = saved, flat.shape
        return torch.stack(grams)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad_flat = grad.new_zeros(ctx.shape)
        for n, (keep, weighted) in enumerate(ctx.saved):
            grad_flat[n].index_copy_(1, keep, (grad[n] + grad[n].T) @ weighted)
        return grad_flat, None


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices averaged over (masked) positions.

    Args:
        features: ``(N, C, H, W)``.
        mask: ``(N, 1, H, W)`` weights in [0, 1], or None for all positions.

    Returns:
        ``(N, C, C)``: ``sum_p m_p f_p f_p^T / sum_p m_p``.
    """
    n, c = features.shape[:2]
    flat = features.reshape(n, c, -1)
    if mask is None:
        return flat @ flat.transpose(1, 2) / flat.shape[-1]
    return _MaskedGram.apply(flat, mask.reshape(n, -1).to(flat.dtype))


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

    def forward(self, features: Mapping[str, torch.Tensor], view_ids: torch.Tensor) -> torch.Tensor:
        """``features {layer: (N, C, h, w)}`` of views ``view_ids (N,)`` → ``(N,)`` loss per view."""
        loss = 0.0
        for layer in self.layers:
            gram = gram_matrix(features[layer], getattr(self, f"mask_{layer}")[view_ids])
            target = getattr(self, f"target_{layer}").expand_as(gram)
            loss = loss + self.weights[layer] * relative_error(gram, target)
        return loss


class ContentLoss(nn.Module):
    """Feature reconstruction loss against renders of the original texture.

    Args:
        layer: the VGG layer compared.
        targets: ``(V, C, h, w)`` features of the original texture for every view ``V``.
    """

    def __init__(self, layer: str, targets: torch.Tensor) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer("targets", targets.detach().clone())

    def forward(self, features: Mapping[str, torch.Tensor], view_ids: torch.Tensor) -> torch.Tensor:
        """``features {layer: (N, C, h, w)}`` of views ``view_ids (N,)`` → ``(N,)`` loss per view."""
        return relative_error(features[self.layer], self.targets[view_ids])


def total_variation(images: list[torch.Tensor]) -> torch.Tensor:
    """Mean squared difference between neighbouring texels, over all ``(H, W, C)`` images."""
    total, count = 0.0, 0
    for image in images:
        dy = image[1:] - image[:-1]
        dx = image[:, 1:] - image[:, :-1]
        total = total + dy.square().sum() + dx.square().sum()
        count += dy.numel() + dx.numel()
    return total / max(count, 1)
