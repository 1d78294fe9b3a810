"""Resume state of a training run: model and optimizer tensors as safetensors plus JSON. Never pickle.

Saved beside each Ray Train checkpoint so a restarted job continues from its last epoch; the exported
serving checkpoint leaves these files out.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

TRAIN_STATE = "train_state.safetensors"
TRAIN_STATE_JSON = "train_state.json"


def save_train_state(directory: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     state: dict[str, Any]) -> None:
    """Writes the model's and optimizer's tensors and ``state`` (JSON-able: epoch, history) to ``directory``."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in _unique_state(model).items()}
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(tensors, os.path.join(directory, TRAIN_STATE))
    Path(directory, TRAIN_STATE_JSON).write_text(json.dumps({**state, "param_groups": opt["param_groups"]}))


def load_train_state(directory: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Loads what :func:`save_train_state` wrote into ``model`` and ``optimizer``; returns ``state``."""
    from safetensors.torch import load_file

    tensors = load_file(os.path.join(directory, TRAIN_STATE))
    state = json.loads(Path(directory, TRAIN_STATE_JSON).read_text())
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=False)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without second names for shared tensors (the video encoder shares the image encoder)."""
    seen, out = set(), {}
    for key, value in model.state_dict().items():
        if value.data_ptr() in seen and value.numel() > 0:
            continue
        seen.add(value.data_ptr())
        out[key] = value
    return out
