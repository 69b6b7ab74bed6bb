"""What an export is made from: a built model, its entry points, and what verification needs.

A :class:`Subject` comes from a spec (compiled, checked, built, weights loaded) or from a
module nnx-build built (possibly changed since: a swapped layer, LoRA): the module carries
its entry points (``nnx_build_scope``: the inputs, outputs and methods of the spec), so
the export follows the module as it is now.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import MAIN, Entry, OutputInfo
from .errors import ConversionError, ExportError
from .manifest import spec_record

__all__ = [
    "Subject",
    "dim_variants",
    "fix_dims",
    "from_model",
    "from_spec",
    "integer_ranges",
    "is_built_module",
    "trace_entries",
    "variant_name",
]

#: what ``dims=`` takes: one set of fixed dims, or several (one static variant of every entry each)
Dims = Mapping[str, int] | Sequence[Mapping[str, int]] | None


@dataclass
class Subject:
    """A model to export and what the manifest says about where it came from."""

    model: Any
    scope: Any  # the root ``Scope``: main graph, methods, input specs
    dims: dict[str, int] = field(default_factory=dict)
    seed: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)


def is_built_module(obj: Any) -> bool:
    """True for a module nnx-build built (it carries its spec's entry points)."""
    return getattr(obj, "nnx_build_scope", None) is not None and callable(obj)


def from_spec(
    spec: Any,
    seed: int | None,
    weights: str | os.PathLike[str] | None,
    *,
    step: int | None = None,
    options: Any = None,
) -> Subject:
    """Compiles, checks and builds ``spec`` through the pipeline, then loads ``weights`` (the checkpoint's ``step``).

    ``options`` (a :class:`nnx_build.pipeline.Options`) carries limits, budgets and plugins.
    """
    from .. import pipeline

    opts = pipeline.make_options(options, seed=seed, weights=None if weights is None else _step_path(weights, step))
    built = pipeline.build(spec, opts)  # the variables come from the weights (no random initialisation first)
    program = built.program
    seed = program.spec.seed if opts.seed is None else opts.seed
    return Subject(built.model, program.root, dict(program.dims), seed, spec_record(spec, program.spec.name))


def from_model(model: Any, weights: str | os.PathLike[str] | None) -> Subject:
    """A built module as it is now; ``weights`` are loaded into a copy (``model`` is not changed)."""
    if not is_built_module(model):
        raise ExportError(
            f"cannot export a {type(model).__name__}: pass a spec (path, text or Spec) or a module built by "
            "nnx_build.build (it carries the inputs, outputs and methods the export needs)"
        )
    if weights is not None:
        from flax import nnx

        model = nnx.clone(model)
        _load_weights(model, weights, None)
    scope = model.nnx_build_scope
    record = {"name": scope.name, "path": None, "sha256": None, "source": "module"}
    return Subject(model, scope, {}, None, record)


def _step_path(weights: str | os.PathLike[str], step: int | None) -> Path:
    path = Path(weights)
    if step is not None and path.is_dir() and (path / str(step)).is_dir():
        path = path / str(step)  # the checkpoint step that was exported, not the latest
    return path


def _load_weights(model: Any, weights: str | os.PathLike[str], step: int | None, program: Any = None) -> None:
    from ..weights import load_weights

    load_weights(model, _step_path(weights, step), program=program)


def fix_dims(inputs: tuple[Any, ...], dims: dict[str, int]) -> tuple[Any, ...]:
    """``inputs`` with the named dims in ``dims`` replaced by their concrete sizes."""
    from dataclasses import replace

    return tuple(replace(i, shape=tuple(dims.get(d, d) if isinstance(d, str) else d for d in i.shape)) for i in inputs)


def _check_dims(dims: dict[str, int], known: set[str]) -> None:
    from ..errors import did_you_mean

    for name, size in dims.items():
        if name not in known:
            have = f"the inputs' named dims are {', '.join(sorted(known))}" if known else "the inputs have no named dims"
            raise ExportError(f"unknown dim '{name}'{did_you_mean(name, sorted(known))}; {have}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ExportError(f"dim '{name}' must be a positive integer, received {size!r}")


def dim_variants(dims: Dims) -> list[dict[str, int]]:
    """``dims=`` as a list of variants: ``{"batch": 1}`` is one, ``[{"batch": 1}, {"batch": 8}]`` two, ``None`` none."""
    if dims is None or isinstance(dims, Mapping) and not dims:
        return []
    items = [dims] if isinstance(dims, Mapping) else list(dims)
    out: list[dict[str, int]] = []
    for d in items:
        if not isinstance(d, Mapping):
            raise ExportError(f"dims takes a mapping of dim names to sizes or a list of them, received {d!r}")
        variant = {str(k): v for k, v in d.items()}
        if not variant:
            raise ExportError("dims: a variant fixes no dim; give at least one NAME=SIZE")
        if variant in out:
            raise ExportError(f"dims: the variant {_text(variant)} is given twice")
        out.append(variant)
    return out


def variant_name(entry: str, dims: Mapping[str, int]) -> str:
    """The name of ``entry``'s static variant at ``dims``: ``main_batch1``, ``encode_batch8_seq128`` (dims sorted by name)."""
    return "_".join([entry, *(f"{d}{n}" for d, n in sorted(dims.items()))])


def _text(dims: Mapping[str, int]) -> str:
    return ",".join(f"{d}={n}" for d, n in dims.items())


def trace_entries(model: Any, scope: Any, dims: Dims = None) -> list[Entry]:
    """``main`` (``__call__``) and every spec method, traced with symbolic shapes.

    ``dims`` fixes named dims to concrete sizes (``{"batch": 1}``): those are static in
    every entry's inputs and outputs; a name no input uses is an :class:`ExportError`.
    Several variants (``[{"batch": 1}, {"batch": 8}]``) give one entry per entry point and
    variant, named by :func:`variant_name` (``main_batch1``, ``main_batch8``), each
    recording the entry it is a variant of and its fixed dims.
    """
    from ..fastpath import fast_forward

    found = []
    for method in [None, *(m for m, _ in scope.methods)]:
        name = MAIN if method is None else method
        if method == MAIN:
            raise ExportError(f"method name '{MAIN}' is reserved by the exporters for __call__; rename the method")
        ff = fast_forward(model, method)
        graph = scope.main if method is None else dict(scope.methods)[method]
        if len(ff.inputs) != len(graph.inputs):
            missing = [n for n in graph.inputs if n not in dict(graph.input_specs)]
            raise ExportError(f"entry '{name}': input(s) {', '.join(missing)} have no shape and dtype in the spec; declare them to export")
        found.append((name, ff))
    variants = dim_variants(dims)
    known = {d for _, ff in found for i in ff.inputs for d in i.shape if isinstance(d, str)}
    for variant in variants:
        _check_dims(variant, known)
    several = len(variants) > 1
    names = {name for name, _ in found}
    entries = []
    for name, ff in found:
        for variant in variants if variants else [{}]:
            inputs = fix_dims(ff.inputs, variant)
            label = f"entry '{name}'" + (f" at {_text(variant)}" if several else "")
            entry_name = variant_name(name, variant) if several else name
            if several and entry_name in names:
                raise ExportError(f"the static variant {entry_name} of entry '{name}' has the name of another entry; rename the method")
            entry = Entry(entry_name, ff, inputs, _outputs(ff, inputs, label))
            if several:
                entry.variant_of, entry.static_dims = name, dict(variant)
            entries.append(entry)
    return entries


def _outputs(ff: Any, inputs: tuple[Any, ...], label: str) -> tuple[OutputInfo, ...]:
    import jax

    from .common import symbolic_args

    try:
        shapes = jax.eval_shape(ff.closed(), *symbolic_args(inputs))
    except Exception as e:
        raise ConversionError(f"{label} cannot be traced with symbolic shapes: {e}") from e
    leaves = tuple(shapes) if isinstance(shapes, tuple | list) else (shapes,)
    out_names = list(ff.outputs)
    if len(out_names) != len(leaves):
        out_names = [f"output_{i}" for i in range(len(leaves))]
    # an unnamed step's value (``_relu_3``) is exported as ``output`` / ``output_<i>``
    out_names = [n if not n.startswith("_") else ("output" if len(leaves) == 1 else f"output_{i}") for i, n in enumerate(out_names)]
    return tuple(
        OutputInfo(n, tuple(d if isinstance(d, int) else str(d) for d in s.shape), str(s.dtype))
        for n, s in zip(out_names, leaves, strict=True)
    )


# ---- integer inputs: their real range -----------------------------------------------------


def integer_ranges(model: Any, scope: Any) -> dict[str, dict[str, list[int]]]:
    """``{entry: {input: [low, high)}}`` for inputs an ``Embed`` consumes (``[0, num_embeddings)``).

    Walks the compiled graphs (into blocks); the embedding size is read from the module as
    it is now, so a swapped embedding is followed. An input read by several embeddings
    gets the smallest size.
    """
    out: dict[str, dict[str, list[int]]] = {}
    for method in [None, *(m for m, _ in scope.methods)]:
        graph = scope.main if method is None else dict(scope.methods)[method]
        found: dict[str, int] = {}
        _walk(model, graph, {n: n for n in graph.inputs}, found)
        if found:
            out[MAIN if method is None else method] = {k: [0, v] for k, v in found.items()}
    return out


def _walk(module: Any, graph: Any, origin: dict[str, str], found: dict[str, int]) -> None:
    """Records ``found[input] = num_embeddings`` for each input of the outer graph an Embed reads."""
    for node in graph.nodes:
        args = [*node.args, *(v for _, v in node.kwargs)]
        reads = [origin[a] for a in args if a in origin]
        if not reads or node.kind not in ("layer", "block") or node.repeat is not None:
            continue
        sub = getattr(module, node.name, None)
        if node.kind == "layer":
            size = _num_embeddings(sub, node)
            if size is not None:
                for name in reads:
                    found[name] = min(size, found.get(name, size))
        elif node.block is not None and sub is not None:
            inner = node.block.main
            mapping = {i: origin[a] for i, a in zip(inner.inputs, node.args, strict=False) if a in origin}
            mapping.update({k: origin[v] for k, v in node.kwargs if v in origin})
            if mapping:
                _walk(sub, inner, mapping, found)


def _num_embeddings(layer: Any, node: Any) -> int | None:
    size = getattr(layer, "num_embeddings", None)
    if size is None and node.type == "Embed":
        size = getattr(node.config, "num_embeddings", None)
    return int(size) if isinstance(size, int) and size > 0 else None
