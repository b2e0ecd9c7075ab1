"""DeePMD-style embedding and fitting networks (residual tanh MLPs).

A layer computes ``y = phi(x @ W + b)``, optionally scaled by a trainable time step ``idt``
(``resnet_dt``), plus a residual ``x`` when the width is unchanged or ``[x, x]`` when it doubles.
Weights are stored as ``(n_in, n_out)`` as in DeePMD-kit, so parameters can be copied 1:1.
Initialisation follows DeePMD-kit: ``W ~ N(0, 1/(n_in + n_out))``, ``b ~ N(0, 1)``,
``idt ~ N(0.1, 0.001^2)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "DenseLayer", "EmbeddingNet", "FittingNet"]

#: Activation functions by DeePMD name.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "gelu": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "relu": torch.relu,
    "softplus": nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "linear": lambda x: x,
    "none": lambda x: x,
}


def _activation(name: str | None) -> Callable[[torch.Tensor], torch.Tensor]:
    key = "none" if name is None else name.lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation_function {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]


class DenseLayer(nn.Module):
    """One DeePMD layer, input ``(..., n_in)`` to output ``(..., n_out)``."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation_function: str | None = "tanh",
        resnet: bool = False,
        use_timestep: bool = False,
        bias: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if n_in <= 0 or n_out <= 0:
            raise ValueError(f"layer widths must be positive, got {n_in} -> {n_out}")
        self.activation_function = activation_function or "none"
        self._act = _activation(activation_function)
        self.resnet = resnet
        self.matrix = nn.Parameter(
            torch.randn(n_in, n_out, generator=generator, dtype=dtype) / (n_in + n_out) ** 0.5
        )
        self.bias = nn.Parameter(torch.randn(n_out, generator=generator, dtype=dtype)) if bias else None
        timestep = use_timestep and (n_out == n_in or n_out == 2 * n_in)
        self.idt = (
            nn.Parameter(0.1 + 0.001 * torch.randn(n_out, generator=generator, dtype=dtype))
            if timestep else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.matrix
        if self.bias is not None:
            y = y + self.bias
        y = self._act(y)
        if self.idt is not None:
            y = y * self.idt
        n_in, n_out = self.matrix.shape
        if self.resnet and n_out == n_in:
            y = y + x
        elif self.resnet and n_out == 2 * n_in:
            y = y + torch.cat([x, x], dim=-1)
        return y


class EmbeddingNet(nn.Module):
    """Embedding net ``G``: ``(..., 1)`` -> ``(..., neuron[-1])``; every layer is residual-capable."""

    def __init__(
        self,
        neuron: Sequence[int],
        activation_function: str = "tanh",
        resnet_dt: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        n_in: int = 1,
    ) -> None:
        super().__init__()
        if not neuron:
            raise ValueError("embedding net needs at least one layer")
        widths = [n_in, *neuron]
        self.layers = nn.ModuleList(
            DenseLayer(a, b, activation_function, resnet=True, use_timestep=resnet_dt,
                       generator=generator, dtype=dtype)
            for a, b in zip(widths[:-1], widths[1:])
        )

    @property
    def n_out(self) -> int:
        return int(self.layers[-1].matrix.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class FittingNet(nn.Module):
    """Fitting net: residual hidden layers ``neuron`` then a linear output layer, ``(..., n_in)`` -> ``(..., n_out)``."""

    def __init__(
        self,
        n_in: int,
        neuron: Sequence[int],
        n_out: int = 1,
        activation_function: str = "tanh",
        resnet_dt: bool = False,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        widths = [n_in, *neuron]
        hidden = [
            DenseLayer(a, b, activation_function, resnet=True, use_timestep=resnet_dt,
                       generator=generator, dtype=dtype)
            for a, b in zip(widths[:-1], widths[1:])
        ]
        out = DenseLayer(widths[-1], n_out, None, resnet=False, generator=generator, dtype=dtype)
        self.layers = nn.ModuleList([*hidden, out])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Activations of the last hidden layer, ``(..., neuron[-1])`` (``x`` itself if no hidden layer)."""
        for layer in self.layers[:-1]:
            x = layer(x)
        return x
