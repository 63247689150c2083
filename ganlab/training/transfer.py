"""Starting a network's layers from weights a checkpoint held (a classifier run's layers into a VAE
encoder): part of building a run, after the assembly has read the file (`records/checkpoint.py`)."""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ConfigError


def copy_layers(target: nn.Module, weights: dict[str, dict[str, torch.Tensor]], path: str, source_prefix: str,
                key: str) -> list[str]:
    """Copy the tensors under `source_prefix` of the network in `weights` that has them into `target`.

    Every parameter and buffer of `target` must find a tensor of the same name and shape; nothing
    else is touched. Returns the copied names. A mismatch is a ConfigError naming the layers.
    """
    sources = {name: {k[len(source_prefix):]: v for k, v in tensors.items() if k.startswith(source_prefix)}
               for name, tensors in weights.items()}
    source_name, source = max(sources.items(), key=lambda item: len(item[1]), default=("", {}))
    if not source:
        raise ConfigError(f"{key}={path}: no network in that checkpoint has layers under '{source_prefix}'; "
                          f"it holds {sorted(weights)}. Use a classifier_mlp checkpoint.")
    wanted = target.state_dict()
    missing = sorted(source_prefix + n for n in set(wanted) - set(source))
    if missing:
        raise ConfigError(f"{key}={path}: the encoder's layers {missing} have no counterpart in the checkpoint's "
                          f"{source_name}.{source_prefix}* (it has {sorted(source_prefix + n for n in source)}). "
                          "Use the same hidden sizes.")
    wrong = [f"{source_prefix}{n}: encoder {tuple(wanted[n].shape)} vs checkpoint {tuple(source[n].shape)}"
             for n in sorted(wanted) if wanted[n].shape != source[n].shape]
    if wrong:
        raise ConfigError(f"{key}={path}: layer shapes differ ({'; '.join(wrong)}). Train the classifier with "
                          "the VAE's input size and hidden sizes.")
    with torch.no_grad():
        for name, tensor in target.state_dict().items():
            tensor.copy_(source[name])
    return sorted(wanted)
