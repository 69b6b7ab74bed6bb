"""Weights of built models: save them, load them, into a module or a spec.

>>> model = nnx_build.build("spec.yaml")                   # doctest: +SKIP
>>> nnx_build.save_weights(model, "w.npz")                 # doctest: +SKIP
>>> model2 = nnx_build.load_weights("spec.yaml", "w.npz")  # doctest: +SKIP

Files hold the flat ``{"path/to/var": array}`` dict of every non-RNG variable (keys as
``nnx.to_flat_state`` paths joined by ``'/'``: ``"linear/kernel"``). Formats come from one
table, :data:`~nnx_build.weights.formats.FORMATS` (``safetensors``, ``npz``; ``orbax``: an
``nnx-build train --out`` checkpoint folder; pickle files are refused). Loading checks
every name, shape and dtype before changing anything, and says what does not fit in one
line naming the file and variable.

A checkpoint in another naming (a Hugging Face ``model.safetensors``) goes through the
spec's ``weights:`` mapping (:mod:`nnx_build.weights.mapping`): :func:`check_weights`
matches it against the header without reading a tensor, :func:`load_weights` with
``program=`` reads one tensor at a time, :func:`export_weights` writes a model back under
the checkpoint's names.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import did_you_mean
from .errors import WeightsError
from .formats import FORMATS, TensorSource, WeightFormat, open_source, register_format, st_metadata

__all__ = [
    "FORMATS",
    "WeightFormat",
    "WeightsError",
    "apply_weights",
    "build_loaded",
    "check_weights",
    "export_weights",
    "load_weights",
    "open_weights",
    "read_weights",
    "register_format",
    "save_weights",
    "write_weights",
]


def _format_named(name: str) -> WeightFormat:
    if name not in FORMATS:
        raise WeightsError(f"unknown weights format '{name}'{did_you_mean(name, FORMATS)}; choose from {', '.join(FORMATS)}")
    return FORMATS[name]


def _format_of(path: Path, format: str | None) -> WeightFormat:  # noqa: A002
    if not path.exists():
        raise WeightsError(f"weights file {path} does not exist")
    if format is not None:
        return _format_named(format)
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt
    raise WeightsError(f"{path}: unknown weights format; expected one of: {', '.join(FORMATS)}")


def read_weights(path: str | os.PathLike[str], *, format: str | None = None) -> dict[str, np.ndarray]:  # noqa: A002
    """Reads a weights file (or checkpoint folder) into ``{"path/to/var": array}``."""
    path = Path(path)
    return _format_of(path, format).load(path)


def open_weights(path: str | os.PathLike[str], *, format: str | None = None) -> TensorSource:  # noqa: A002
    """A lazy reader of a weights file: names, shapes and dtypes first, then one tensor at a time."""
    path = Path(path)
    return open_source(path, _format_of(path, format))


def write_weights(weights: Mapping[str, Any], path: str | os.PathLike[str], *, format: str | None = None) -> Path:  # noqa: A002
    """Writes a flat weights dict; the format is ``format`` or the one whose suffix ``path`` has."""
    path = Path(path)
    if format is not None:
        fmt = _format_named(format)
    else:
        writable = [f for f in FORMATS.values() if f.name != "pickle"]  # pickle files are only ever refused
        found = [f for f in writable if f.suffix == path.suffix]
        if not found:
            kinds = ", ".join(f"'{f.suffix}' ({f.name})" if f.suffix else f"a folder ({f.name})" for f in writable)
            raise WeightsError(f"cannot tell the weights format of {path} from its name; use {kinds}, or pass format=")
        fmt = found[0]
    fmt.save(weights, path)
    return path


def save_weights(model_or_weights: Any, path: str | os.PathLike[str], *, format: str | None = None) -> Path:  # noqa: A002
    """Writes every non-RNG variable of a model (or a flat weights dict) to ``path``.

    ``.npz`` is an npz file; a path without a suffix is an orbax checkpoint folder.
    """
    if isinstance(model_or_weights, Mapping):
        weights = model_or_weights
    else:
        from ..fastpath import flat_weights

        weights = flat_weights(model_or_weights)
    return write_weights(weights, path, format=format)


def apply_weights(
    model: Any, weights: Mapping[str, Any], *, source: str = "weights", owned: bool = False, shardings: Mapping[str, Any] | None = None
) -> None:
    """Sets ``model``'s variables from ``weights`` after checking every name, shape and dtype.

    Keys of RNG state (``.../rngs/key``) are ignored. Raises :class:`WeightsError` naming
    each variable that is missing, unknown or of the wrong shape, before changing anything.
    With ``owned`` (arrays read for this call alone) the model may keep using their memory.
    With ``shardings`` (``{key: NamedSharding}``, keys as in ``weights``) each array goes
    straight onto its shards.
    """
    from flax import nnx

    from ..fastpath import weight_key
    from .formats import to_device

    variables = {weight_key(p): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}
    rng_keys = {weight_key(p) for p, _ in nnx.to_flat_state(nnx.state(model, nnx.RngState))}
    problems: list[str] = []
    infos = weights.infos() if isinstance(weights, _Lazy) else None  # shapes from the header, nothing read
    for k, var in variables.items():
        if k not in weights:
            problems.append(f"variable '{k}' {tuple(var.shape)} is missing")
            continue
        shape, dtype = (infos[k].shape, infos[k].dtype) if infos is not None else (np.shape(weights[k]), np.asarray(weights[k]).dtype)
        if tuple(shape) != tuple(var.shape):
            problems.append(f"variable '{k}' has shape {tuple(shape)} in {source}, the model needs {tuple(var.shape)}")
        elif not np.can_cast(dtype, np.dtype(var.dtype), casting="same_kind"):
            problems.append(f"variable '{k}' has dtype {dtype} in {source}, the model needs {np.dtype(var.dtype)}")
    for k in weights:
        if k not in variables and k not in rng_keys:
            problems.append(f"'{k}' in {source} is not a variable of the model{did_you_mean(k, variables)}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WeightsError(f"{source} does not fit the model: " + "; ".join(problems[:3]) + more)
    for k, var in variables.items():
        sharding = shardings.get(k) if shardings is not None else None
        var.set_value(to_device(weights[k], var.dtype, owned=owned or isinstance(weights, _Lazy), sharding=sharding))  # a lazy source reads one tensor here


class _Lazy(Mapping[str, Any]):
    """The tensors of a lazy source as a read-only mapping: each read when looked up."""

    def __init__(self, source: TensorSource):
        self._source = source
        self._infos = source.infos()

    def infos(self) -> dict[str, Any]:
        return self._infos

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._infos:
            raise KeyError(key)
        return self._source.read(key)

    def __contains__(self, key: object) -> bool:  # from the header (Mapping's own would read the tensor)
        return key in self._infos

    def __iter__(self) -> Any:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)


def load_weights(
    model: Any, path: str | os.PathLike[str], *, format: str | None = None, program: Any = None, shardings: Mapping[str, Any] | None = None  # noqa: A002
) -> Any:
    """Loads a weights file into a built module (changed in place) and returns the module.

    With ``program`` (the module's compiled spec) whose spec has a ``weights:`` mapping,
    the file's tensors go through it, one tensor read at a time; every name, shape and
    dtype is checked from the header first. A file whose names are the model's own
    variable names (``nnx-build train --out``, :func:`save_weights`) is loaded as it is,
    so a model fine-tuned from a mapped checkpoint loads its own checkpoint.
    :func:`nnx_build.load_weights` also takes a spec, built first. With ``shardings``
    (``{key: NamedSharding}``, keys as the file's own names) each tensor goes straight
    onto its shards as it is read.

    Raises:
      WeightsError: unreadable file, or a variable missing, unknown, of another shape or dtype.
      SpecErrors: with a mapping, every problem located at its rule.
    """
    if program is not None and program.spec.weights is not None:
        from flax import nnx

        from ..fastpath import weight_key
        from .mapping import load_plan

        variables = {weight_key(p): v for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.RngState)))}
        shapes = {k: (tuple(v.get_value().shape), np.dtype(v.get_value().dtype)) for k, v in variables.items()}
        fresh = frozenset(k for k, v in variables.items() if isinstance(v, nnx.LoRAParam))
        with open_weights(path, format=format) as source:
            if not _own_names(source, shapes):
                load_plan(_plan(program, shapes, source, fresh=fresh), source, variables, shardings)
                return model
    fmt = _format_of(Path(path), format)
    if fmt.open is None:
        apply_weights(model, fmt.load(Path(path)), source=str(path), owned=True, shardings=shardings)
        return model
    with fmt.open(Path(path)) as source:  # checked from the header, then read one tensor at a time
        apply_weights(model, _Lazy(source), source=str(path), shardings=shardings)
    return model


_BUILT_FROM: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def build_loaded(
    program: Any,
    path: str | os.PathLike[str],
    *,
    rngs: Any,
    format: str | None = None,  # noqa: A002
    shardings: Callable[[Any], Mapping[tuple[Any, ...], Any]] | None = None,
) -> Any:
    """The module of ``program`` with its variables from the weights file ``path``, never
    initialised randomly first.

    The file is checked against the model from its header (as :func:`check_weights`
    does); the module is then made abstractly, with its RNG state (and any variable the
    file does not fill, such as LoRA adapters over a pretrained base) computed as the
    normal build computes it from ``rngs``, and each variable is set from the file one
    tensor at a time. Peak memory is the weights plus about one tensor; the module is
    the one :func:`load_weights` gives after a normal build with the same ``rngs``.

    ``shardings`` (on a device mesh) gives, from the abstract module, each variable's
    sharding by state path (:func:`nnx_build.sharding.named_shardings`): each tensor
    read goes straight onto its shards, and the variables the file does not fill are
    put on theirs, so no device ever holds a full copy of a sharded variable.
    """
    from flax import nnx

    from ..builder.module import instantiate_abstract
    from ..fastpath import weight_key

    shapes, fresh = model_variables(program)
    keep: frozenset[str] = frozenset()
    if program.spec.weights is not None and fresh:
        with open_weights(path, format=format) as source:
            if not _own_names(source, shapes):  # adapters the mapping does not fill keep their initialiser
                keep = fresh - {u.slot.var for u in _plan(program, shapes, source, fresh=fresh).uses}
    model = instantiate_abstract(program, rngs=rngs, keep=lambda p: weight_key(p) in keep)
    placed = None if shardings is None else {weight_key(p): s for p, s in shardings(model).items()}
    load_weights(model, path, format=format, program=program, shardings=placed)
    import jax

    flat = nnx.to_flat_state(nnx.state(model))
    empty = [weight_key(p) for p, v in flat if isinstance(v.get_value(), jax.ShapeDtypeStruct)]
    if empty:
        raise WeightsError(f"{path} left variable(s) {', '.join(empty[:3])} of '{program.spec.name}' without a value")
    if placed is not None:  # the RNG state and the adapters the file does not fill: computed on one device
        for p, v in flat:
            if isinstance(v, nnx.RngState) or weight_key(p) in keep:
                v.set_value(_place(v.get_value(), placed[weight_key(p)]))
    _BUILT_FROM[model] = os.fspath(path)
    return model


def _place(value: Any, sharding: Any) -> Any:
    """An array of this process' device on ``sharding``, through host memory: with several
    processes a device array cannot be put on the devices of the others (a host array can:
    each process gives the shards of its own devices)."""
    import jax

    if jax.numpy.issubdtype(value.dtype, jax.dtypes.prng_key):  # RNG keys: their bits, wrapped again
        bits = jax.device_put(np.asarray(jax.random.key_data(value)), sharding)
        return jax.random.wrap_key_data(bits, impl=jax.random.key_impl(value))
    return jax.device_put(np.asarray(value), sharding)


def built_from(model: Any) -> str | None:
    """The weights file :func:`build_loaded` made ``model`` from, if it did."""
    return _BUILT_FROM.get(model)


def model_variables(program: Any) -> tuple[dict[str, tuple[tuple[int, ...], np.dtype]], frozenset[str]]:
    """Every non-RNG variable of ``program``'s module (shape and dtype, from the abstract
    build), and the keys of its LoRA adapters (``LoRAParam``: not in a pretrained checkpoint)."""
    from flax import nnx

    from ..builder.init_trace import trace_init
    from ..fastpath import weight_key

    abstract = trace_init(program, nnx.Rngs(program.spec.seed)).abstract()
    flat = [(weight_key(p), v) for p, v in nnx.to_flat_state(nnx.state(abstract, nnx.Not(nnx.RngState)))]
    shapes = {k: (tuple(v.get_value().shape), np.dtype(v.get_value().dtype)) for k, v in flat}
    return shapes, frozenset(k for k, v in flat if isinstance(v, nnx.LoRAParam))


def _mapping(program: Any) -> Any:
    from ..spec_io import spec_locator
    from .mapping import compile_mapping

    spec = program.spec
    locate = spec_locator(spec)
    if spec.weights is None:
        return None
    if not isinstance(spec.weights, str):
        return compile_mapping(spec.weights, locate, ("weights",), "weights.map")
    return compile_mapping(*_mapping_file(spec.weights, locate(("weights",))), "map")


def _mapping_file(name: str, at: Any) -> tuple[Any, Any, tuple[Any, ...]]:
    """A mapping in its own YAML file: its parsed model, locator and root path."""
    from pydantic import ValidationError

    from ..errors import SpecError, SpecErrors
    from ..loader import parse_document, read_source
    from ..schemas.weights import WeightsMapping
    from .mapping import relative_mapping_file

    path = relative_mapping_file(at.file, name)
    if not path.is_file():
        raise SpecErrors([SpecError("file-not-found", f"weights mapping file {path} does not exist", at)])
    text, file = read_source(path)
    doc = parse_document(text, file)
    try:
        mapping = WeightsMapping.model_validate(doc.data)
    except ValidationError as e:
        raise SpecErrors(
            [SpecError("invalid-weights", f"{'.'.join(map(str, err['loc'])) or 'mapping'}: {err['msg']}", doc.locate(tuple(err["loc"])))
             for err in e.errors()]
        ) from None
    return mapping, doc.locate, ()


def _own_names(source: TensorSource, variables: Mapping[str, Any]) -> bool:
    """Does the file name its tensors as the model's variables (an nnx-build checkpoint)?"""
    return set(source.infos()) == set(variables)


def _plan(
    program: Any, variables: Mapping[str, Any], source: TensorSource, *, mapped: bool | None = None, fresh: frozenset[str] = frozenset()
) -> Any:
    from ..spec_io import spec_locator
    from .mapping import identity_rules, make_plan, model_slots

    if mapped is None:
        mapped = not _own_names(source, variables)
    mapping = _mapping(program) if mapped else None
    ctx = mapping or identity_rules(variables, spec_locator(program.spec)(()))
    slots = model_slots(program.root, variables)
    return make_plan(ctx, slots, variables, source.infos(), str(source.path), fresh if mapping else frozenset())


def check_weights(program: Any, path: str | os.PathLike[str], *, format: str | None = None) -> Any:  # noqa: A002
    """Checks a weights file against ``program`` (its ``weights:`` mapping, or the variable
    names) from the file's header: no tensor is read, nothing is allocated.

    Returns:
      the :class:`~nnx_build.weights.mapping.Plan` (``plan.nbytes``: bytes it would read).
    Raises:
      SpecErrors: every problem, located at its rule of the mapping.
    """
    shapes, fresh = model_variables(program)
    with open_weights(path, format=format) as source:
        return _plan(program, shapes, source, fresh=fresh)


def export_weights(model: Any, program: Any, like: str | os.PathLike[str], out: str | os.PathLike[str], *, format: str | None = None) -> Path:  # noqa: A002
    """Writes ``model``'s weights to ``out`` under the names of checkpoint ``like``.

    Each tensor goes through the inverse of the spec's ``weights:`` mapping (every
    transform undone, split parts joined, scanned copies unstacked, LoRA adapters merged
    into their layer's kernel) with ``like``'s dtype;
    the tensors it ignores (buffers such as ``position_ids``) are copied from it. Loading
    ``like`` and exporting gives back its tensors bit for bit.

    Raises:
      SpecErrors: ``like`` does not fit the mapping (every problem located).
    """
    from ..errors import NnxBuildError
    from ..fastpath import flat_weights
    from .mapping import export_plan

    if program.spec.weights is None:
        raise NnxBuildError(f"spec '{program.spec.name}' has no weights: mapping; the model's own names are written by save_weights")
    values = {k: np.asarray(v) for k, v in flat_weights(model).items()}
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in values.items()}
    adapters = frozenset(k for k in values if k.endswith(("/lora_a", "/lora_b")))
    for key in [k for k in values if k.endswith("/base_module/kernel")]:
        # a LoRA layer computes x @ kernel + x @ lora_a @ lora_b: its kernel goes out merged
        prefix = key[: -len("/base_module/kernel")]
        if f"{prefix}/lora_a" in values and f"{prefix}/lora_b" in values:
            merged = values[key] + np.matmul(values[f"{prefix}/lora_a"], values[f"{prefix}/lora_b"])
            values[key] = merged.astype(values[key].dtype)
    with open_weights(like) as source:
        plan = _plan(program, shapes, source, mapped=True, fresh=adapters)
        tensors = export_plan(plan, values, source)
        metadata = st_metadata(source)
    out = Path(out)
    if (format or ("safetensors" if out.suffix == ".safetensors" else None)) == "safetensors" and metadata:
        from .formats import save_safetensors

        save_safetensors(tensors, out, metadata=metadata)  # the source's metadata too ({"format": "pt"})
        return out
    return write_weights(tensors, out, format=format)
