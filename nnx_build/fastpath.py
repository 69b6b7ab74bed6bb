"""The fast forward path: split a model once, run one pure ``jax.jit`` function.

``nnx.jit`` splits and merges the module graph on every call (hundreds of
microseconds); splitting once and jitting a pure function of ``(weights, *inputs)``
costs tens. Inference, export and verification all go through :func:`fast_forward`.

The function runs the module in eval mode (``deterministic=True``,
``use_running_average=True``) on a copy: the caller's module is left untouched. RNG
state (``nnx.RngState``) is closed over, never passed or exported; every other
variable (``Param``, ``BatchStat``, declared kinds) is a weight, held in a flat dict
whose keys are the variable paths joined by ``'/'`` (``"linear/kernel"``), the same
keys the ``.npz`` weight files use.

Example:
  >>> import numpy as np, nnx_build
  >>> model = nnx_build.build("specs/seed/model.yaml")          # doctest: +SKIP
  >>> ff = nnx_build.fast_forward(model)                          # doctest: +SKIP
  >>> y = ff(np.zeros((4, 2), np.float32))                        # doctest: +SKIP
  >>> fn, weights = ff                                            # doctest: +SKIP
  >>> y = fn(weights, np.zeros((4, 2), np.float32))               # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np
from flax import nnx

__all__ = ["FastForward", "InputInfo", "fast_forward", "flat_weights", "weight_key"]


def weight_key(path: tuple[Any, ...]) -> str:
    """The flat key of a variable path: its parts joined by ``'/'``."""
    return "/".join(str(p) for p in path)


@dataclass(frozen=True)
class InputInfo:
    """An input of an entry point: name, symbolic shape (str dims are symbolic), dtype."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def _split_eval(model: nnx.Module) -> tuple[Any, Any, list[tuple[tuple[Any, ...], nnx.Variable]]]:
    graphdef, state = nnx.split(model)
    clone = nnx.merge(graphdef, state)  # a copy: eval() must not touch the caller's module
    clone.eval()
    graphdef, rng_state, weight_state = nnx.split(clone, nnx.RngState, ...)
    return graphdef, rng_state, list(nnx.to_flat_state(weight_state))


def flat_weights(model: nnx.Module) -> dict[str, jax.Array]:
    """Every non-RNG variable of ``model`` as ``{"path/to/var": array}``."""
    return {weight_key(p): v.get_value() for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}


@dataclass
class FastForward:
    """A model entry point as one pure, jitted function of ``(weights, *inputs)``.

    Attributes:
      fn: ``jax.jit``-compiled ``fn(weights, *inputs)``; returns what the module returns
        (one array, or a tuple for several outputs). Compiled once per input shape/dtype.
      pure: the same function, not jitted (for ``jax.export``, ``jax2tf``, ``jax2onnx``).
      weights: ``{"path/to/var": array}``, every non-RNG variable.
      method: the method name, or ``None`` for ``__call__``.
      inputs: the entry's inputs (names, symbolic shapes, dtypes) when the module was
        built from a spec; ``()`` otherwise.
      outputs: the entry's output names when known.

    ``fn, weights = fast_forward(model)`` unpacks; ``ff(x)`` calls ``fn(weights, x)``.
    """

    pure: Callable[..., Any]
    weights: dict[str, jax.Array]
    method: str | None = None
    inputs: tuple[InputInfo, ...] = ()
    outputs: tuple[str, ...] = ()
    fn: Callable[..., Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fn = jax.jit(self.pure)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.fn, self.weights))

    def __call__(self, *inputs: Any, **named: Any) -> Any:
        return self.fn(self.weights, *self._positional(inputs, named))

    def _positional(self, inputs: tuple[Any, ...], named: dict[str, Any]) -> tuple[Any, ...]:
        if not named:
            return inputs
        names = [i.name for i in self.inputs]
        unknown = [k for k in named if k not in names]
        if unknown:
            raise TypeError(f"unexpected input(s) {', '.join(unknown)}; inputs are {', '.join(names)}")
        values = dict(zip(names, inputs, strict=False))
        values.update(named)
        missing = [n for n in names if n not in values]
        if missing:
            raise TypeError(f"missing input(s): {', '.join(missing)}")
        return tuple(values[n] for n in names)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    def closed(self, weights: Mapping[str, Any] | None = None) -> Callable[..., Any]:
        """``f(*inputs)`` with the weights closed over (they become constants when traced)."""
        w = dict(self.weights if weights is None else weights)
        pure = self.pure

        def forward(*inputs: Any) -> Any:
            return pure(w, *inputs)

        forward.__name__ = getattr(pure, "__name__", "forward")
        return forward

    def with_weights(self, weights: Mapping[str, Any]) -> FastForward:
        """The same entry point with other weights (same keys, shapes and dtypes)."""
        return FastForward(self.pure, dict(weights), self.method, self.inputs, self.outputs)

    def weight_bytes(self) -> int:
        return int(sum(np.dtype(v.dtype).itemsize * int(np.prod(v.shape)) for v in self.weights.values()))


def _entry_info(model: nnx.Module, method: str | None) -> tuple[tuple[InputInfo, ...], tuple[str, ...]]:
    scope = getattr(model, "nnx_build_scope", None)
    if scope is None:
        return (), ()
    graph = scope.main if method is None else dict(scope.methods).get(method)
    if graph is None:
        return (), ()
    specs = dict(graph.input_specs)
    infos = []
    for name in graph.inputs:
        s = specs.get(name)
        if s is None:
            return (), tuple(graph.outputs)
        infos.append(InputInfo(name, tuple(s.shape), str(s.dtype)))
    return tuple(infos), tuple(graph.outputs)


def fast_forward(model: nnx.Module, method: str | None = None) -> FastForward:
    """Splits ``model`` once into a pure, jitted eval-mode forward function and its weights.

    Args:
      model: any ``nnx.Module`` (a copy is put in eval mode; ``model`` is not changed).
      method: a method name (``"encode"``) instead of ``__call__``.

    Returns:
      a :class:`FastForward`; ``fn, weights = fast_forward(model)`` also works.

    Later changes to ``model``'s weights are not seen: call ``fast_forward`` again.
    """
    if method is not None and not callable(getattr(model, method, None)):
        raise AttributeError(f"{type(model).__name__} has no method '{method}'")
    graphdef, rng_state, flat = _split_eval(model)
    keys = [weight_key(p) for p, _ in flat]
    weights = {k: v.get_value() for k, (_, v) in zip(keys, flat, strict=True)}
    templates = [(p, v) for p, v in flat]
    # RNG variables are rebuilt on every trace, as the weights are: merging the outer
    # Variable objects inside ``jax.jit`` leaves them at the outer trace level, which
    # ``nnx.scan`` over stacked blocks that hold Rngs (Dropout, attention) refuses.
    rng_templates = [(p, v, v.get_value()) for p, v in nnx.to_flat_state(rng_state)]

    def pure(weights: Mapping[str, Any], *inputs: Any) -> Any:
        state = nnx.from_flat_state(
            [(p, v.replace(weights[k])) for k, (p, v) in zip(keys, templates, strict=True)]
        )
        rngs = nnx.from_flat_state([(p, v.replace(value)) for p, v, value in rng_templates])
        module = nnx.merge(graphdef, rngs, state)
        fn = module if method is None else getattr(module, method)
        return fn(*inputs)

    pure.__name__ = method or type(model).__name__
    inputs, outputs = _entry_info(model, method)
    return FastForward(pure, weights, method, inputs, outputs)
