"""Shared fixtures: configs composed as the CLI would, meshes made in code, inputs from ../shared."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
import trimesh
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from PIL import Image

import mesh_style.zbuffer as zbuffer
from mesh_style.rasterizer import rasterize_pytorch3d
from mesh_style.run import render_cache
from mesh_style.shader import shade

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

_spec = importlib.util.spec_from_file_location("make_demo_assets", ROOT / "scripts" / "make_demo_assets.py")
demo_assets = importlib.util.module_from_spec(_spec)
sys.modules["make_demo_assets"] = demo_assets
_spec.loader.exec_module(demo_assets)

#: Settings that make an end-to-end run take seconds: tiny renders, few views and steps.
TINY = [
    "render.image_size=48",
    "style.size=64",
    "views.num=4",
    "views.held_out=2",
    "views.per_step=2",
    "optim.steps=3",
    "optim.texture_size=32",
    "backbone.name=vgg16_hed",
    "loss.style_layers={rgb: 1.0, relu1_1: 1.0, relu2_1: 1.0}",
    "loss.content_layer=relu2_2",
    "device=cpu",
    "export.turntable.frames=6",
    "export.turntable.size=64",
]


#: Marks of a test that needs a CUDA GPU: skipped without one (CI has none); ``pytest -m cuda`` runs them alone.
NEEDS_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
#: ``device=`` values for a test that must hold on both paths.
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]


def assert_agree(verts: torch.Tensor, faces: torch.Tensor, cameras, size: int, device: str = "cpu") -> None:
    """The CPU z-buffer agrees with PyTorch3D's rasteriser run on ``device`` (binned on a GPU): same
    face for >= 99.5 % of pixels, barycentrics within 1e-4 where the face agrees."""
    on = torch.device(device)
    # .clone(): a PyTorch3D camera's .to() moves the object itself, and the z-buffer below reads it on the CPU
    reference = rasterize_pytorch3d(verts.to(on), faces.to(on), cameras.clone().to(on), size)
    pix_to_face, bary = reference.pix_to_face.cpu(), reference.bary.cpu()
    ours = zbuffer.rasterize_zbuffer(verts, faces, cameras, size)
    same = ours.pix_to_face == pix_to_face
    assert same.float().mean() >= 0.995
    agree = same & (pix_to_face >= 0)
    assert agree.sum() > 0.05 * agree.numel()
    assert (ours.bary - bary).abs()[agree].max() < 1e-4
    assert (ours.bary[~ours.mask] == 0).all()


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test (with the reason printed) where it is absent."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{path} not available (../shared is absent)")
    return path


def render_mesh(mesh, views, render_cfg: DictConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``mesh`` with its own textures from ``views`` (``render_cfg``: the ``render`` group), on CPU:
    ``(N, 3, H, W)`` shaded renders on black and their ``(N, H, W)`` masks."""
    cache = render_cache(mesh, views, render_cfg, torch.device("cpu"))
    return shade(mesh.layout.flatten(mesh.textures), cache, torch.zeros(3)), cache.mask


def compose_config(*overrides: str) -> DictConfig:
    """Compose the config exactly as ``mesh-style`` does, from a list of overrides."""
    with initialize_config_module("mesh_style.configs", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def make_cfg() -> Callable[..., DictConfig]:
    """:func:`compose_config`, as a fixture."""
    return compose_config


def asymmetric_texture(size: int = 64) -> np.ndarray:
    """Red grows with u (left → right), green with v (bottom → top), a blue block at UV (0.75, 0.8):
    any flip or transpose of the UV convention changes the render."""
    u = (np.arange(size) + 0.5) / size
    image = np.zeros((size, size, 3), np.float32)
    image[..., 0] = u[None, :]
    image[..., 1] = u[::-1, None]  # row 0 is the top of the image, v = 1
    image[size // 8 : size // 3, size // 2 : size - size // 8, 2] = 1.0
    return (image * 255 + 0.5).astype(np.uint8)


def textured_vase(segments: int = 24, rings: int = 12, texture: np.ndarray | None = None) -> trimesh.Trimesh:
    image = Image.fromarray(asymmetric_texture() if texture is None else texture, mode="RGB")
    return demo_assets.make_vase(image, segments=segments, rings=rings)


@pytest.fixture
def vase_glb(tmp_path: Path) -> Path:
    """A small UV-mapped, textured GLB made in code."""
    path = tmp_path / "inputs" / "vase.glb"
    path.parent.mkdir()
    path.write_bytes(trimesh.Scene({"vase": textured_vase()}).export(file_type="glb"))
    return path


@pytest.fixture
def style_png(tmp_path: Path) -> Path:
    path = tmp_path / "inputs" / "style.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(demo_assets.make_style(64), mode="RGB").save(path)
    return path
