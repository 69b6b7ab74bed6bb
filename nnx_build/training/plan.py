"""The train section resolved against a compiled program: a :class:`Plan`.

Every problem (an unknown output or target, an optimizer argument optax does not take,
an unknown kind in ``wrt``) is collected and raised at once as located ``SpecErrors``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optax
from flax import nnx

from ..errors import SpecError, SpecErrors, did_you_mean
from ..expr import ExprError, substitute
from ..schemas.train import ScheduleSpec, TargetSpec, TrainSpec
from . import objectives, registry
from .objectives import Objective
from .registry import TrainSetupError

__all__ = ["Plan", "Term", "make_plan", "validate_train"]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Term:
    """One loss term or metric: ``fn(prediction, target)`` per example."""

    key: str
    fn: Callable[..., Any]
    output: int
    target: str
    weight: float = 1.0
    #: what the target holds: "values", "labels" or "labels_or_values" (see objectives)
    target_kind: str = "values"
    #: where the term is in the spec
    path: tuple[Any, ...] = ()


@dataclass
class Plan:
    """What a training run needs besides the model and the data."""

    train: TrainSpec
    spec_args: dict[str, Any]
    inputs: tuple[str, ...]
    input_specs: dict[str, Any]
    outputs: tuple[str, ...]
    targets: dict[str, TargetSpec]
    losses: tuple[Term, ...]
    metrics: tuple[Term, ...]
    wrt: Any
    wrt_names: tuple[str, ...]
    wrt_exclude: tuple[str, ...] = ()
    #: a hash of the spec's model (everything but train:, tests: and docs)
    model_hash: str = ""

    @property
    def metric_keys(self) -> tuple[str, ...]:
        terms = tuple(t.key for t in self.losses) if len(self.losses) > 1 else ()
        return ("loss", *terms, *(m.key for m in self.metrics))

    @property
    def wrt_description(self) -> str:
        """``Param`` or ``Param but not Frozen``."""
        text = ", ".join(self.wrt_names)
        return text + (f" but not {', '.join(self.wrt_exclude)}" if self.wrt_exclude else "")

    def _names(self, steps_per_epoch: int, epochs: int) -> dict[str, Any]:
        return {**self.spec_args, "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                "total_steps": max(1, steps_per_epoch * epochs), "batch_size": self.train.batch_size}

    def fingerprint(self, steps_per_epoch: int, data: Any) -> dict[str, str]:
        """What a resumed run must share with its checkpoint: model, optimizer, schedule, setup, data.

        The optimizer and schedule are shown as calls with their resolved arguments
        (``adamw(weight_decay=0.0001)``, ``cosine_decay_schedule(init_value=0.01, decay_steps=660)``),
        so a refused resume can say what changed; the model and the data are hashes.
        """
        from .checks import data_digest

        t = self.train
        names = self._names(steps_per_epoch, t.epochs)
        try:
            opt = _call(t.optimizer.type, _values(t.optimizer.args, names))
            if t.clip is not None:
                opt = f"{_call(t.clip.type, _values(t.clip.args, names))} then {opt}"
            lr = t.optimizer.learning_rate
            schedule = _call(lr.type, _values(lr.args, names)) if isinstance(lr, ScheduleSpec) else f"learning_rate={_values(lr, names)}"
        except ExprError as e:
            raise TrainSetupError(f"train: cannot resolve the optimizer's arguments: {e}") from e
        losses = ", ".join(f"{x.key}*{x.weight:g}" if x.weight != 1 else x.key for x in self.losses)
        setup = (f"loss {losses}; wrt {self.wrt_description}; batch_size {t.batch_size}; seed {t.seed}; "
                 f"eval_split {t.eval_split:g}; shuffle {t.shuffle}")
        return {"spec": self.model_hash, "optimizer": opt, "schedule": schedule, "training": setup, "data": data_digest(data)}

    def learning_rate(self, steps_per_epoch: int, epochs: int) -> Any:
        """The optimizer's learning rate: an optax schedule (step -> rate), a number, or None."""
        names = self._names(steps_per_epoch, epochs)
        lr = self.train.optimizer.learning_rate
        if isinstance(lr, ScheduleSpec):
            return registry.optax_fn("schedule", lr.type)(**_values(lr.args, names))
        return None if lr is None else _values(lr, names)

    def make_tx(self, steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
        """The optax transformation: clipping (if any) chained before the optimizer."""
        names = self._names(steps_per_epoch, epochs)
        opt = self.train.optimizer
        try:
            kwargs = _values(opt.args, names)
            lr = self.learning_rate(steps_per_epoch, epochs)
            if lr is not None:
                kwargs["learning_rate"] = lr
            tx = registry.optax_fn("optimizer", opt.type)(**kwargs)
            if self.train.clip is not None:
                clip = registry.optax_fn("gradient clipping", self.train.clip.type)(**_values(self.train.clip.args, names))
                tx = optax.chain(clip, tx)
        except (TypeError, ValueError, ExprError) as e:
            raise TrainSetupError(f"train: cannot make the optimizer: {e}") from e
        return tx


def _call(name: str, kwargs: dict[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in sorted(kwargs.items()))})"


