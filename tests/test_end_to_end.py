"""Whole runs through run(cfg): a mesh made in code, real meshes from ../shared, real weights."""

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from omegaconf import OmegaConf
from PIL import Image

import mesh_style
import mesh_style.optimize
from conftest import TINY, compose_config, render_mesh, shared_file, textured_vase
from mesh_style.backbone import load_backbone
from mesh_style.checkpoint import Checkpoint, trajectory_settings
from mesh_style.errors import MeshStyleError
from mesh_style.images import pil_to_tensor, read_image
from mesh_style.losses import total_variation
from mesh_style.mesh import load_mesh
from mesh_style.optimize import build_objective, optimize
from mesh_style.run import PHASES, PhaseTimer, evaluate, render_cache, resize_texture, run
from mesh_style.style import load_style
from mesh_style.views import sample_views

EXPECTED = {
    "vase_stylized.glb", "vase_stylized.obj", "vase_stylized.mtl", "vase_stylized.png", "preview.png", "metrics.json",
    "held_out_views.json", "held_out_0.png", "held_out_1.png", "history.csv", "losses.png", "texture_compare.png", "turntable.gif",
}
#: Stroke style gain the optimisation adds to the palette alone on the small Duck run below (measured
#: 0.555 against 0.325 with 2 views a step, 0.557 with 4, AMD EPYC, float32; the grey style gain,
#: which still counts the palette's darkening of the yellow duck, reads 0.657 against 0.590); a run
#: whose steps paint nothing in the luma adds about 0.
STROKE_GAIN_OVER_PALETTE = 0.15


def test_end_to_end_on_a_mesh_made_in_code(tmp_path, make_cfg, vase_glb, style_png, caplog):
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="mesh_style.optimize"):
        metrics = run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY), run_dir)
    assert [p.name for p in run_dir.iterdir()] == ["result"]  # no checkpoint or staging folder left
    out = run_dir / "result"
    steps = metrics["config"]["optim"]["steps"]
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stylising: step")]
    assert 1 <= len(progress) <= 11 and progress[-1].startswith(f"stylising: step {steps}/{steps} (100 %)")  # no terminal: log lines
    assert {p.name for p in out.iterdir()} == EXPECTED  # nothing half-written left behind
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["backbone"] == "vgg16_hed" and saved["faces"] == metrics["faces"] > 0
    assert set(saved["seconds"]) == {"load", "rasterize", "targets", "optimize", "evaluate", "export"}
    assert saved["total_seconds"] >= sum(saved["seconds"].values()) and saved["peak_memory_mb"] > 100
    assert saved["versions"]["mesh_style"] == mesh_style.__version__ and saved["versions"]["torch"].startswith("2.11")
    assert saved["preset"] is None  # not run through Hydra's command line
    for phase in ("before", "after"):
        assert set(saved["held_out"][phase]) == {"style", "content", "chroma"}
    with open(out / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == saved["config"]["optim"]["steps"] and float(rows[-1]["total"]) == pytest.approx(saved["final_train_loss"]["total"], rel=1e-4)
    assert Image.open(out / "losses.png").size == (640, 400)
    # Training renders are 48 px; the preview shows 4 views of at least 256 px in two rows, the painting beside.
    preview = Image.open(out / "preview.png")
    assert preview.height == 2 * 256 + 4 and preview.width > 2 * (256 + 4) + preview.height * 0.5
    assert Image.open(out / "texture_compare.png").size == (2 * 512 + 4, 512)  # a square 32² texture, twice
    turntable = Image.open(out / "turntable.gif")
    assert turntable.n_frames == 6 and turntable.size == (2 * 64, 64)  # original | result, per frame
    frames = []
    for i in range(turntable.n_frames):
        turntable.seek(i)
        frames.append(np.asarray(turntable.convert("RGB"), dtype=np.float32))
    assert np.abs(frames[0] - frames[3]).mean() > 1  # it turns
    assert np.abs(frames[0][:, :64] - frames[0][:, 64:]).mean() > 1  # and the result differs from the original
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(MeshStyleError, match="already holds a result"):  # a second run into the same folder
        run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY), run_dir)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    stylised = pil_to_tensor(read_image(out / "vase_stylized.png", "texture", "-"))
    original = resize_texture(load_mesh(make_cfg(f"mesh.path={vase_glb}").mesh).textures[0], 32)
    assert stylised.shape == (32, 32, 3) and (stylised - original).abs().mean() > 1e-3


