"""The train section resolved against a compiled program: a :class:`Plan`.

Every problem (an unknown output or target, an optimizer argument optax does not take,
an unknown kind in ``wrt``) is collected and raised at once as located ``SpecErrors``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optax
from flax import nnx

from ..errors import SpecError, SpecErrors, did_you_mean
from ..expr import ExprError, substitute
from ..schemas.train import ScheduleSpec, TargetSpec, TrainSpec
from . import registry
from .registry import TrainSetupError

__all__ = ["Plan", "Term", "make_plan"]

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Term:
    """One loss term or metric: ``fn(prediction, target)`` per example."""

    key: str
    fn: Callable[..., Any]
    output: int
    target: str
    weight: float = 1.0


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

    @property
    def metric_keys(self) -> tuple[str, ...]:
        terms = tuple(t.key for t in self.losses) if len(self.losses) > 1 else ()
        return ("loss", *terms, *(m.key for m in self.metrics))

    def make_tx(self, steps_per_epoch: int, epochs: int) -> optax.GradientTransformation:
        """The optax transformation: clipping (if any) chained before the optimizer."""
        names = {**self.spec_args, "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                 "total_steps": max(1, steps_per_epoch * epochs), "batch_size": self.train.batch_size}
        opt = self.train.optimizer
        try:
            kwargs = _values(opt.args, names)
            lr = opt.learning_rate
            if isinstance(lr, ScheduleSpec):
                lr = registry.optax_fn("schedule", lr.type)(**_values(lr.args, names))
            elif lr is not None:
                lr = _values(lr, names)
            if lr is not None:
                kwargs["learning_rate"] = lr
            tx = registry.optax_fn("optimizer", opt.type)(**kwargs)
            if self.train.clip is not None:
                clip = registry.optax_fn("gradient clipping", self.train.clip.type)(**_values(self.train.clip.args, names))
                tx = optax.chain(clip, tx)
        except (TypeError, ValueError, ExprError) as e:
            raise TrainSetupError(f"train: cannot make the optimizer: {e}") from e
        return tx


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

    def resolve(term: Any, path: tuple[Any, ...], fn: Callable[..., Any]) -> tuple[int, str, Callable[..., Any]] | None:
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
        allowed = registry.extra_args(fn)
        for k in term.args:
            if k not in allowed:
                err("unknown-field", f"{term.type} has no argument '{k}'{did_you_mean(k, allowed)}; "
                    f"its arguments: {', '.join(allowed) or '(none)'}", (*path, k))
                ok = False
        if not ok:
            return None
        return out_index, str(target), functools.partial(fn, **_values(term.args, dict(spec.args)))

    losses: list[Term] = []
    for i, term in enumerate(train.losses):
        path = ("train", "loss", i) if len(train.losses) > 1 else ("train", "loss")
        r = resolve(term, path, registry.loss_fn(term.type))
        if r is not None:
            key = term.type if sum(t.type == term.type for t in train.losses) == 1 else f"{term.type}_{i}"
            losses.append(Term(key, r[2], r[0], r[1], term.weight))
    metrics: list[Term] = []
    seen: set[str] = {"loss", *(t.key for t in losses)}
    for i, m in enumerate(train.metrics):
        r = resolve(m, ("train", "metrics", i), registry.metric_fn(m.type))
        key = m.name or m.type
        if key in seen:
            err("duplicate-name", f"metric '{key}' is reported twice; give one a 'name:'", ("train", "metrics", i))
            continue
        seen.add(key)
        if r is not None:
            metrics.append(Term(key, r[2], r[0], r[1]))

    classes = []
    for i, kind in enumerate(train.wrt):
        cls = program.kind_classes.get(kind)
        if cls is None or kind == "Variable":
            choices = [k for k in program.kind_classes if k != "Variable"]
            err("unknown-kind", f"unknown variable kind '{kind}' in wrt{did_you_mean(kind, choices)}; kinds: {', '.join(choices)}",
                ("train", "wrt", i))
        else:
            classes.append(cls)
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
        wrt=nnx.Any(*classes),
        wrt_names=tuple(train.wrt),
    )
