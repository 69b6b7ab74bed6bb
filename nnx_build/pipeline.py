"""The one path from a spec to a module with its weights, one function per stage.

Every command and API entry that builds a model goes through here with one
:class:`Options` object, so a bound raised with ``--limit``, a budget, a plugin, a seed
or a weights file means the same thing to ``build``, ``check``, ``export``, ``train``,
``test`` and ``bench``. A mesh (``--mesh data=2,model=4`` or the spec's ``mesh:``) is
planned by :func:`check` (bytes per device, no device needed) and makes :func:`allocate`
create every weight on its shards::

    setup(options)                      # plugins the user asked for
    spec = load(spec_or_path, options)  # document limits
    program = compile(spec, options)    # references, types, unrolled modules
    report = check(program, options)    # shapes and budgets, no weight allocated
    model = allocate(program, options, nbytes=report.total_bytes)  # out of memory -> OutOfMemoryError;
                                        # options.weights, if any, fill the variables (no random init)
    load_weights(model, options)        # options.weights, when allocate could not (a mesh)

:func:`build` runs them in order. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .loader import Limits

if TYPE_CHECKING:
    from flax import nnx

    from .builder.abstract import Report
    from .builder.module import BuiltModule
    from .builder.program import Program
    from .schemas.spec import Spec
    from .sharding import MeshPlan

__all__ = [
    "Built",
    "Options",
    "allocate",
    "build",
    "check",
    "compile",
    "load",
    "load_weights",
    "make_options",
    "mesh_plan",
    "setup",
]


@dataclass(frozen=True)
class Options:
    """What a user can say about how a spec becomes a module, in one place.

    Attributes:
      limits: bounds on the spec document and the module instances it unrolls to.
      max_params: refuse specs with more parameters than this (checked abstractly).
      max_bytes: refuse specs needing more bytes of variables and example inputs.
      plugins: modules to import first (they register layers).
      entry_points: also load installed ``nnx_build.plugins`` entry points.
      seed: overrides the spec's ``seed``.
      weights: a weights file or checkpoint to load into the built module.
      mesh: mesh axes and sizes, ``(("data", 2), ("model", 4))``, in place of the spec's
        ``mesh: axes`` (its rules still apply); one size may be -1 (the rest).
    """

    limits: Limits = field(default_factory=Limits)
    max_params: int | None = None
    max_bytes: int | None = None
    plugins: tuple[str, ...] = ()
    entry_points: bool = False
    seed: int | None = None
    weights: str | os.PathLike[str] | None = None
    mesh: tuple[tuple[str, int], ...] | None = None

    def replace(self, **changes: Any) -> Options:
        """A copy with ``changes``; ``None`` values leave a field as it is."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Built:
    """What :func:`build` returns: the compiled program, its abstract report, the module."""

    program: Program
    report: Report | None
    model: BuiltModule


_LOADED: set[str] = set()


def setup(options: Options) -> list[str]:
    """Loads the plugins ``options`` names (once per process); a spec never triggers an import."""
    from .plugins import entry_points_requested, load_plugins

    todo = [p for p in options.plugins if p not in _LOADED]
    eps = (options.entry_points or entry_points_requested()) and "<entry points>" not in _LOADED
    loaded = load_plugins(todo, entry_points=eps)
    _LOADED.update(todo)
    if eps:
        _LOADED.add("<entry points>")
    return loaded


def load(spec: Spec | str | os.PathLike[str], options: Options | None = None) -> Spec:
    """Reads and validates the spec document within ``options.limits``."""
    from .spec_io import load_spec

    options = options or Options()
    setup(options)
    return load_spec(spec, limits=options.limits)


def compile(spec: Spec | str | os.PathLike[str], options: Options | None = None) -> Program:  # noqa: A001
    """Resolves a spec into a program; raises ``SpecErrors`` with every problem."""
    from .builder.compiler import compile_spec
    from .spec_io import spec_locator

    options = options or Options()
    spec = load(spec, options)
    return compile_spec(spec, spec_locator(spec), options.limits)


def check(program: Program, options: Options | None = None, *, optimizer: str | None = None) -> Report:
    """Shapes, dtypes and budgets of every step, abstractly: no weight is allocated.

    With a mesh in effect, every logical axis of a ``sharding:`` must be mapped by a rule,
    and ``report.per_device`` holds the bytes the fullest device keeps (plus the state of
    ``optimizer``, an optax name, when given), computed without any device.
    """
    from .builder.abstract import abstract_check
    from .errors import SpecErrors
    from .sharding import logical_axis_errors, plan_per_device
    from .spec_io import spec_locator

    options = options or Options()
    locate = spec_locator(program.spec)
    report, abstract = abstract_check(program, locate, max_params=options.max_params, max_bytes=options.max_bytes)
    plan = mesh_plan(program, options)
    if plan is not None:
        if errors := logical_axis_errors(abstract, plan, locate):
            raise SpecErrors(errors)
        report.per_device = plan_per_device(abstract, plan, optimizer=optimizer).to_json()
    return report