def test_same_seed_same_texture(tmp_path, make_cfg, vase_glb, style_png):
    def texture(name, seed):
        run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", f"seed={seed}", *TINY), tmp_path / name)
        return np.asarray(read_image(tmp_path / name / "result" / "vase_stylized.png", "texture", "-"))

    first, second, other = texture("a", 0), texture("b", 0), texture("c", 1)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_recolour_start_begins_in_the_paintings_palette(tmp_path, make_cfg, vase_glb, style_png):
    """``style.recolour_start=true`` (ARF): the texture starts from the original moved to the
    painting's colour mean and covariance, so after a few steps its colours are far closer to the
    painting's than those of a run from the original, with the original's layout still there."""
    metrics = {
        flag: run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY, f"style.recolour_start={flag}"), tmp_path / flag)
        for flag in ("false", "true")
    }
    figures = {flag: m["quality"] for flag, m in metrics.items()}
    assert figures["true"]["result"]["colour_distance"] < 0.5 * figures["false"]["result"]["colour_distance"], figures
    assert figures["true"]["result"]["structure"] > 0.5, figures
    # The content loss keeps the layout of the texture it starts from: the original itself, or recoloured.
    assert metrics["false"]["held_out"]["before"]["content"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["true"]["held_out"]["before"]["content"] > 0.01


def test_recolour_end_brings_the_result_closer_to_the_paintings_colours(tmp_path, make_cfg, vase_glb, style_png):
    """``style.recolour_end=1`` moves the optimised texture's colours onto the painting's whole
    distribution: held-out colour distance far below the same run's without it. Keeping the luma
    (the default) leaves the layout exactly as without it; moving it too costs layout."""
    settings = {"off": ["style.recolour_end=0"], "keep": ["style.recolour_end=1"], "move": ["style.recolour_end=1", "style.recolour_end_luma=move"]}
    figures = {
        name: run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY, *overrides), tmp_path / name)["quality"]["result"]
        for name, overrides in settings.items()
    }
    for moved in ("keep", "move"):
        assert figures[moved]["colour_distance"] < 0.7 * figures["off"]["colour_distance"], figures
    assert figures["keep"]["structure"] == pytest.approx(figures["off"]["structure"], abs=0.02), figures
    assert figures["move"]["structure"] < figures["keep"]["structure"] - 0.02, figures


def test_recolour_mid_moves_the_colours_once_and_the_steps_go_on_from_them(make_cfg, vase_glb, style_png):
    """``optimize``'s recolour hook (``style.recolour_mid``): called once, after ``recolour_at``
    steps, with the result so far (exactly what a run that stops there returns); the remaining steps
    start from what it returns (at a tiny step size they stay there); never called at the end."""
    cfg = make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY, "optim.steps=4", "optim.lr=1e-4")
    mesh = load_mesh(cfg.mesh)
    cache = render_cache(mesh, sample_views(cfg.views, cfg.seed)[0], cfg.render, torch.device("cpu"))
    extractor = load_backbone("vgg16_hed", sorted({*cfg.loss.style_layers, cfg.loss.content_layer}))[0]
    objective = build_objective(extractor, load_style(cfg.style), mesh.layout.flatten(mesh.textures), cache, cfg.loss, torch.ones(3))
    calls = []

    def recolour(texels: torch.Tensor) -> torch.Tensor:
        calls.append(texels.clone())
        return torch.full_like(texels, 0.3)

    def steps(count: int, at: int) -> tuple[torch.Tensor, list]:
        optim_cfg = OmegaConf.merge(cfg.optim, {"steps": count})
        return optimize(mesh.textures, objective, cache, cfg.loss, optim_cfg, 2, cfg.seed, recolour=recolour, recolour_at=at)

    two, _ = steps(2, at=2)
    assert not calls  # at the end: that is recolour_end's move, not this one
    four, history = steps(4, at=2)
    assert len(calls) == 1 and torch.equal(calls[0], two)
    assert len(history) == 4
    assert (four - 0.3).abs().max() < 1e-3


def test_a_loss_that_blows_up_stops_the_run_and_keeps_the_last_finite_checkpoint(tmp_path, make_cfg, vase_glb, style_png, monkeypatch):
    """A NaN loss at step 3 (forced here) stops the run with one line naming the step and a fix; the
    checkpoint of step 2 is kept and no result is written."""
    calls = []

    def nan_at_step_3(texture: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return total_variation(texture) * (float("nan") if len(calls) == 3 else 1.0)

    monkeypatch.setattr(mesh_style.optimize, "total_variation", nan_at_step_3)
    out = tmp_path / "run"
    with pytest.raises(MeshStyleError, match=r"the tv loss became nan at step 3 \(lower optim.lr, now 0.1"):
        run(make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY, "optim.steps=10", "optim.checkpoint_every=1"), out)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    assert {p.name for p in out.iterdir()} == {"checkpoint.pt"}


