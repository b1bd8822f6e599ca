"""Build a module whose weights come from a checkpoint without first making (and initialising) random ones.

``with parameters_on_meta(): module = ClapNetwork(config)`` puts every parameter registered in the block on PyTorch's
``meta`` device (a shape and dtype, no memory): the constructors' random initialisation then costs nothing, while
buffers computed in ``__init__`` (index tables, masks, filterbanks) are built for real as usual. The parameters then
take the checkpoint's tensors with ``load_state_dict(..., assign=True)`` (``load_state_dict_strict(assign=True)``).
Only the calling thread is affected; other threads constructing modules at the same time get ordinary parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_state = threading.local()
_lock = threading.Lock()
_users = 0
_original_register = nn.Module.register_parameter


def _register_parameter(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
    if param is not None and getattr(_state, "depth", 0) and param.device.type != "meta":
        param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
    _original_register(module, name, param)


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    global _users
    with _lock:
        if _users == 0:
            nn.Module.register_parameter = _register_parameter
        _users += 1
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        with _lock:
            _users -= 1
            if _users == 0:
                nn.Module.register_parameter = _original_register


def on_meta(module: nn.Module) -> list[str]:
    """Names of the parameters and buffers of ``module`` that are still on the meta device (none after a full load)."""
    tensors = [*module.named_parameters(), *module.named_buffers()]
    return [name for name, tensor in tensors if tensor.device == torch.device("meta")]
