"""Sweeps: a Hydra callback that sums up a multirun in its root folder, one row per job.

A job that fails with a user error writes ``error.txt`` (its one line) instead of a result and lets
the sweep go on (see :func:`mesh_style.cli.hydra_main`); the summary lists it as failed, and the
sweep exits with status 2 once every job has run.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from PIL import Image, ImageDraw

from mesh_style.layout import ERROR_FILE, RESULT_DIR

#: Width of summary.png; each job's preview is scaled to it.
SHEET_WIDTH = 1200
LABEL_HEIGHT = 18
#: Columns of the summary taken from each job's ``metrics.json``: (column, path of keys).
FIGURES = (
    ("style_gain", ("quality", "style_gain")),
    ("mesh_style_gain", ("quality", "mesh_style_gain")),
    ("grey_style_gain", ("quality", "grey_style_gain")),
    ("stroke_style_gain", ("quality", "stroke_style_gain")),
    ("structure", ("quality", "result", "structure")),
    ("colour_distance", ("quality", "result", "colour_distance")),
    ("speckle", ("quality", "result", "speckle")),
    ("seconds", ("total_seconds",)),
)


def _lookup(data: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def job_row(folder: Path) -> dict[str, Any]:
    """One job of a sweep: its number, overrides (a list), status (``ok``, ``failed: <line>`` or
    ``incomplete``) and figures."""
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = OmegaConf.load(overrides_file) if overrides_file.exists() else []
    row: dict[str, Any] = {"job": folder.name, "overrides": [str(o) for o in overrides if not str(o).startswith("hydra.")]}
    if (folder / RESULT_DIR / "metrics.json").exists():
        metrics = json.loads((folder / RESULT_DIR / "metrics.json").read_text())
        row["status"] = "ok"
        row.update({column: _lookup(metrics, keys) for column, keys in FIGURES})
    elif (folder / ERROR_FILE).exists():
        row["status"] = "failed: " + (folder / ERROR_FILE).read_text().strip()
    else:
        row["status"] = "incomplete"  # killed, or still running elsewhere
    return row


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "" if value is None else str(value)


def write_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """``summary.csv``, ``summary.md`` (with each job's preview) and ``summary.png`` (a contact
    sheet) in ``sweep_dir``, each job shown by the overrides that differ between jobs; returns the rows."""
    jobs = sorted((p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()), key=lambda p: (len(p.name), p.name))
    rows = [job_row(folder) for folder in jobs]
    shared = set.intersection(*(set(row["overrides"]) for row in rows)) if len(rows) > 1 else set()
    for row in rows:  # what the jobs were swept over; what they share is in multirun.yaml
        row["overrides"] = " ".join(o for o in row["overrides"] if o not in shared)
    columns = ["job", "overrides", "status", *(column for column, _ in FIGURES)]
    with open(sweep_dir / "summary.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows({c: _cell(row.get(c)) for c in columns} for row in rows)
    lines = ["| " + " | ".join(columns + ["preview"]) + " |", "|" + " --- |" * (len(columns) + 1)]
    for row in rows:
        preview = f"![job {row['job']}]({row['job']}/{RESULT_DIR}/preview.png)" if row["status"] == "ok" else ""
        lines.append("| " + " | ".join(_cell(row.get(c)).replace("|", "\\|") for c in columns) + f" | {preview} |")
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    contact_sheet(sweep_dir, rows).save(sweep_dir / "summary.png")
    return rows


def contact_sheet(sweep_dir: Path, rows: list[dict[str, Any]]) -> Image.Image:
    """One labelled row per job (``job N: overrides — status``), its preview below the label
    (held-out views, original above result, the painting beside); failed jobs are a label only."""
    tiles = []
    for row in rows:
        preview_path = sweep_dir / row["job"] / RESULT_DIR / "preview.png"
        preview = Image.open(preview_path).convert("RGB") if row["status"] == "ok" and preview_path.exists() else None
        height = round(preview.height * SHEET_WIDTH / preview.width) if preview else 0
        tile = Image.new("RGB", (SHEET_WIDTH, LABEL_HEIGHT + height), "white")
        ImageDraw.Draw(tile).text((4, 3), f"job {row['job']}: {row['overrides'] or '(no overrides)'} - {row['status']}", fill="black")
        if preview:
            tile.paste(preview.resize((SHEET_WIDTH, height), Image.Resampling.LANCZOS), (0, LABEL_HEIGHT))
        tiles.append(tile)
    sheet = Image.new("RGB", (SHEET_WIDTH, sum(t.height for t in tiles) + 4 * len(tiles)), "white")
    y = 0
    for tile in tiles:
        sheet.paste(tile, (0, y))
        y += tile.height + 4
    return sheet


class SweepSummary(Callback):
    """Writes :func:`write_summary` into the sweep's root when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        failed = [row for row in rows if row["status"] != "ok"]
        print(f"mesh-style: {len(rows) - len(failed)} of {len(rows)} runs complete; summary in {sweep_dir / 'summary.md'}")
        if failed:
            print(f"mesh-style: error: {len(failed)} of {len(rows)} runs failed (see {sweep_dir / 'summary.md'})", file=sys.stderr)
            sys.exit(2)