def test_resume_refuses_a_checkpoint_made_with_other_settings(tmp_path, make_cfg, vase_glb, style_png):
    out = tmp_path / "run"
    settings = [f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY, "optim.checkpoint_every=1"]
    Checkpoint(out / "checkpoint.pt", 1, trajectory_settings(make_cfg(*settings, "optim.lr=0.05"))).save({"step": 1})
    with pytest.raises(MeshStyleError, match=r"other settings: optim.lr=0.05 \(now 0.1\)"):
        run(make_cfg(*settings, "resume=true"), out)
    # Settings that do not change the optimisation's path may differ.
    assert trajectory_settings(make_cfg(*settings, "export.formats=[obj]", "optim.checkpoint_every=7")) == trajectory_settings(make_cfg(*settings))


@pytest.mark.parametrize("name", ["Duck.glb", "fuze.obj", "BoxTextured.glb"])
def test_shared_meshes_export_and_reload(tmp_path, make_cfg, name, style_png):
    """The exported GLB and OBJ re-load (trimesh) with the stylised texture and render like the
    pipeline: original geometry with the stylised texels, mean difference < 2/255."""
    path = shared_file(f"meshes/{name}")
    run(make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY), tmp_path / "run")
    out, stem = tmp_path / "run" / "result", path.stem
    stylised = pil_to_tensor(read_image(out / f"{stem}_stylized.png", "texture", "-"))

    views, _ = sample_views(make_cfg("views.num=3").views, seed=5)
    render_cfg = make_cfg("render.image_size=96").render

    def images(mesh):
        return render_mesh(mesh, views, render_cfg)[0]

    source = load_mesh(make_cfg(f"mesh.path={path}").mesh)
    source.textures = [stylised]
    expected = images(source)
    for suffix in (".glb", ".obj"):
        reloaded = load_mesh(make_cfg(f"mesh.path={out / (stem + '_stylized' + suffix)}").mesh)
        assert torch.equal(reloaded.textures[0], stylised)
        assert (images(reloaded) - expected).abs().mean() < 2 / 255


def _small_duck(out, *overrides: str) -> dict:
    """Duck × Starry Night at preset=fast, smaller and shorter (96² renders, 2 views a step, 80 steps)
    to keep the suite short, with the real (offline) VGG16: ``metrics.json``'s content."""
    cfg = compose_config(
        f"mesh.path={shared_file('meshes/Duck.glb')}", f"style.path={shared_file('styles/starry_night.jpg')}", "preset=fast",
        "render.image_size=96", "views.per_step=2", "optim.steps=80", "backbone.name=vgg16_hed", "export.formats=[glb]",
        "export.turntable.frames=0", *overrides,
    )
    return run(cfg, out)


@pytest.fixture(scope="module")
def small_duck(tmp_path_factory) -> tuple[dict, Path]:
    """:func:`_small_duck` at the defaults, shared by the tests below: its metrics and run folder."""
    out = tmp_path_factory.mktemp("duck") / "run"
    return _small_duck(out), out


@pytest.mark.slow
def test_duck_with_offline_weights_style_loss_falls(tmp_path, small_duck):
    """preset=fast (smaller) with the real (offline) VGG16 on a real model and painting: the held-out
    style loss, on views never optimised, falls by at least 70 %, and the style distance over the
    duck's pixels by at least 80 %. The strokes are the optimisation's: in grey with the brightness
    levelled (the palette left out) the result is much nearer the painting than the palette alone
    (no steps) brings it."""
    metrics, out = small_duck
    held_out = metrics["held_out"]
    assert held_out["after"]["style"] < 0.3 * held_out["before"]["style"]
    assert held_out["style_loss_reduction"] >= 0.7
    assert metrics["quality"]["mesh_style_gain"] >= 0.8, metrics["quality"]  # the figure over the duck's pixels
    assert json.loads((out / "result" / "metrics.json").read_text())["held_out"]["style_loss_reduction"] >= 0.7
    palette_only = _small_duck(tmp_path / "palette", "optim.steps=0")["quality"]
    assert metrics["quality"]["stroke_style_gain"] >= palette_only["stroke_style_gain"] + STROKE_GAIN_OVER_PALETTE, (
        metrics["quality"]["stroke_style_gain"], palette_only["stroke_style_gain"])


@pytest.mark.slow
def test_the_long_range_term_paints_more_of_the_paintings_strokes_and_keeps_the_layout(tmp_path, small_duck):
    """The defaults (``loss.long_range_weight=3``) against the term off on the small Duck run, real
    weights: the stroke style gain is at least 0.04 higher with it (0.555 off → 0.624 on, measured, AMD
    EPYC, float32), the structure stays at the issue's 0.75 or above (0.788 at this small size; 0.813
    at ``preset=fast``'s own) and the speckle is no higher (0.244 on, 0.272 off)."""
    default = small_duck[0]["quality"]
    off = _small_duck(tmp_path / "run", "loss.long_range_weight=0")["quality"]
    figures = {"default": default, "off": off}
    assert default["stroke_style_gain"] >= off["stroke_style_gain"] + 0.04, figures
    assert default["result"]["structure"] >= 0.75, figures
    assert default["result"]["speckle"] <= off["result"]["speckle"] + 0.01, figures


