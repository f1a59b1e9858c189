"""Speed and memory figures, all measured in one run; prints a markdown table and writes JSON.

(a) view-cache build seconds per view (rasterise + texel taps + shading): our CPU z-buffer vs
    PyTorch3D's rasteriser, on the demo vase tessellated to ~10k, ~100k and ~1M faces
    (PyTorch3D is extrapolated linearly in faces above ``--pytorch3d-max-faces``, and says so);
(b) optimisation step time divided by VGG forward+backward alone on a batch of the same size
    (median of per-pair ratios, each step timed next to one VGG pass);
(c) our step time against a naive loop that re-rasterises and shades with PyTorch3D's
    ``MeshRenderer`` every step (same views, size, VGG and losses);
    (b) and (c) for each backbone precision: float32, and bfloat16 where the CPU has it natively;
(d) peak resident memory and wall time of a ``preset=fast`` run of the command line.

Usage: ``python scripts/benchmark.py [--out benchmark.json]``; ``--quick`` runs tiny sizes (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import trimesh
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from PIL import Image
from pytorch3d.renderer import HardPhongShader, MeshRasterizer, MeshRenderer, PointLights, RasterizationSettings, TexturesUV
from pytorch3d.structures import Meshes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from make_demo_assets import make_checker_texture, make_vase  # noqa: E402

from mesh_style.backbone import PRECISIONS, load_backbone, parse_layer  # noqa: E402
from mesh_style.layout import RESULT_DIR  # noqa: E402
from mesh_style.mesh import Mesh, load_mesh  # noqa: E402
from mesh_style.allocator import reuse_freed_memory  # noqa: E402
from mesh_style.optimize import TextureOptimizer, build_objective  # noqa: E402
from mesh_style.textures import texel_footprint  # noqa: E402
from mesh_style.style import Paintings  # noqa: E402
from mesh_style.rasterizer import rasterize_pytorch3d  # noqa: E402
from mesh_style.run import render_cache  # noqa: E402
from mesh_style.seams import seam_taps  # noqa: E402
from mesh_style.shader import build_view_cache  # noqa: E402
from mesh_style.views import sample_views  # noqa: E402
from mesh_style.zbuffer import rasterize_zbuffer  # noqa: E402

#: (segments, rings) of the vase for each target face count: faces = 2·segments·(rings−1) + segments.
TESSELLATIONS = {"10k": (100, 51), "100k": (320, 157), "1M": (1000, 501)}
QUICK_TESSELLATIONS = {"1k": (32, 16), "4k": (64, 33)}
#: Backbone precisions measured: bfloat16 only where the CPU computes it natively (else it is emulated).
MEASURED_PRECISIONS = [name for name in PRECISIONS if name != "bfloat16" or torch.ops.mkldnn._is_mkldnn_bf16_supported()]


def config(*overrides: str) -> DictConfig:
    with initialize_config_module("mesh_style.configs", version_base="1.3"):
        return compose("config", overrides=["device=cpu", "backbone.name=vgg16_hed", *overrides])


def make_mesh(folder: Path, segments: int, rings: int) -> Mesh:
    """The demo vase at a given tessellation, written as GLB and read back by the real loader."""
    path = folder / f"vase_{segments}x{rings}.glb"
    vase = make_vase(Image.fromarray(make_checker_texture(), mode="RGB"), segments=segments, rings=rings)
    path.write_bytes(trimesh.Scene({"vase": vase}).export(file_type="glb"))
    return load_mesh(config(f"mesh.path={path}").mesh)


def seconds(function: Callable[[], object], repeat: int = 1) -> float:
    """Median wall time of ``repeat`` calls."""
    return statistics.median(_timed(function) for _ in range(repeat))


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def paired_seconds(first: Callable[[], object], second: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """Two functions timed alternately, so that machine noise hits both alike: the median time of
    each and the median of the per-pair ratios ``first / second``."""
    samples = [(_timed(first), _timed(second)) for _ in range(repeat)]
    return (
        statistics.median(a for a, _ in samples),
        statistics.median(b for _, b in samples),
        statistics.median(a / b for a, b in samples),
    )


def cache_build(mesh: Mesh, size: int, views: int, backend: Callable) -> float:
    """Seconds per view to rasterise with ``backend`` and build the view cache."""
    bank, _ = sample_views(config(f"views.num={views}").views, seed=0)
    cameras = bank.cameras()
    render_cfg = config(f"render.image_size={size}").render

    def build() -> None:
        fragments = backend(mesh.verts, mesh.faces, cameras, size)
        build_view_cache(fragments, mesh, cameras.get_camera_center(), render_cfg)

    return seconds(build) / views


def bench_cache(meshes: dict[str, Mesh], size: int, p3d_max_faces: int) -> list[dict]:
    rows, reference = [], None  # reference: (faces, seconds) of the largest measured PyTorch3D run
    for label, mesh in meshes.items():
        faces = int(mesh.faces.shape[0])
        ours = cache_build(mesh, size, views=2, backend=rasterize_zbuffer)
        if faces <= p3d_max_faces:
            p3d, extrapolated = cache_build(mesh, size, views=1, backend=rasterize_pytorch3d), False
            reference = (faces, p3d)
        else:
            p3d, extrapolated = reference[1] * faces / reference[0], True
        rows.append({"mesh": label, "faces": faces, "ours_s": ours, "pytorch3d_s": p3d, "pytorch3d_extrapolated": extrapolated, "speedup": p3d / ours})
        print(f"  cache {label}: ours {ours:.3f} s/view, PyTorch3D {p3d:.2f} s/view{' (extrapolated)' if extrapolated else ''}", flush=True)
    return rows


def step_setup(mesh: Mesh, size: int, per_step: int, dtype: torch.dtype, *overrides: str):
    cfg = config(f"render.image_size={size}", f"views.num={max(8, per_step)}", f"views.per_step={per_step}", *overrides)
    bank, _ = sample_views(cfg.views, seed=0)
    cache = render_cache(mesh, bank, cfg.render, torch.device("cpu"))
    layers = sorted({*cfg.loss.style_layers, cfg.loss.content_layer})
    extractor = load_backbone("vgg16_hed", layers)[0].to(dtype)
    style = Paintings([torch.rand(1, 3, cfg.style.size, cfg.style.size)], [1.0])
    background = torch.ones(3)
    # The CLI's objective, the seam loss along the UV seams included.
    objective = build_objective(extractor, style, mesh.layout.flatten(mesh.textures), cache, cfg.loss, background, seam_taps(mesh))
    return cfg, bank, cache, extractor, objective


def our_step_seconds(mesh: Mesh, size: int, per_step: int, pairs: int, dtype: torch.dtype, *overrides: str) -> tuple[float, float, float]:
    """Seconds per optimisation step (the command line's objective, with config ``overrides``), seconds
    of VGG forward+backward alone on a batch of the same size, and the median ratio of the two, from
    ``pairs`` steps each timed next to one VGG pass."""
    cfg, _, cache, extractor, objective = step_setup(mesh, size, per_step, dtype, *overrides)
    footprint = texel_footprint(cache.index, cache.weight, cache.footprint, mesh.layout)
    optimizer = TextureOptimizer(mesh.textures, objective, footprint, cfg.loss, cfg.optim)
    view_ids = torch.arange(per_step)
    images = torch.rand(per_step, 3, size, size, requires_grad=True)
    deepest = max((layer for layer in extractor.layers if layer != "rgb"), key=parse_layer)

    def step() -> None:
        optimizer.step(cache, view_ids)

    def vgg() -> None:
        # The network's own passes only: forward to the deepest layer the losses use, backward to
        # the image, no loss arithmetic on the features.
        extractor(images)[deepest].sum().backward()

    step(), vgg()  # warm-up
    return paired_seconds(step, vgg, pairs)


def naive_step_seconds(mesh: Mesh, size: int, per_step: int, steps: int, dtype: torch.dtype) -> float:
    """One step the naive way: PyTorch3D's MeshRenderer re-rasterises and shades every step."""
    cfg, bank, _, _, objective = step_setup(mesh, size, per_step, dtype)
    texture = mesh.textures[0].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([texture], lr=0.05)
    ids = torch.arange(per_step)
    cameras = bank.cameras()[ids]
    settings = RasterizationSettings(image_size=size, faces_per_pixel=1, bin_size=0)
    renderer = MeshRenderer(
        MeshRasterizer(cameras=cameras, raster_settings=settings),
        HardPhongShader(cameras=cameras, lights=PointLights(location=cameras.get_camera_center())),
    )

    def step() -> None:
        meshes = Meshes(
            verts=[mesh.verts] * per_step,
            faces=[mesh.faces] * per_step,
            textures=TexturesUV(maps=texture[None].expand(per_step, -1, -1, -1), faces_uvs=[mesh.faces] * per_step, verts_uvs=[mesh.verts_uvs] * per_step),
        )
        images = renderer(meshes)[..., :3].permute(0, 3, 1, 2)
        losses = objective.score(images, ids)
        loss = losses["style"].mean() + losses["content"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return seconds(step, repeat=steps)


def _peak_rss_kib(pid: int) -> int:
    """High-water resident memory of a live process (Linux ``VmHWM``), 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def bench_run(mesh_path: Path, style_path: Path, extra: list[str]) -> dict:
    """Wall time and peak resident memory of ``mesh-style ... preset=fast`` in a child process.

    The peak is the child's own ``VmHWM``, polled while it runs: ``getrusage`` would report at least
    this (large) process's memory, which Linux carries over into a child's maximum through fork+exec.
    """
    with tempfile.TemporaryDirectory() as out, tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "mesh_style", f"mesh.path={mesh_path}", f"style.path={style_path}", "preset=fast",
             "backbone.name=vgg16_hed", f"hydra.run.dir={out}", *extra],
            stdout=log, stderr=log,
        )
        peak_kib = 0
        while child.poll() is None:
            peak_kib = max(peak_kib, _peak_rss_kib(child.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"mesh-style failed:\n{log.read().decode(errors='replace')}")
        metrics = json.loads((Path(out) / RESULT_DIR / "metrics.json").read_text())
    return {"mesh": mesh_path.name, "precision": metrics["backbone_dtype"], "wall_s": wall, "peak_rss_gb": peak_kib / 1024**2, "phases_s": metrics["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmark.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs, not the targets")
    parser.add_argument("--pytorch3d-max-faces", type=int, default=150_000, help="extrapolate PyTorch3D above this")
    args = parser.parse_args()
    quick = args.quick
    cache_size, step_size, naive_size, pairs = (64, 32, 32, 2) if quick else (512, 256, 256, 30)
    reuse_freed_memory()  # as the command line does

    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.platform()}"
    results: dict = {"machine": machine}
    with tempfile.TemporaryDirectory() as folder:
        meshes = {label: make_mesh(Path(folder), *shape) for label, shape in (QUICK_TESSELLATIONS if quick else TESSELLATIONS).items()}
        print(f"(a) cache build at {cache_size}²", flush=True)
        results["cache"] = bench_cache(meshes, cache_size, args.pytorch3d_max_faces)

        small, large = list(meshes)[0], list(meshes)[1]
        results["step"], results["naive"] = [], []
        for precision in MEASURED_PRECISIONS:
            dtype = PRECISIONS[precision]
            # With the long-range term (the default) and without it: what the term costs, in one run.
            for long_range, overrides in ((True, ()), (False, ("loss.long_range_weight=0",))):
                print(f"(b) {precision} step vs VGG alone at {step_size}², 4 views{'' if long_range else ', long-range term off'}", flush=True)
                step, vgg, ratio = our_step_seconds(meshes[small], step_size, 4, pairs, dtype, *overrides)
                results["step"].append({"precision": precision, "long_range": long_range, "size": step_size, "views": 4, "pairs": pairs,
                                        "step_s": step, "vgg_fwd_bwd_s": vgg, "ratio": ratio})

            print(f"(c) {precision} ours vs naive MeshRenderer loop at {naive_size}², 4 views", flush=True)
            for label in (small, large):
                ours, _, _ = our_step_seconds(meshes[label], naive_size, 4, max(2, pairs // 3), dtype)
                naive = naive_step_seconds(meshes[label], naive_size, 4, 1, dtype)
                results["naive"].append({"precision": precision, "mesh": label, "faces": int(meshes[label].faces.shape[0]), "ours_s": ours, "naive_s": naive, "speedup": naive / ours})

    print("(d) preset=fast end to end", flush=True)
    duck = ROOT.parent / "shared" / "data" / "meshes" / "Duck.glb"
    mesh_path = duck if duck.is_file() and not quick else ROOT / "assets" / "demo_vase.glb"
    tiny = ["optim.steps=2", "render.image_size=32", "views.num=4"] if quick else []
    results["run"] = bench_run(mesh_path, ROOT / "assets" / "demo_style.png", tiny)

    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


def table(results: dict) -> str:
    lines = [f"Machine: {results['machine']}", "", "| measure | ours | reference | ratio |", "| --- | --- | --- | --- |"]
    for row in results["cache"]:
        note = " (extrapolated)" if row["pytorch3d_extrapolated"] else ""
        lines.append(f"| cache build / view, {row['faces']:,} faces | {row['ours_s']:.3f} s | PyTorch3D {row['pytorch3d_s']:.2f} s{note} | {row['speedup']:.0f}× faster |")
    for s in results["step"]:
        term = "" if s["long_range"] else ", long-range term off"
        lines.append(f"| {s['precision']} step ({s['views']} views, {s['size']}²{term}) vs VGG fwd+bwd alone | {s['step_s']:.3f} s | {s['vgg_fwd_bwd_s']:.3f} s | {s['ratio']:.2f}× (median of {s['pairs']} pairs) |")
    for row in results["naive"]:
        lines.append(f"| {row['precision']} step vs naive MeshRenderer loop, {row['faces']:,} faces | {row['ours_s']:.3f} s | {row['naive_s']:.2f} s | {row['speedup']:.0f}× faster |")
    r = results["run"]
    lines.append(f"| `preset=fast` on {r['mesh']} ({r['precision']}): wall time, peak RSS | {r['wall_s']:.0f} s, {r['peak_rss_gb']:.2f} GB | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
