"""Style losses: how far the features of the mesh's pixels in renders are from a painting's.

One family, one contract (``loss.style_kind``). At each style layer a small module holds the
paintings' targets as buffers, hands out a *tap* that collects what it needs from the activation on
its way down the VGG trunk (masked to the mesh), and turns the tap into a loss per view:

* ``gram`` — Gram matrices (Gatys et al. 2016), relative squared error;
* ``w2`` — mean and covariance: Wasserstein-2 distance between Gaussians (as crowsonkb's
  style-transfer-pytorch), which unlike the Gram separates a colour shift from a change of contrast;
* ``swd`` — sliced Wasserstein distance over random projections redrawn at every call (Heitz et al.
  2021): the whole distribution of features along each direction, not only its moments;
* ``nnfm`` — nearest-neighbour feature matching (ARF, Zhang et al. 2022): every render feature is
  pulled towards its cosine-nearest painting feature, which copies brush strokes rather than
  statistics of them.

Several paintings blend by weight: the loss is the weighted sum of the distances to each painting.
Every kind's distance is relative (``gram``, ``w2``, ``swd``: divided by the painting's own feature
energy; ``nnfm``: a cosine distance), so loss weights mean the same for every layer and backbone.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mesh_style.backbone import feature_size
from mesh_style.losses import widened

#: Painting features kept per layer by ``swd`` and ``nnfm`` (a fixed random subset beyond it):
#: bounds the cost of sorting and of the nearest-neighbour search at shallow layers.
MAX_PAINTING_FEATURES = {"swd": 4096, "nnfm": 4096}
#: ``swd`` draws max(channels, this) random directions per call.
MIN_PROJECTIONS = 32
#: ``nnfm`` searches nearest neighbours for this many render features at a time (bounded memory).
NNFM_CHUNK = 2048


def feature_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, H, W)`` bool image mask → ``(N, 1, h, w)`` fraction of each feature cell on the mesh."""
    return F.adaptive_avg_pool2d(mask.unsqueeze(1).float(), size)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` → ``(N, H·W, C)``; a view when ``x`` is channels-last, as in the trunk."""
    return x.permute(0, 2, 3, 1).reshape(len(x), -1, x.shape[1])


class _MomentTap(torch.autograd.Function):
    """Identity on ``x (N, C, H, W)`` that also returns the weighted second moment
    ``S = sum_p w_p x_p x_p^T / sum_p w_p`` ``(N, C, C)`` and mean ``(N, C)`` over the positions
    with ``w_p > 0`` (``weights (N, H·W)``), both :func:`widened`.

    The costliest part of a step after VGG itself, hence written by hand. Background positions
    (about half of a render) are skipped. Placed inside the VGG trunk (see :class:`MomentTap`), its
    backward receives the gradient flowing down the trunk and adds the moments' share into it in
    place, at the mesh positions only: ``dx[keep] += (w x)[keep] (dS + dS^T) / sum w + w dmean / sum w``.
    Computed on the trunk's output instead, autograd would fill a dense gradient and then add the two.
    The identity output must therefore feed only ops with their own gradient buffers (convolutions,
    pooling, indexing, losses), not an addition that shares its gradient with another input.

    Products run in ``x``'s dtype (bfloat16 uses the CPU's matrix units and accumulates in float32);
    only the small results are widened.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seconds, means, saved = [], [], []
        for features, w in zip(_rows(x), weights):  # a loop over the few views of a batch, not over pixels
            keep = (w > 0).nonzero().squeeze(1)
            kept = features.index_select(0, keep)
            share = (w.index_select(0, keep) / w.sum().clamp_min(1e-8)).unsqueeze(1).to(kept.dtype)
            weighted = kept * share
            seconds.append(widened(weighted.T @ kept))
            means.append(widened(weighted.sum(0)))
            saved.append((keep, weighted, share))
        ctx.saved = saved
        return x.view_as(x), torch.stack(seconds), torch.stack(means)

    @staticmethod
    def backward(ctx, grad_x: torch.Tensor, grad_second: torch.Tensor, grad_mean: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad_x.contiguous(memory_format=torch.channels_last)  # the trunk's gradient, ours to add into
        rows = grad.permute(0, 2, 3, 1).view(len(grad), -1, grad.shape[1])
        for n, (keep, weighted, share) in enumerate(ctx.saved):
            g = weighted @ (grad_second[n] + grad_second[n].T).to(weighted.dtype) + share * grad_mean[n].to(share.dtype)
            rows[n].index_add_(0, keep, g)
        return grad, None


class MomentTap:
    """Passes an activation through unchanged and keeps its masked moments: ``second (N, C, C)``
    (the Gram matrix) and ``mean (N, C)`` (see :class:`_MomentTap`).

    Args:
        mask: ``(N, 1, h, w)`` weights in [0, 1] of the positions, at the activation's size.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask
        self.second: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        features, self.second, self.mean = _MomentTap.apply(features, self.mask.reshape(len(self.mask), -1))
        return features


class FeatureTap:
    """Passes an activation through unchanged and keeps, per view, the features of the positions on
    the mesh ``(P_n, C)`` (:func:`widened`) and their mask weights ``(P_n,)``, in ``kept``.

    Args:
        mask: ``(N, 1, h, w)`` weights in [0, 1] of the positions, at the activation's size.
    """

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        self.kept = []
        for f, w in zip(_rows(features), self.mask.reshape(len(self.mask), -1)):
            keep = (w > 0).nonzero().squeeze(1)
            self.kept.append((widened(f.index_select(0, keep)), w.index_select(0, keep).float()))
        return features


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices averaged over (masked) positions.

    Args:
        features: ``(N, C, H, W)``.
        mask: ``(N, 1, H, W)`` weights in [0, 1], or None for all positions.

    Returns:
        ``(N, C, C)``, :func:`widened`: ``sum_p m_p f_p f_p^T / sum_p m_p``.
    """
    tap = MomentTap(features.new_ones(len(features), 1, *features.shape[2:], dtype=torch.float32) if mask is None else mask)
    tap(features)
    return tap.second


def painting_rows(features: torch.Tensor, limit: int, seed: int = 0) -> torch.Tensor:
    """``(1, C, H, W)`` painting features → ``(Q, C)`` rows, :func:`widened`; at most ``limit``,
    a fixed random subset beyond it."""
    rows = widened(_rows(features)[0])
    if len(rows) > limit:
        rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:limit].to(rows.device)]
    return rows.contiguous()


class LayerStyle(nn.Module):
    """The contract of a style loss at one layer.

    Args:
        paintings: each painting's features at this layer, ``(1, C, H, W)``.
        weights: ``(P,)`` blend weights of the paintings, summing to 1.

    Subclasses set :attr:`tap_type` and implement :meth:`distances`.
    """

    tap_type: type = MomentTap

    def __init__(self, paintings: Sequence[torch.Tensor], weights: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("weights", weights.detach().clone().float())

    def tap(self, mask: torch.Tensor) -> MomentTap | FeatureTap:
        """A tap for ``(N, 1, h, w)`` mask weights at this layer's resolution."""
        return self.tap_type(mask)

    def distances(self, tap: MomentTap | FeatureTap) -> torch.Tensor:
        """``(N, P)``: each view's distance to each painting."""
        raise NotImplementedError

    def forward(self, tap: MomentTap | FeatureTap) -> torch.Tensor:
        """``(N,)`` loss per view: the paintings' distances blended by weight."""
        return self.distances(tap) @ self.weights


class GramStyle(LayerStyle):
    """``‖G − G_s‖² / ‖G_s‖²`` with ``G`` the masked Gram matrix (raw second moment)."""

    def __init__(self, paintings: Sequence[torch.Tensor], weights: torch.Tensor) -> None:
        super().__init__(paintings, weights)
        self.register_buffer("targets", torch.stack([gram_matrix(f)[0] for f in paintings]))  # (P, C, C)

    def distances(self, tap: MomentTap) -> torch.Tensor:
        error = (tap.second[:, None] - self.targets[None]).square().sum((2, 3))
        return error / self.targets.square().sum((1, 2)).clamp_min(1e-12)


class GaussianStyle(LayerStyle):
    """Wasserstein-2 distance between Gaussians fitted to the features,
    ``‖μ − μ_s‖² + tr(Σ + Σ_s − 2 (Σ_s^½ Σ Σ_s^½)^½)``, divided by the painting's ``E‖f‖²``.

    The trace of the matrix square root is the sum of the square roots of the eigenvalues of the
    symmetric ``Σ_s^½ Σ Σ_s^½``. A render has fewer positions than channels at deep layers: a small
    floor is added to the diagonal (it keeps the eigensolver converging) and eigenvalues below it
    are clamped, with no gradient.
    """

    #: Floor of the eigenvalues, relative to the painting's mean feature variance.
    FLOOR = 1e-6

    def __init__(self, paintings: Sequence[torch.Tensor], weights: torch.Tensor) -> None:
        super().__init__(paintings, weights)
        means, covs, roots = [], [], []
        for f in paintings:
            rows = painting_rows(f, limit=f[0, 0].numel())
            mean = rows.mean(0)
            cov = (rows - mean).T @ (rows - mean) / len(rows)
            values, vectors = torch.linalg.eigh(cov.double())
            means.append(mean)
            covs.append(cov)
            roots.append((vectors * values.clamp_min(0).sqrt()) @ vectors.T)
        self.register_buffer("means", torch.stack(means))  # (P, C)
        self.register_buffer("covs", torch.stack(covs))  # (P, C, C)
        self.register_buffer("roots", torch.stack(roots).to(self.covs.dtype))  # (P, C, C): Σ_s^½
        traces = self.covs.diagonal(dim1=1, dim2=2).sum(1)
        self.register_buffer("energy", (self.means.square().sum(1) + traces).clamp_min(1e-12))  # E‖f‖²
        self.register_buffer("floors", self.FLOOR * traces / self.covs.shape[1])

    def distances(self, tap: MomentTap) -> torch.Tensor:
        mean, cov = tap.mean, tap.second - tap.mean[:, :, None] * tap.mean[:, None, :]
        out = []
        for p in range(len(self.means)):
            middle = self.roots[p] @ cov @ self.roots[p]
            middle = (middle + middle.mT) / 2 + self.floors[p] * torch.eye(len(middle[0]), device=middle.device)
            try:
                values = torch.linalg.eigvalsh(middle)
            except torch.linalg.LinAlgError:  # float32 fails to converge on some rank-deficient covariances
                values = torch.linalg.eigvalsh(middle.double()).to(middle.dtype)
            cross = values.clamp_min(self.floors[p]).sqrt().sum(1)
            trace = cov.diagonal(dim1=1, dim2=2).sum(1) + self.covs[p].diagonal().sum() - 2 * cross
            out.append(((mean - self.means[p]).square().sum(1) + trace) / self.energy[p])
        return torch.stack(out, 1)


def resampled(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """``(K, Q)`` rows sorted ascending → ``(K, count)``: each row's quantiles at the levels
    ``(i + 0.5) / count``, linearly interpolated (sample ``j`` sits at level ``(j + 0.5) / Q``)."""
    q = sorted_values.shape[1]
    levels = (torch.arange(count, device=sorted_values.device, dtype=sorted_values.dtype) + 0.5) / count
    position = (levels * q - 0.5).clamp(0, q - 1)
    low = position.floor().long()
    high = (low + 1).clamp(max=q - 1)
    frac = position - low
    return sorted_values[:, low] * (1 - frac) + sorted_values[:, high] * frac


class SlicedStyle(LayerStyle):
    """Sliced Wasserstein distance: the features of the positions at least half on the mesh and the
    painting's, projected on random unit directions redrawn at every call; each projection's sorted
    values compared with the painting's quantiles at the same levels, divided by the painting's mean
    squared projection. Uses the global torch RNG, which ``seed`` seeds.
    """

    tap_type = FeatureTap

    def __init__(self, paintings: Sequence[torch.Tensor], weights: torch.Tensor) -> None:
        super().__init__(paintings, weights)
        for p, f in enumerate(paintings):
            self.register_buffer(f"painting_{p}", painting_rows(f, MAX_PAINTING_FEATURES["swd"], seed=p))
        self.count = len(paintings)

    def distances(self, tap: FeatureTap) -> torch.Tensor:
        channels = self.painting_0.shape[1]
        directions = F.normalize(torch.randn(channels, max(channels, MIN_PROJECTIONS), device=self.weights.device), dim=0).T
        # (K, Q) rows: sorting along the last, contiguous dimension is several times faster on CPU.
        targets = [(directions @ getattr(self, f"painting_{p}").T).sort(1).values for p in range(self.count)]
        out = []
        for features, w in tap.kept:
            values = (directions @ features[w >= 0.5].T).sort(1).values  # (K, P_n)
            out.append(torch.stack([
                (values - resampled(t, values.shape[1])).square().mean() / t.square().mean().clamp_min(1e-12)
                if values.shape[1] else values.new_zeros(())  # a view that shows no mesh at this layer
                for t in targets
            ]))
        return torch.stack(out)


class NearestStyle(LayerStyle):
    """Nearest-neighbour feature matching: the mask-weighted mean over render features of
    ``1 − cos(f, nearest painting feature)``, the nearest one found by cosine similarity."""

    tap_type = FeatureTap

    def __init__(self, paintings: Sequence[torch.Tensor], weights: torch.Tensor) -> None:
        super().__init__(paintings, weights)
        for p, f in enumerate(paintings):
            self.register_buffer(f"painting_{p}", F.normalize(painting_rows(f, MAX_PAINTING_FEATURES["nnfm"], seed=p), dim=1))
        self.count = len(paintings)

    def distances(self, tap: FeatureTap) -> torch.Tensor:
        out = []
        for features, w in tap.kept:
            unit = F.normalize(features, dim=1)
            per_painting = []
            for p in range(self.count):
                painting = getattr(self, f"painting_{p}")
                with torch.no_grad():  # which neighbour is a choice, not a function to differentiate
                    nearest = torch.cat([(chunk @ painting.T).argmax(1) for chunk in unit.split(NNFM_CHUNK)])
                cos = (unit * painting[nearest]).sum(1)
                per_painting.append((w * (1 - cos)).sum() / w.sum().clamp_min(1e-8))
            out.append(torch.stack(per_painting))
        return torch.stack(out)


STYLE_KINDS: dict[str, type[LayerStyle]] = {"gram": GramStyle, "w2": GaussianStyle, "swd": SlicedStyle, "nnfm": NearestStyle}


class StyleLoss(nn.Module):
    """A style loss of one kind over several layers, restricted to the mesh's pixels.

    Args:
        kind: one of :data:`STYLE_KINDS`.
        paintings: per painting, ``{layer: (1, C, H, W)}`` its features.
        painting_weights: blend weights, one per painting (normalised to sum to 1).
        layer_weights: ``{layer: weight}``; the loss is the weighted mean over layers.
        masks: ``(V, H, W)`` bool mesh masks of every view; pooled once to each layer's resolution.
    """

    def __init__(
        self,
        kind: str,
        paintings: Sequence[Mapping[str, torch.Tensor]],
        painting_weights: Sequence[float],
        layer_weights: Mapping[str, float],
        masks: torch.Tensor,
    ) -> None:
        super().__init__()
        weights = torch.tensor(painting_weights, dtype=torch.float32, device=masks.device)
        total = sum(layer_weights.values())
        self.layer_weights = {layer: w / total for layer, w in layer_weights.items()}
        self.layers = nn.ModuleDict({
            layer: STYLE_KINDS[kind]([p[layer] for p in paintings], weights / weights.sum()) for layer in layer_weights
        })
        for layer in layer_weights:
            size = feature_size(layer, masks.shape[-1])
            self.register_buffer(f"mask_{layer}", feature_mask(masks, (size, size)))

    def taps(self, view_ids: torch.Tensor) -> dict[str, MomentTap | FeatureTap]:
        """A tap per style layer, masked for views ``view_ids (N,)``."""
        return {layer: module.tap(getattr(self, f"mask_{layer}")[view_ids]) for layer, module in self.layers.items()}

    def forward(self, taps: Mapping[str, MomentTap | FeatureTap]) -> torch.Tensor:
        """Taps filled by one pass of N views through the trunk → ``(N,)`` loss per view."""
        return sum(self.layer_weights[layer] * module(taps[layer]) for layer, module in self.layers.items())


#: Shifts, in feature cells, of :class:`LongRangeLoss` per layer: a cell of relu3_1 is 4 rendered
#: pixels, of relu4_1 8, so the pairs lie 8 to 32 pixels apart, the length of a brush stroke.
LONG_RANGE_SHIFTS: dict[str, tuple[int, ...]] = {"relu3_1": (2, 4, 8), "relu4_1": (2, 4)}


class _ShiftedCorrelations(torch.autograd.Function):
    """``(N, C, H, W)`` features, ``(N, 1, H, W)`` weights → ``(T, N, C, C)``: ``Σ_p w_p w_q f_p f_qᵀ`` over
    the pairs of positions ``q = p + shift`` along ``axis``, for each ``(shift, axis)`` of ``terms``.

    The weighted features ``y = w f`` are laid out once as rows ``(N, H·(W + pad), C)``, each image
    row followed by ``pad`` zero rows (the largest shift along the rows), so that the pairs of every
    term are pairs of rows a fixed offset apart: ``s`` along the rows (a pair that would cross a
    row's end meets the zeros), ``s·(W + pad)`` down the columns. Each term is one batched product
    of two views of the same buffer, and the backward adds every term's share into one gradient
    buffer in place: sliced term by term, autograd spent as long copying gradients as multiplying.
    Products run in the features' dtype (bfloat16 on the CPU's matrix units, accumulated in
    float32); only the small results are :func:`widened`.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, weights: torch.Tensor, terms: Sequence[tuple[int, int]]) -> torch.Tensor:
        n, c, h, w = features.shape
        stride = w + max([shift for shift, axis in terms if axis == 3], default=0)
        y = features.new_zeros(n, h, stride, c)
        y[:, :, :w] = (features * weights.to(features.dtype)).permute(0, 2, 3, 1)
        y = y.view(n, h * stride, c)
        offsets = [min(shift if axis == 3 else shift * stride, y.shape[1]) for shift, axis in terms]
        ctx.save_for_backward(y, weights)
        ctx.offsets, ctx.shape = offsets, (n, c, h, w, stride)
        return torch.stack([widened(y[:, : y.shape[1] - k].transpose(1, 2) @ y[:, k:]) for k in offsets])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        y, weights = ctx.saved_tensors
        n, c, h, w, stride = ctx.shape
        dy = torch.zeros_like(y)
        for k, g in zip(ctx.offsets, grad.to(y.dtype)):  # C = Aᵀ B: dA = B dCᵀ, dB = A dC
            rows = y.shape[1] - k
            dy[:, :rows].baddbmm_(y[:, k:], g.transpose(1, 2))
            dy[:, k:].baddbmm_(y[:, :rows], g)
        dy = dy.view(n, h, stride, c)[:, :, :w].permute(0, 3, 1, 2)
        return dy * weights.to(dy.dtype), None, None


def shifted_correlations(features: torch.Tensor, weights: torch.Tensor, terms: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``Σ_p w_p w_q f_p f_qᵀ / Σ_p w_p w_q`` over the pairs of positions ``q = p + shift`` along ``axis``,
    for each ``(shift, axis)`` of ``terms``.

    Args:
        features: ``(N, C, H, W)``.
        weights: ``(N, 1, H, W)`` in [0, 1] (the mesh's share of each cell).
        terms: ``(shift, axis)`` pairs: cells between the two positions of a pair, and 2 (down the
            columns) or 3 (along the rows).

    Returns:
        ``(T, N, C, C)``, :func:`widened` (zero where no pair lies on the mesh).
    """
    weights = widened(weights)
    return _ShiftedCorrelations.apply(features, weights, list(terms)) / pair_weights(weights, terms)[:, :, None, None]


def pair_weights(weights: torch.Tensor, terms: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``(N, 1, H, W)`` weights → ``(T, N)``: ``Σ_p w_p w_q`` over each term's pairs (at least 1e-8)."""
    sums = []
    for shift, axis in terms:
        size = weights.shape[axis]
        pairs = weights.narrow(axis, 0, max(size - shift, 0)) * weights.narrow(axis, min(shift, size), max(size - shift, 0))
        sums.append(pairs.sum((1, 2, 3)))
    return torch.stack(sums).clamp_min(1e-8)


def shifted_correlation(features: torch.Tensor, weights: torch.Tensor, shift: int, axis: int) -> torch.Tensor:
    """:func:`shifted_correlations` of one term: ``(N, C, C)``."""
    return shifted_correlations(features, weights, [(shift, axis)])[0]


def mesh_boxes(weights: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """``(V, 1, H, W)`` weights → per view ``(row start, row end, column start, column end)`` of the
    smallest box holding every nonzero weight (an empty box for a view without any)."""
    boxes = []
    for view in weights[:, 0] > 0:
        rows, cols = view.any(1).nonzero()[:, 0].tolist(), view.any(0).nonzero()[:, 0].tolist()
        boxes.append((rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) if rows else (0, 0, 0, 0))
    return boxes


class LongRangeLoss(nn.Module):
    """Long-range consistency (Berger & Memisevic 2017): how far the correlations of features a few
    cells apart (:data:`LONG_RANGE_SHIFTS`, along rows and along columns) are from the painting's,
    ``‖C − C_s‖² / ‖C_s‖²`` averaged over the shifts, directions and layers.

    A Gram matrix sees the features of one position at a time, so it scores a crackle of short
    marks and long strokes made of the same marks alike; the correlation of a position with one
    ``d`` cells away tells them apart, and pulls the marks into the painting's longer strokes.

    Args:
        paintings: per painting, ``{layer: (1, C, H, W)}`` its features (at least the layers of
            :data:`LONG_RANGE_SHIFTS`).
        painting_weights: blend weights, one per painting (normalised to sum to 1).
        masks: ``(V, H, W)`` bool mesh masks of every view; pooled once to each layer's resolution.
    """

    def __init__(self, paintings: Sequence[Mapping[str, torch.Tensor]], painting_weights: Sequence[float], masks: torch.Tensor) -> None:
        super().__init__()
        weights = torch.tensor(painting_weights, dtype=torch.float32, device=masks.device)
        self.register_buffer("weights", weights / weights.sum())
        self.boxes: dict[str, list[tuple[int, int, int, int]]] = {}
        self.terms = [(layer, shift, axis) for layer, shifts in LONG_RANGE_SHIFTS.items() for shift in shifts for axis in (2, 3)]
        for layer, shift, axis in self.terms:
            targets = torch.stack([shifted_correlation(p[layer], torch.ones_like(p[layer][:, :1]), shift, axis)[0] for p in paintings])
            self.register_buffer(f"target_{layer}_{shift}_{axis}", targets)  # (P, C, C)
            self.register_buffer(f"norm_{layer}_{shift}_{axis}", targets.square().sum((1, 2)).clamp_min(1e-12))  # (P,)
        for layer in LONG_RANGE_SHIFTS:
            size = feature_size(layer, masks.shape[-1])
            mask = feature_mask(masks, (size, size))
            self.register_buffer(f"mask_{layer}", mask)
            # Each view's pair weights depend on its mask alone: once per run, not per step.
            self.register_buffer(f"pairs_{layer}", pair_weights(mask, self._layer_terms(layer)).T)  # (V, T)
            self.boxes[layer] = mesh_boxes(mask)

    def forward(self, features: Mapping[str, torch.Tensor], view_ids: torch.Tensor) -> torch.Tensor:
        """``{layer: (N, C, h, w)}`` features of views ``view_ids (N,)`` → ``(N,)`` loss per view."""
        total = 0.0
        ids = view_ids.tolist()
        for layer in LONG_RANGE_SHIFTS:
            terms = self._layer_terms(layer)
            # Pairs off the mesh weigh 0: only the box around the views' meshes is multiplied.
            boxes = [box for box in (self.boxes[layer][i] for i in ids) if box[1] > box[0]] or [(0, 0, 0, 0)]
            rows = slice(min(b[0] for b in boxes), max(b[1] for b in boxes))
            cols = slice(min(b[2] for b in boxes), max(b[3] for b in boxes))
            mask = getattr(self, f"mask_{layer}")[view_ids][:, :, rows, cols]
            sums = _ShiftedCorrelations.apply(features[layer][:, :, rows, cols], mask, terms)
            correlations = sums / getattr(self, f"pairs_{layer}")[view_ids].T[:, :, None, None]
            for ours, (shift, axis) in zip(correlations, terms):
                targets = getattr(self, f"target_{layer}_{shift}_{axis}")
                error = (ours[:, None] - targets[None]).square().sum((2, 3)) / getattr(self, f"norm_{layer}_{shift}_{axis}")
                total = total + error @ self.weights
        return total / len(self.terms)

    def _layer_terms(self, layer: str) -> list[tuple[int, int]]:
        return [(shift, axis) for name, shift, axis in self.terms if name == layer]