@pytest.mark.slow
def test_bfloat16_backbone_stylises_as_well_as_float32(make_cfg):
    """The bfloat16 trunk (``backbone.precision=auto`` on CPUs with AMX) against float32, on a real
    model and painting: both optimised textures are scored by the same float32 objective on held-out
    views, and bfloat16's style loss is within 10 % of float32's."""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bfloat16")
    cfg = make_cfg(
        f"mesh.path={shared_file('meshes/Duck.glb')}",
        f"style.path={shared_file('styles/starry_night.jpg')}",
        "preset=fast",
        "render.image_size=96",
        "optim.steps=60",
    )
    mesh = load_mesh(cfg.mesh)  # the Duck's own 512² texture (optim.texture_size=auto would enlarge it in run())
    bank, held_out = sample_views(cfg.views, cfg.seed)
    cache = render_cache(mesh, bank.cat(held_out), cfg.render, torch.device("cpu"))
    style = load_style(cfg.style)
    layers = sorted({*cfg.loss.style_layers, cfg.loss.content_layer})
    original = mesh.layout.flatten(mesh.textures)

    def objective(dtype: torch.dtype):
        extractor = load_backbone("vgg16_hed", layers)[0].to(dtype)
        return build_objective(extractor, style, original, cache, cfg.loss, torch.ones(3))

    judge = objective(torch.float32)
    held_ids = torch.arange(len(bank), len(cache))
    style_loss = {}
    for dtype in (torch.float32, torch.bfloat16):
        texels, _ = optimize(mesh.textures, objective(dtype), cache.select(slice(0, len(bank))), cfg.loss, cfg.optim, cfg.views.per_step, cfg.seed)
        style_loss[dtype] = evaluate(judge, texels, cache, held_ids, cfg.loss.eval_chunk)["style"]
    before = evaluate(judge, original, cache, held_ids, cfg.loss.eval_chunk)["style"]
    assert style_loss[torch.float32] < 0.5 * before  # the comparison is between two real stylisations
    assert style_loss[torch.bfloat16] < 1.1 * style_loss[torch.float32], (before, style_loss)


def test_the_phase_bar_covers_every_phase_and_ends_with_the_total_or_clears_on_error():
    """On a terminal (forced here onto a string) one bar walks through the run's phases and stays
    with the total time; on an error it is cleared, so the error's one line is all that stays."""
    screen = io.StringIO()
    timer = PhaseTimer(file=screen, force=True)
    for phase in PHASES:
        with timer(phase):
            pass
    timer.close()
    drawn = screen.getvalue()
    assert all(f"mesh-style: {phase} [" in drawn for phase in PHASES)
    assert drawn.rstrip("\n").split("\r")[-1].startswith(f"mesh-style: done in 0 s [{len(PHASES)}/{len(PHASES)} phases")
    failing = io.StringIO()
    timer = PhaseTimer(file=failing, force=True)
    with pytest.raises(MeshStyleError):
        with timer("load"):
            raise MeshStyleError("bad mesh")
    assert failing.getvalue().split("\r")[-1].strip() == ""


def test_the_content_loss_holds_the_textured_vase_but_not_a_flat_coloured_one(tmp_path, make_cfg, style_png):
    """A material of one flat colour has no layout to keep: on a flat-coloured vase the content
    weight changes nothing (the same texture at 0 and at 10⁴), on the textured vase it does."""
    textures = {"flat": np.full((64, 64, 3), 128, np.uint8), "textured": None}
    results = {}
    for name, texture in textures.items():
        path = tmp_path / f"{name}.glb"
        path.write_bytes(trimesh.Scene({"vase": textured_vase(texture=texture)}).export(file_type="glb"))
        for weight in (0, 10_000):
            cfg = make_cfg(f"mesh.path={path}", f"style.path={style_png}", *TINY, "optim.steps=20", f"loss.content_weight={weight}")
            run(cfg, tmp_path / f"{name}_{weight}")
            results[name, weight] = np.asarray(Image.open(tmp_path / f"{name}_{weight}" / "result" / f"{name}_stylized.png"))
    assert np.array_equal(results["flat", 0], results["flat", 10_000])
    assert np.abs(results["textured", 0].astype(int) - results["textured", 10_000]).mean() > 5
