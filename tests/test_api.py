"""The Python API: the command line's run as a function call."""

import functools
import json

import pytest
from PIL import Image

import mesh_style
import mesh_style.backbone as backbone
from conftest import TINY
from mesh_style.errors import MeshStyleError


def test_stylize_writes_results_and_reads_the_weights_once(tmp_path, vase_glb, style_png, monkeypatch):
    reads, read = [], backbone._hed_convs.__wrapped__  # the uncached reader
    monkeypatch.setattr(backbone, "_hed_convs", functools.cache(lambda: reads.append(1) or read()))
    for name in ("a", "b"):
        result = mesh_style.stylize(vase_glb, style_png, tmp_path / name, [*TINY, "loss.style_weight=3"])
        assert result.folder == tmp_path / name / "result"
        saved = json.loads(result.files["metrics.json"].read_text())
        assert saved == result.metrics and saved["config"]["loss"]["style_weight"] == 3 and saved["mesh"] == str(vase_glb)
        assert {"vase_stylized.glb", "vase_stylized.png", "preview.png"} <= set(result.files) and all(p.is_file() for p in result.files.values())
        (texture,) = result.textures  # the stylised texture as the exported mesh holds it, equal to the PNG
        assert texture.size == (32, 32) and texture.tobytes() == Image.open(result.files["vase_stylized.png"]).convert("RGB").tobytes()
    assert len(reads) == 1  # training backbone and figure backbone, two runs: one read of the weights


def test_stylize_raises_the_command_lines_error(tmp_path, style_png):
    with pytest.raises(MeshStyleError, match="mesh file not found"):
        mesh_style.stylize(tmp_path / "missing.glb", style_png, tmp_path / "out", TINY)
    assert not (tmp_path / "out").exists()
