"""The bad-input corpus (issue "Reliability"), made in code.

Every case must end in one line ``mesh-style: error: <problem> (<fix>)`` with exit status 2, the
inputs byte-for-byte unchanged and no file in the run folder that looks like a result.
Config values go through the command line's own check (``cli.check_overrides``: the schema's types,
then its ranges, before torch is needed or any file is read); files go through ``run``, whose
:class:`MeshStyleError` the command line prints the same way (test_cli.py runs cases end to end).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import struct
import typing
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from mesh_style import cli, schema
from mesh_style.errors import MeshStyleError
from mesh_style.run import run

#: A fix in parentheses ends every message.
ENDS_WITH_FIX = re.compile(r"\(.+\)$")


def _fields(cls: type = schema.Config, prefix: str = "") -> list[tuple[str, typing.Any, dict]]:
    """``(key, type, metadata)`` of every setting of the schema."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory):
            out += _fields(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, hints[f.name], f.metadata))
    return out


def config_cases() -> list[str]:
    """For every setting: each wrong type, each side of its range, NaN and inf where it has one,
    an unknown choice; then wrong shapes and unknown keys."""
    cases = []
    for key, kind, meta in _fields():
        low, high, above = meta["low"], meta["high"], meta["above"]
        ranged = any(b is not None for b in (low, high, above))
        if kind is int:
            cases += [f"{key}=abc", f"{key}=2.5"]
        if kind is float:
            cases += [f"{key}=abc"] + ([f"{key}=nan", f"{key}=inf"] if ranged else [])
        if kind is bool:
            cases += [f"{key}=maybe"]
        if kind in (int, float):
            cases += [f"{key}={low - 1}"] if low is not None else []
            cases += [f"{key}={above}"] if above is not None else []
            cases += [f"{key}={high + 1}"] if high is not None else []
        if meta["choices"]:
            cases += [f"{key}=bogus"]
    return cases + [
        "views.elev=[10]", "views.elev=[50,10]", "views.elev=[-100,10]", "views.azim=[90,0]", "views.azim=abc",
        "render.background=[1,1]", "render.background=[2,0,0]", "mesh.blank_color=[0.5]", "mesh.blank_color=red",
        "export.formats=[]", "export.formats=[fbx]", "export.formats=glb",
        "loss.style_layers=[1]", "loss.style_layers={relu1_1:-1}", "loss.style_layers.relu1_1=abc",
        "style.weights=[1,1]", "style.weights=[-1]", "style.weights=[0]", "style.weights=abc", "style.path=[]",
        "optim.texture_size=3", "optim.texture_size=huge", "optim.texture_size=[64]", "optim.texture_size=[64,99999]",
        "views.nmu=3", "nosuch=1", "loss.nosuch.deeper=1", "preset=turbo", "loss=nosuch", "backbone=nosuch",
        "views.num=", "style.path=[a.jpg,",
    ]


CONFIG_CASES = config_cases()


def test_the_corpus_has_at_least_a_hundred_config_cases():
    assert len(CONFIG_CASES) >= 100 and len(set(CONFIG_CASES)) == len(CONFIG_CASES)