def mesh_plan(program: Program | Spec, options: Options | None = None) -> MeshPlan | None:
    """The mesh in effect: ``options.mesh`` (``--mesh``) or the spec's ``mesh:`` section, else None."""
    from .sharding import mesh_plan as _plan

    options = options or Options()
    spec = getattr(program, "spec", program)
    return _plan(spec, options.mesh)


def check_sections(program: Program) -> None:
    """The sections a build does not read (``train:``, ``tests:``), validated as
    ``nnx-build train`` and ``nnx-build test`` would, without running them.

    Raises:
      SpecErrors: every problem of those sections, located.
    """
    from .errors import SpecErrors
    from .testing.cases import validate_tests
    from .training.plan import validate_train

    if errors := [*validate_train(program.spec, program), *validate_tests(program.spec, program)]:
        raise SpecErrors(errors)


def allocate(
    program: Program, options: Options | None = None, *, nbytes: int | None = None, rngs: nnx.Rngs | None = None
) -> BuiltModule:
    """Builds the eager module; running out of memory is an :class:`~nnx_build.errors.OutOfMemoryError` (exit 2).

    With a mesh of more than one device every weight is created on its shards; a mesh
    larger than the machine is an error naming the flag that simulates devices.
    ``options.weights`` fills the variables directly (no random initialisation first: the
    peak memory is the weights plus about one tensor), on a mesh each tensor straight onto
    its shards, and :func:`load_weights` then has nothing left to do.
    """
    from flax import nnx

    from .builder.allocation import allocate as _allocate

    options = options or Options()
    if rngs is None:
        rngs = nnx.Rngs(program.spec.seed if options.seed is None else options.seed)
    plan = mesh_plan(program, options)
    shardings: Callable[[Any], Any] | None = None
    if plan is not None:
        from .sharding import make_mesh

        mesh = make_mesh(plan)
        if mesh.size > 1:  # the devices are there (or a clear error); one device: the plain build
            from .sharding import named_shardings, sharded_instantiate

            if options.weights is None:
                make = functools.partial(sharded_instantiate, program, plan, rngs=rngs)
                return _allocate(program, rngs=rngs, nbytes=nbytes, make=make)
            shardings = functools.partial(named_shardings, plan=plan, mesh=mesh)
    if options.weights is not None:  # filled from the file, no random initialisation first
        from .weights import build_loaded

        make = functools.partial(build_loaded, program, options.weights, rngs=rngs, shardings=shardings)
        return _allocate(program, rngs=rngs, nbytes=nbytes, make=make)
    return _allocate(program, rngs=rngs, nbytes=nbytes)


def load_weights(model: Any, options: Options | None = None, program: Program | None = None) -> Any:
    """Loads ``options.weights`` (if given) into ``model``; every name, shape and dtype checked first.

    With the ``program`` the module was built from, the spec's ``weights:`` mapping applies.
    """
    options = options or Options()
    if options.weights is not None:
        from .weights import built_from
        from .weights import load_weights as _load

        if built_from(model) != os.fspath(options.weights):  # allocate did not already fill it from them
            _load(model, options.weights, program=program)
    return model


def build(
    spec: Spec | str | os.PathLike[str] | Program,
    options: Options | None = None,
    *,
    rngs: nnx.Rngs | None = None,
    check_first: bool = True,
) -> Built:
    """Every stage in order: setup, load, compile, check, allocate, load weights."""
    from .builder.program import Program

    options = options or Options()
    program = spec if isinstance(spec, Program) else compile(spec, options)
    report = check(program, options) if check_first else None
    model = allocate(program, options, nbytes=report.total_bytes if report else None, rngs=rngs)
    load_weights(model, options, program)
    return Built(program, report, model)


def make_options(
    options: Options | None = None,
    *,
    limits: Limits | None = None,
    max_params: int | None = None,
    max_bytes: int | None = None,
    plugins: Iterable[str] | None = None,
    entry_points: bool | None = None,
    seed: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    mesh: tuple[tuple[str, int], ...] | None = None,
) -> Options:
    """``options`` (or the defaults) with the keyword arguments that are not ``None`` applied."""
    base = options or Options()
    return base.replace(
        limits=limits,
        max_params=max_params,
        max_bytes=max_bytes,
        plugins=tuple(plugins) if plugins is not None else None,
        entry_points=entry_points,
        seed=seed,
        weights=weights,
        mesh=tuple(mesh) if mesh is not None else None,
    )