def _model_hash(spec: Any) -> str:
    """A hash of what builds the model: the spec without train:, tests:, budgets and docs."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "doc"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    exclude = {"train", "tests", "doc", "max_params", "max_bytes", "methods"}
    try:
        dumped = spec.model_dump(mode="json", exclude=exclude)
    except (TypeError, ValueError):  # a value pydantic cannot turn into JSON: its str() is stable enough
        dumped = spec.model_dump(exclude=exclude)
    text = json.dumps(strip(dumped), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _values(value: Any, names: dict[str, Any]) -> Any:
    """``${expressions}`` evaluated; numeric strings (YAML's ``1e-3``) become floats."""
    value = substitute(value, names)
    if isinstance(value, dict):
        return {k: _values(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_values(v, names) for v in value]
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    return value


def make_plan(program: Any, locate: Callable[[tuple[Any, ...]], Any] | None = None) -> Plan:
    """Resolves ``program.spec.train``; raises ``SpecErrors`` (all problems, located)."""
    from ..errors import Location

    spec = program.spec
    locate = locate or (lambda path: Location())
    errors: list[SpecError] = []

    def err(code: str, message: str, path: tuple[Any, ...]) -> None:
        errors.append(SpecError(code, message, locate(path), path))

    train: TrainSpec | None = spec.train
    if train is None:
        raise SpecErrors([SpecError("missing-field", "the spec has no 'train:' section; add one (see docs/training.md)", locate(()), ())])
    graph = program.root.main
    inputs, outputs = tuple(graph.inputs), tuple(graph.outputs)
    clash = set(train.targets) & set(inputs)
    for name in sorted(clash):
        err("duplicate-name", f"target '{name}' has the name of a model input; name it differently", ("train", "targets", name))

    # optimizer, schedule, clipping arguments against the optax signatures
    opt = train.optimizer
    fn = registry.optax_fn("optimizer", opt.type)
    given = {**opt.args, **({"learning_rate": 0} if opt.learning_rate is not None else {})}
    for p in registry.check_args(fn, given, f"optimizer '{opt.type}'"):
        err("bad-value", p, ("train", "optimizer"))
    if isinstance(opt.learning_rate, ScheduleSpec):
        sfn = registry.optax_fn("schedule", opt.learning_rate.type)
        for p in registry.check_args(sfn, opt.learning_rate.args, f"schedule '{opt.learning_rate.type}'"):
            err("bad-value", p, ("train", "optimizer", "learning_rate"))
    if train.clip is not None:
        cfn = registry.optax_fn("gradient clipping", train.clip.type)
        for p in registry.check_args(cfn, train.clip.args, f"'{train.clip.type}'"):
            err("bad-value", p, ("train", "clip"))

    def resolve(term: Any, path: tuple[Any, ...], entry: Objective) -> tuple[int, str, Callable[..., Any]] | None:
        ok = True
        out_index = 0
        if term.output is not None:
            if term.output not in outputs:
                err("unknown-ref", f"output '{term.output}' is not an output of the model{did_you_mean(term.output, outputs)}; "
                    f"its outputs: {', '.join(outputs)}", (*path, "output"))
                ok = False
            else:
                out_index = outputs.index(term.output)
        target = term.target
        if target is None:
            if len(train.targets) != 1:
                err("missing-field", f"name the target ('target: ...'); the targets are: {', '.join(train.targets)}", path)
                ok = False
            else:
                target = next(iter(train.targets))
        elif target not in train.targets:
            err("unknown-ref", f"target '{target}' is not declared under train.targets{did_you_mean(target, train.targets)}; "
                f"targets: {', '.join(train.targets)}", (*path, "target"))
            ok = False
        for k, problem in entry.check_args(term.args):
            err("unknown-field" if k not in entry.arguments else "bad-value", problem, (*path, k))
            ok = False
        declared = train.targets.get(target) if target is not None else None
        if entry.target == "labels" and declared is not None and declared.dtype is not None and "int" not in declared.dtype:
            err("bad-value", f"{term.type} takes integer class labels, but target '{target}' is declared {declared.dtype}; "
                f"declare it int32 (targets: {{{target}: int32}})", ("train", "targets", target, "dtype"))
            ok = False
        if not ok:
            return None
        return out_index, str(target), functools.partial(entry.fn, **_values(term.args, dict(spec.args)))

    losses: list[Term] = []
    for i, term in enumerate(train.losses):
        path = ("train", "loss", i) if len(train.losses) > 1 else ("train", "loss")
        entry = objectives.LOSSES[term.type]
        r = resolve(term, path, entry)
        if r is not None:
            key = term.type if sum(t.type == term.type for t in train.losses) == 1 else f"{term.type}_{i}"
            losses.append(Term(key, r[2], r[0], r[1], term.weight, entry.target, path))
    metrics: list[Term] = []
    seen: set[str] = {"loss", *(t.key for t in losses)}
    for i, m in enumerate(train.metrics):
        entry = objectives.METRICS[m.type]
        r = resolve(m, ("train", "metrics", i), entry)
        key = m.name or m.type
        if key in seen:
            err("duplicate-name", f"metric '{key}' is reported twice; give one a 'name:'", ("train", "metrics", i))
            continue
        seen.add(key)
        if r is not None:
            metrics.append(Term(key, r[2], r[0], r[1], 1.0, entry.target, ("train", "metrics", i)))

    choices = [k for k in program.kind_classes if k != "Variable"]
    wrt_path = ("train", "wrt") if isinstance(train.wrt, list) else ("train", "wrt", "include")

    def kind_class(kind: str, path: tuple[Any, ...]) -> Any:
        cls = program.kind_classes.get(kind)
        if cls is None or kind == "Variable":
            err("unknown-kind", f"unknown variable kind '{kind}' in wrt{did_you_mean(kind, choices)}; kinds: {', '.join(choices)}", path)
            return None
        return cls

    include = [c for i, k in enumerate(train.wrt_include) if (c := kind_class(k, (*wrt_path, i))) is not None]
    exclude = []
    for i, kind in enumerate(train.wrt_exclude):
        cls = kind_class(kind, ("train", "wrt", "exclude", i))
        if cls is None:
            continue
        if include and not any(issubclass(cls, inc) for inc in include):
            err("bad-value", f"exclude '{kind}' leaves nothing out: it is not a kind of {', '.join(train.wrt_include)}; "
                "remove it", ("train", "wrt", "exclude", i))
        exclude.append(cls)
    wrt_filter: Any = nnx.Any(*include)
    if exclude:
        wrt_filter = nnx.All(wrt_filter, nnx.Not(nnx.Any(*exclude)))
    if errors:
        raise SpecErrors(errors)
    return Plan(
        train=train,
        spec_args=dict(spec.args),
        inputs=inputs,
        input_specs=dict(graph.input_specs),
        outputs=outputs,
        targets=dict(train.targets),
        losses=tuple(losses),
        metrics=tuple(metrics),
        wrt=wrt_filter,
        wrt_names=tuple(train.wrt_include),
        wrt_exclude=tuple(train.wrt_exclude),
        model_hash=_model_hash(spec),
    )


def validate_train(spec: Any, program: Any) -> list[SpecError]:
    """Every problem of ``spec``'s ``train:`` section, located, without training ([] if none or no section).

    Checks what ``nnx-build train`` checks before reading data: loss and metric outputs,
    targets and arguments, optimizer, schedule and clipping arguments against optax's
    signatures, ``wrt`` kinds. ``nnx-build check`` runs it.
    """
    from ..spec_io import spec_locator

    if getattr(spec, "train", None) is None:
        return []
    locate = spec_locator(spec)
    try:
        plan = make_plan(program, locate)
        plan.make_tx(1, max(1, plan.train.epochs))  # ${...} in the optimizer's and schedule's arguments
    except SpecErrors as e:
        return list(e.errors)
    except TrainSetupError as e:
        return [SpecError("bad-value", str(e), locate(("train", "optimizer")), ("train", "optimizer"))]
    return []