@pytest.mark.parametrize("overrides", CONFIG_CASES)
def test_bad_config_values_are_one_line_with_a_fix(capsys, overrides):
    args = ["mesh.path=duck.glb", "style.path=starry.jpg", *overrides.split(" ")]
    with pytest.raises(SystemExit) as exit_info:
        cli.check_overrides(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mesh-style: error: "), err
    assert ENDS_WITH_FIX.search(lines[0]), lines[0]
    assert overrides.split("=")[0] in lines[0], lines[0]  # names the setting


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` × ``height`` pixels (Pillow checks the size on opening)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


OBJ = "mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl a\nf 1/1 2/2 3/3\n"


def _make_inputs(folder: Path, vase_glb: Path, style_png: Path) -> dict[str, Path]:
    """Every bad file of the corpus, by name, in ``folder``."""
    good_glb, good_png = vase_glb.read_bytes(), style_png.read_bytes()
    jpeg = folder / "_photo.jpg"
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(jpeg)
    png_at = good_glb.find(b"\x89PNG")
    files: dict[str, bytes | str] = {
        "empty.glb": b"",
        "truncated.glb": good_glb[: len(good_glb) // 2],
        "random.glb": np.random.default_rng(1).bytes(4096),
        "text.glb": "this is not a mesh",
        "corrupt_texture.glb": good_glb[: png_at + 100] + b"\0" * 300 + good_glb[png_at + 400 :],
        "empty.obj": b"",
        "points.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\n",
        "nan.obj": "v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 3 4\n",
        "inf.obj": "v 0 0 0\nv inf 0 0\nv 0 1 0\nf 1 2 3\n",
        "coincident.obj": "v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n",
        "random.obj": np.random.default_rng(2).bytes(4096),
        "no_mtl/mesh.obj": OBJ,
        "missing_texture/mesh.obj": OBJ,
        "missing_texture/m.mtl": "newmtl a\nmap_Kd tex.png\n",
        "text_texture/mesh.obj": OBJ,
        "text_texture/m.mtl": "newmtl a\nmap_Kd tex.png\n",
        "text_texture/tex.png": "not an image",
        "truncated_texture/mesh.obj": OBJ,
        "truncated_texture/m.mtl": "newmtl a\nmap_Kd -s 1 1 1 tex.jpg\n",
        "truncated_texture/tex.jpg": jpeg.read_bytes()[:300],
        "empty.ply": b"",
        "random.ply": b"ply\nformat ascii 1.0\n" + np.random.default_rng(3).bytes(512),
        "chair.fbx": b"Kaydara FBX Binary  \x00",
        "chair.stl": "solid chair\nendsolid chair\n",
        "no_suffix": good_glb,
        "missing_bin.gltf": '{"asset": {"version": "2.0"}, "buffers": [{"uri": "nope.bin", "byteLength": 12}]}',
        "empty.png": b"",
        "text.png": "this is not an image",
        "truncated.jpg": jpeg.read_bytes()[: len(jpeg.read_bytes()) // 3],
        "random.jpg": np.random.default_rng(4).bytes(2048),
        "bomb.png": _png_header(30000, 30000),
        "half.png": good_png[: len(good_png) // 2],
        "not_vgg.pth": b"",
        "text.pth": "not a state dict",
    }
    jpeg.unlink()
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    torch.save({"features.0.weight": torch.zeros(1)}, folder / "not_vgg.pth")
    (folder / "a_folder.glb").mkdir()
    return {"good_mesh": vase_glb, "good_style": style_png, **{name: folder / name for name in files}, "folder": folder / "a_folder.glb"}


#: (mesh, painting, extra overrides, fragment of the message): each a file of ``_make_inputs``.
FILE_CASES = [
    ("missing.glb", "good_style", [], "not found"),
    ("folder", "good_style", [], "is a folder"),
    ("empty.glb", "good_style", [], "cannot read mesh"),
    ("truncated.glb", "good_style", [], "cannot read mesh"),
    ("random.glb", "good_style", [], "cannot read mesh"),
    ("text.glb", "good_style", [], "cannot read mesh"),
    ("corrupt_texture.glb", "good_style", [], "cannot decode the texture"),
    ("empty.obj", "good_style", [], "no triangle faces"),
    ("points.obj", "good_style", [], "no triangle faces"),
    ("nan.obj", "good_style", [], "NaN or infinite vertex positions"),
    ("inf.obj", "good_style", [], "NaN or infinite vertex positions"),
    ("coincident.obj", "good_style", [], "zero surface area"),
    ("random.obj", "good_style", [], "mesh"),
    ("no_mtl/mesh.obj", "good_style", [], "material library 'm.mtl'"),
    ("missing_texture/mesh.obj", "good_style", [], "texture of m.mtl not found"),
    ("text_texture/mesh.obj", "good_style", [], "cannot read texture of m.mtl"),
    ("truncated_texture/mesh.obj", "good_style", [], "cannot read texture of m.mtl"),
    ("empty.ply", "good_style", [], "mesh"),
    ("random.ply", "good_style", [], "mesh"),
    ("chair.fbx", "good_style", [], "unsupported mesh format '.fbx'"),
    ("chair.stl", "good_style", [], "unsupported mesh format '.stl'"),
    ("no_suffix", "good_style", [], "unsupported mesh format '(none)'"),
    ("missing_bin.gltf", "good_style", [], "cannot read mesh"),
    ("good_mesh", "missing.png", [], "style image not found"),
    ("good_mesh", "folder", [], "is a folder"),
    ("good_mesh", "empty.png", [], "cannot read style image"),
    ("good_mesh", "text.png", [], "cannot read style image"),
    ("good_mesh", "truncated.jpg", [], "cannot read style image"),
    ("good_mesh", "random.jpg", [], "cannot read style image"),
    ("good_mesh", "bomb.png", [], "more pixels than Pillow reads safely"),
    ("good_mesh", "half.png", [], "cannot read style image"),
    ("good_mesh", "good_style", ["backbone.name=@not_vgg.pth"], "not_vgg.pth"),
    ("good_mesh", "good_style", ["backbone.name=@text.pth"], "text.pth"),
    ("good_mesh", "good_style", ["backbone.name=/no/such/weights.pth"], "weights.pth"),
]


@pytest.mark.parametrize("mesh, painting, extra, fragment", FILE_CASES)
def test_bad_files_are_one_line_with_a_fix_and_leave_inputs_and_no_result(
    tmp_path, make_cfg, vase_glb, style_png, mesh, painting, extra, fragment
):
    inputs = tmp_path / "corpus"
    inputs.mkdir()
    files = _make_inputs(inputs, vase_glb, style_png)
    out = tmp_path / "run"
    snapshot = lambda: {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(out)}  # noqa: E731
    before = snapshot()
    path = lambda name: files.get(name, inputs / name)  # noqa: E731  (names not made are missing files)
    overrides = [o.replace("@", f"{inputs}/") for o in extra]
    cfg = make_cfg(f"mesh.path={cli.quoted(str(path(mesh)))}", f"style.path={cli.quoted(str(path(painting)))}", *TINY, *overrides)
    with pytest.raises(MeshStyleError) as error:
        run(cfg, out)
    message = str(error.value)
    assert fragment in message and "\n" not in message and ENDS_WITH_FIX.search(message), message
    assert snapshot() == before  # inputs untouched
    assert not (out / "result").exists()
    assert not out.exists() or not [p for p in out.rglob("*") if p.suffix in (".glb", ".obj", ".png", ".json", ".gif")]


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, make_cfg, vase_glb, style_png):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the run folder's parent should be")
    cfg = make_cfg(f"mesh.path={vase_glb}", f"style.path={style_png}", *TINY)
    with pytest.raises(MeshStyleError, match=r"cannot write into .*not a writable folder \(choose another hydra.run.dir"):
        run(cfg, blocker / "run")
    assert blocker.read_text().startswith("a file")


@pytest.mark.parametrize("mesh", ["no_mtl/mesh.obj", "missing_texture/mesh.obj", "truncated_texture/mesh.obj"])
def test_missing_texture_blank_lets_a_broken_material_pass_with_a_warning(tmp_path, make_cfg, vase_glb, style_png, mesh, caplog):
    """``mesh.missing_texture=blank``: the run completes with the material's base colour, and the
    problem is a warning in the log and in metrics.json instead of an error."""
    files = _make_inputs(tmp_path, vase_glb, style_png)
    cfg = make_cfg(f"mesh.path={files[mesh]}", f"style.path={style_png}", *TINY, "mesh.missing_texture=blank")
    with caplog.at_level(logging.WARNING, logger="mesh_style.mesh"):
        metrics = run(cfg, tmp_path / "run")
    warning, = metrics["warnings"]
    assert "m.mtl" in warning and "mesh.missing_texture=blank" in warning
    assert warning in [record.getMessage() for record in caplog.records]
    assert (tmp_path / "run" / "result" / "mesh_stylized.glb").is_file()
