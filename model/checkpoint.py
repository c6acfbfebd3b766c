"""Checkpoints: one safetensors file holding the weights, with the config and provenance as metadata.

Loading checks the format version, rebuilds the config, and compares every tensor's name and shape
with the network that config builds, so a truncated, foreign or mismatched file is refused with a
message that says what is wrong instead of failing deep inside PyTorch.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from syncreel.model.config import DualTowerConfig
from syncreel.model.transformer import DualTowerTransformer

FORMAT = "syncreel-dualtower/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def save_checkpoint(
    model: DualTowerTransformer, path: Path, *, dtype: torch.dtype = torch.float32, **provenance: Any
) -> None:
    """Write weights (as ``dtype``: float16 halves a shipped file) + config + provenance, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "provenance": json.dumps(provenance, default=str),
    }
    state = {name: tensor.detach().cpu().to(dtype).contiguous() for name, tensor in model.state_dict().items()}
    partial = path.with_name(f".{path.name}.partial")
    save_file(state, str(partial), metadata=metadata)
    partial.chmod(0o644)  # safetensors creates the file owner-only; a checkpoint is for every worker to read
    partial.replace(path)


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {metadata.get('format')!r}; this code reads {FORMAT!r}")
    return {"config": json.loads(metadata["config"]), "provenance": json.loads(metadata.get("provenance", "{}"))}


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[DualTowerTransformer, dict[str, Any]]:
    """The network a checkpoint describes, with its weights; plus the provenance recorded at save time."""
    path = Path(path)
    metadata = read_metadata(path)
    known = {f.name for f in fields(DualTowerConfig)}
    unknown = sorted(set(metadata["config"]) - known)
    if unknown:
        raise CheckpointError(f"{path}: config has fields this code does not know: {', '.join(unknown)}")
    try:
        config = DualTowerConfig(**metadata["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid config ({exc})") from None
    model = DualTowerTransformer(config)
    state = load_file(str(path), device=str(device))
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state.items()}
    problems = [f"missing {name}" for name in sorted(expected.keys() - found.keys())]
    problems += [f"unexpected {name}" for name in sorted(found.keys() - expected.keys())]
    problems += [
        f"{name}: shape {found[name]}, the network has {expected[name]}"
        for name in sorted(expected.keys() & found.keys())
        if expected[name] != found[name]
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise CheckpointError(f"{path}: weights do not match the config: {shown}")
    model.load_state_dict({name: tensor.float() for name, tensor in state.items()})
    return model.to(device).eval(), metadata["provenance"]


def load_codec_state(path: Path) -> dict[str, torch.Tensor]:
    """Only the frame autoencoder's weights from a checkpoint (as float32), whatever the rest holds."""
    read_metadata(Path(path))
    prefix = "video_codec."
    state = {k[len(prefix) :]: v.float() for k, v in load_file(str(path)).items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(f"{path}: holds no frame autoencoder (no {prefix}* tensors)")
    return state
