"""Checkpoints of the optimisation, so that ``resume=true`` continues a run that was killed.

A checkpoint holds everything the next step depends on (the texture's parameters, Adam's moments,
the texture's moving average, both random generators, the loss history) and the settings it was made with. On CPU a resumed run
therefore ends with the same texture, bit for bit, as the run that was never stopped.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import Container, DictConfig, OmegaConf

from mesh_style.errors import MeshStyleError
from mesh_style.layout import CHECKPOINT_FILE
from mesh_style.schema import settings

log = logging.getLogger(__name__)

#: Settings that do not change the optimisation's path: a run may be resumed with other values.
FREE_KEYS = ("resume", "optim.checkpoint_every", "export.")


def trajectory_settings(cfg: DictConfig) -> dict[str, Any]:
    """Every setting of the schema as flat ``{"group.key": value}``, less :data:`FREE_KEYS`."""
    values = {key: OmegaConf.select(cfg, key) for key, _, _ in settings() if not key.startswith(FREE_KEYS)}
    return {key: OmegaConf.to_container(v) if isinstance(v, Container) else v for key, v in values.items()}


@dataclass
class Checkpoint:
    """``path`` holds the state of a run whose settings are ``settings``; saved every ``every`` steps
    (0: never)."""

    path: Path
    every: int
    settings: dict[str, Any]

    def due(self, step: int, steps: int) -> bool:
        """Whether to save after ``step`` steps of ``steps`` (not after the last: the result follows)."""
        return self.every > 0 and step % self.every == 0 and step < steps

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (see :meth:`load`) atomically: a kill while writing leaves the previous one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        torch.save({**state, "settings": self.settings}, partial)
        os.replace(partial, self.path)

    def load(self) -> dict[str, Any] | None:
        """The saved state (``step``, ``pyramid``, ``adam``, ``average``, ``views_rng``, ``torch_rng``,
        ``cuda_rng``, ``history``), or None where there is no checkpoint. Raises
        :class:`MeshStyleError` if it was made with other settings.

        Loaded on the CPU, where random states must be: ``load_state_dict`` moves the pyramid's
        and Adam's tensors to the device of the parameters they go into."""
        if not self.path.exists():
            log.warning("resume=true but %s has no checkpoint: starting from step 0", self.path.parent)
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a damaged file
            raise MeshStyleError(f"cannot read the checkpoint {self.path}: {error} (delete it to start afresh)") from None
        changed = sorted(k for k in self.settings.keys() | state["settings"].keys() if self.settings.get(k) != state["settings"].get(k))
        if changed:
            then = ", ".join(f"{k}={state['settings'].get(k)!r} (now {self.settings.get(k)!r})" for k in changed[:4])
            raise MeshStyleError(
                f"the checkpoint in {self.path.parent} was made with other settings: {then} "
                "(resume with the same settings, or run without resume=true to start afresh)"
            )
        log.info("resuming from step %d (%s)", state["step"], self.path)
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def saved_step(folder: Path) -> int | None:
    """The step of the checkpoint in ``folder``, or None (read lazily: no tensor is loaded)."""
    try:
        return int(torch.load(folder / CHECKPOINT_FILE, mmap=True, weights_only=True, map_location="cpu")["step"])
    except Exception:  # no checkpoint, or one cut short: nothing to resume from
        return None
