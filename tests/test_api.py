"""The Python API: the command line's run as a function call."""

import functools
import json

import pytest

import mesh_style
import mesh_style.backbone as backbone
from conftest import TINY
from mesh_style.errors import MeshStyleError


def test_stylize_writes_results_and_reads_the_weights_once(tmp_path, vase_glb, style_png, monkeypatch):
    reads, read = [], backbone._hed_convs.__wrapped__  # the uncached reader
    monkeypatch.setattr(backbone, "_hed_convs", functools.cache(lambda: reads.append(1) or read()))
    for name in ("a", "b"):
        metrics = mesh_style.stylize(vase_glb, style_png, tmp_path / name, [*TINY, "loss.style_weight=3"])
        saved = json.loads((tmp_path / name / "metrics.json").read_text())
        assert saved["config"]["loss"]["style_weight"] == 3 and metrics["mesh"] == str(vase_glb)
    assert len(reads) == 1  # training backbone and figure backbone, two runs: one read of the weights


def test_stylize_raises_the_command_lines_error(tmp_path, style_png):
    with pytest.raises(MeshStyleError, match="mesh file not found"):
        mesh_style.stylize(tmp_path / "missing.glb", style_png, tmp_path / "out", TINY)
    assert not (tmp_path / "out").exists()
