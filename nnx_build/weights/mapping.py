"""A checkpoint's tensors into a model's variables through the spec's ``weights:`` mapping.

The mapping (:class:`~nnx_build.schemas.weights.WeightsMapping`) is compiled into
:class:`Rule` s; :func:`make_plan` matches them against the model's variables (from the
abstract build: nothing allocated) and the checkpoint's header (no tensor read) and
returns a :class:`Plan` or raises :class:`~nnx_build.errors.SpecErrors` with every
problem, each located at its rule:

- a variable no rule fills, or one filled twice;
- a rule whose target names no variable;
- a tensor a rule expects that the file lacks (with the unused name it probably is);
- a tensor of the file that no rule uses and no ``ignore:`` pattern names;
- a tensor whose shape or dtype, after the rule's split and transforms, is not the
  variable's.

A *slot* is a variable, or one copy of a variable of a ``repeat: N, scan: true`` step:
``encoder/3/attn/query/kernel`` is row 3 of ``encoder/attn/query/kernel``; the tensors of
all copies are stacked into the leading axis. Without ``scan`` the copies are separate
variables with the same path (an ``nnx.List``), so one mapping serves both.

:func:`load_plan` then reads the tensors one at a time, variable by variable, and
:func:`export_plan` runs every transform backwards to write the model's weights under
the checkpoint's names.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Location, SpecError, SpecErrors, did_you_mean
from .formats import TensorInfo, TensorSource
from .transforms import MappingProblem, Transform, parse_transform

__all__ = ["MappingContext", "Plan", "Rule", "Slot", "compile_mapping", "export_plan", "identity_rules", "load_plan", "make_plan", "model_slots"]

_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MAX_PER_RULE = 3  # errors of one kind reported per rule; the rest are counted


# ---- rules -------------------------------------------------------------------------


def _template(text: str, part: str) -> tuple[re.Pattern[str], list[str]]:
    """A name pattern with ``{captures}`` as a regex; each capture matches ``part``."""
    out, names, pos = [], [], 0
    for m in _CAPTURE.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in names else f"(?P<{name}>{part})")
        if name not in names:
            names.append(name)
        pos = m.end()
    out.append(re.escape(text[pos:]))
    rest = _CAPTURE.sub("", text)
    if "{" in rest or "}" in rest:
        raise MappingProblem(f"'{text}': a capture is a name in braces, such as {{i}}")
    return re.compile("".join(out)), names


@dataclass(frozen=True)
class Rule:
    """One compiled ``map`` entry: checkpoint pattern -> target path(s), split and transforms."""

    pattern: str
    targets: tuple[str, ...]
    split: int | None
    transforms: tuple[Transform, ...]
    loc: Location
    regex: re.Pattern[str] = field(repr=False, compare=False)
    target_regexes: tuple[re.Pattern[str], ...] = field(repr=False, compare=False)
    lenient_dtype: bool = False  # identity rules: same-kind casts allowed, as apply_weights does

    def name_for(self, captures: Mapping[str, str]) -> str:
        return _CAPTURE.sub(lambda m: captures[m.group(1)], self.pattern)

    def describe(self) -> str:
        return ", ".join(str(t) for t in self.transforms) or "no transform"


@dataclass(frozen=True)
class MappingContext:
    """A compiled mapping: its rules, ignore patterns, and where to point errors."""

    rules: tuple[Rule, ...]
    ignore: tuple[re.Pattern[str], ...]
    loc: Location  # the mapping itself (errors about the whole: unused tensors, unfilled variables)
    where: str  # 'weights.map' or the mapping file
    identity: bool = False  # no mapping: tensors named as the variables


def compile_mapping(mapping: Any, locate: Callable[[tuple[Any, ...]], Location], root: tuple[Any, ...], where: str) -> MappingContext:
    """Compiles a :class:`WeightsMapping`; raises SpecErrors for bad patterns and transforms."""
    errors: list[SpecError] = []
    rules: list[Rule] = []
    for pattern, value in mapping.map.items():
        at = (*root, "map", pattern)
        to = [value] if isinstance(value, str) else ([value.to] if isinstance(value.to, str) else list(value.to))
        split = None if isinstance(value, str) else value.split
        raw = [] if isinstance(value, str) else value.transforms
        try:
            regex, caps = _template(pattern, r"[^./]+")
            tregs = []
            for t in to:
                treg, tcaps = _template(t, r"[^/]+")
                if set(tcaps) != set(caps):
                    raise MappingProblem(
                        f"target '{t}' has captures {{{', '.join(tcaps)}}}, the pattern has {{{', '.join(caps)}}}: "
                        "both must name the same captures"
                    )
                tregs.append(treg)
            if len(to) > 1 and split is None:
                raise MappingProblem(f"{len(to)} targets split the tensor into parts: say along which axis with split: AXIS")
            if len(to) == 1 and split is not None:
                raise MappingProblem("split: needs a list of targets under to:, one per part")
        except MappingProblem as e:
            errors.append(SpecError("weights-pattern", str(e), locate(at), at))
            continue
        transforms = []
        for k, item in enumerate(raw):
            try:
                transforms.append(parse_transform(item))
            except MappingProblem as e:
                errors.append(SpecError("weights-transform", str(e), locate((*at, "transforms", k)), (*at, "transforms", k)))
        rules.append(Rule(pattern, tuple(to), split, tuple(transforms), locate(at), regex, tuple(tregs)))
    ignore = []
    for k, pattern in enumerate(mapping.ignore):
        try:
            ignore.append(_template(pattern, r"[^./]+")[0])
        except MappingProblem as e:
            errors.append(SpecError("weights-pattern", str(e), locate((*root, "ignore", k)), (*root, "ignore", k)))
    if errors:
        raise SpecErrors(errors)
    return MappingContext(tuple(rules), tuple(ignore), locate(root), where)


def identity_rules(variables: Iterable[str], loc: Location) -> MappingContext:
    """Without a mapping: every variable from the tensor of its own name (``linear/kernel``)."""
    rules = []
    for key in variables:
        regex = re.compile(re.escape(key))
        rules.append(Rule(key, (key,), None, (), loc, regex, (regex,), lenient_dtype=True))
    return MappingContext(tuple(rules), (), loc, "the model's variable names", identity=True)


# ---- slots -------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A variable (``index == ()``) or one copy of a scanned variable (its leading-axis index)."""

    path: str
    var: str
    index: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: np.dtype


def _stacked(scope: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], int]]:
    """Paths of the modules made by ``repeat: N, scan: true`` steps, with N."""
    out: list[tuple[tuple[str, ...], int]] = []
    for node in scope.modules:
        path = (*prefix, str(node.name))
        if node.repeat and node.scan:
            out.append((path, node.repeat))
            if node.block is not None:
                out += _stacked(node.block, path)
        elif node.repeat:
            if node.block is not None:
                for k in range(node.repeat):
                    out += _stacked(node.block, (*path, str(k)))
        elif node.block is not None:
            out += _stacked(node.block, path)
    return out


def model_slots(scope: Any, variables: Mapping[str, tuple[tuple[int, ...], np.dtype]]) -> dict[str, Slot]:
    """Every slot of the model by path: each variable whole, and each copy of a scanned one.

    A layer wrapped by ``lora:`` keeps its weight at ``NAME/base_module/kernel``; that
    variable is also reachable as ``NAME/kernel``, so one mapping serves the plain spec
    and its LoRA variant.
    """
    stacked = _stacked(scope)
    slots: dict[str, Slot] = {}
    for key, (shape, dtype) in variables.items():
        parts = tuple(key.split("/"))
        slots[key] = Slot(key, key, (), shape, dtype)
        if "base_module" in parts[:-1]:
            alias = "/".join(p for p in parts if p != "base_module")
            slots.setdefault(alias, Slot(alias, key, (), shape, dtype))
        mine = sorted((p, n) for p, n in stacked if parts[: len(p)] == p and len(p) < len(parts))
        if not mine:
            continue
        for index in itertools.product(*(range(n) for _, n in mine)):
            out: list[str] = []
            pos = 0
            for (p, _), i in zip(mine, index, strict=True):
                out += [*parts[pos : len(p)], str(i)]
                pos = len(p)
            out += parts[pos:]
            path = "/".join(out)
            slots[path] = Slot(path, key, index, shape[len(index) :], dtype)
            if "base_module" in out[:-1]:
                alias = "/".join(p for p in out if p != "base_module")
                slots.setdefault(alias, Slot(alias, key, index, shape[len(index) :], dtype))
    return slots


# ---- the plan ----------------------------------------------------------------------


@dataclass
class Use:
    """One tensor (or one split part of it) into one slot, with the shapes along the way."""

    rule: Rule
    part: int
    slot: Slot
    tensor: str
    chain: list[tuple[tuple[int, ...], np.dtype]] = field(default_factory=list)  # before each transform


@dataclass
class Plan:
    """Which tensor fills which slot, checked; what the file has that is ignored."""

    file: str
    uses: list[Use]
    infos: dict[str, TensorInfo]
    ignored: list[str]
    variables: dict[str, tuple[tuple[int, ...], np.dtype]]

    @property
    def nbytes(self) -> int:
        return sum(self.infos[t].nbytes for t in {u.tensor for u in self.uses})


def _capped(errors: list[SpecError], per_rule: dict[tuple[Location, str], int], err: SpecError) -> None:
    key = (err.loc, err.code)
    per_rule[key] = per_rule.get(key, 0) + 1
    if per_rule[key] <= _MAX_PER_RULE:
        errors.append(err)


def make_plan(
    ctx: MappingContext,
    slots: Mapping[str, Slot],
    variables: Mapping[str, Any],
    infos: Mapping[str, TensorInfo],
    file: str,
    fresh: frozenset[str] = frozenset(),
) -> Plan:
    """Matches rules, slots and the file's header; raises SpecErrors with every problem.

    No tensor is read: shapes and dtypes come from the header. Variables in ``fresh``
    (LoRA adapters) keep their initial values unless a rule fills them.
    """
    errors: list[SpecError] = []
    counts: dict[tuple[Location, str], int] = {}
    uses: list[Use] = []
    filled: dict[str, dict[tuple[int, ...], Use]] = {}
    claimed: set[str] = set()
    slot_paths = list(slots)
    for rule in ctx.rules:
        for part, treg in enumerate(rule.target_regexes):
            matched = False
            fixed = rule.targets[part]
            candidates = ([fixed] if fixed in slots else []) if not _CAPTURE.search(fixed) else slot_paths
            for path in candidates:
                m = treg.fullmatch(path)
                if m is None:
                    continue
                matched = True
                slot = slots[path]
                use = Use(rule, part, slot, rule.name_for(m.groupdict()))
                have = filled.setdefault(slot.var, {})
                clash = have.get(slot.index) or (have.get(()) if slot.index else next(iter(have.values()), None))
                if clash is not None:
                    _capped(errors, counts, SpecError(
                        "weights-twice",
                        f"variable '{slot.path}' is filled twice: by tensor '{use.tensor}' (this rule) and by "
                        f"tensor '{clash.tensor}' (the rule at {clash.rule.loc}); keep one",
                        rule.loc,
                    ))
                    claimed.add(use.tensor)  # used, wrongly: not also "used by no rule"
                    continue
                have[slot.index] = use
                uses.append(use)
            if not matched:
                probe = _CAPTURE.sub("0", rule.targets[part])
                errors.append(SpecError(
                    "weights-target",
                    f"target '{rule.targets[part]}' of tensor pattern '{rule.pattern}' names no variable of the model"
                    f"{did_you_mean(probe, slot_paths)}",
                    rule.loc,
                ))
    copies_of: dict[str, list[Slot]] = {}
    for s in slots.values():
        if s.index:
            copies_of.setdefault(s.var, []).append(s)
    for key, (shape, _) in variables.items():
        have = filled.get(key, {})
        if () in have or (key in fresh and not have):
            continue
        copies = copies_of.get(key, [])
        missing = [s for s in copies if s.index not in have] if have else []
        if not have:
            errors.append(SpecError(
                "weights-unfilled",
                f"variable '{key}' {tuple(shape)} is filled by no tensor: add a rule to {ctx.where} whose target names it",
                ctx.loc,
            ))
        elif missing:
            names = ", ".join(f"'{s.path}'" for s in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            errors.append(SpecError(
                "weights-unfilled", f"copies {names} of variable '{key}' are filled by no tensor", ctx.loc,
            ))

    expected: dict[str, list[Use]] = {}
    for use in uses:
        expected.setdefault(use.tensor, []).append(use)
    names = set(infos)
    ignored = sorted(n for n in names if n not in expected and any(r.fullmatch(n) for r in ctx.ignore))
    unused = sorted(names - expected.keys() - set(ignored) - claimed)
    explained: set[str] = set()
    for tensor, tuses in expected.items():
        rule, slot = tuses[0].rule, tuses[0].slot
        if tensor not in infos:
            close = difflib.get_close_matches(tensor, unused, n=1, cutoff=0.6)
            hint = f"; the file has '{close[0]}', used by no rule: renamed?" if close else ""
            explained.update(close)
            _capped(errors, counts, SpecError(
                "weights-missing", f"tensor '{tensor}' (for variable '{slot.path}') is not in {file}{hint}", rule.loc,
            ))
            continue
        info = infos[tensor]
        for use in tuses:
            problem = _check_use(use, info)
            if problem is not None:
                code, message = problem
                _capped(errors, counts, SpecError(code, message, use.rule.loc))
    for tensor in unused:
        if tensor in explained:
            continue
        info = infos[tensor]
        if ctx.identity:
            errors.append(SpecError(
                "weights-unused",
                f"tensor '{tensor}' {info.shape} {info.dtype} of {file} is not a variable of the model"
                f"{did_you_mean(tensor, list(variables))}; a checkpoint in another naming needs a weights: mapping in the spec",
                ctx.loc,
            ))
            continue
        errors.append(SpecError(
            "weights-unused",
            f"tensor '{tensor}' {info.shape} {info.dtype} of {file} is used by no rule: map it in {ctx.where}, "
            f"or list it under ignore: if it is not a weight{did_you_mean(tensor, [t for t in expected if t not in names])}",
            ctx.loc,
        ))
    for (loc, code), n in counts.items():
        if n > _MAX_PER_RULE:
            errors.append(SpecError(code, f"... and {n - _MAX_PER_RULE} more such problem(s) of this rule", loc))
    if errors:
        raise SpecErrors(errors)
    return Plan(file, uses, dict(infos), ignored, dict(variables))


def _check_use(use: Use, info: TensorInfo) -> tuple[str, str] | None:
    rule, slot = use.rule, use.slot
    shape, dtype = info.shape, info.dtype
    what = f"tensor '{use.tensor}' {shape} {dtype}"
    if rule.split is not None:
        n = len(rule.targets)
        if not -len(shape) <= rule.split < len(shape) or shape[rule.split] % n:
            return "weights-shape", f"{what} cannot be split into {n} equal parts along axis {rule.split}"
        axis = rule.split % len(shape)
        shape = tuple(d // n if i == axis else d for i, d in enumerate(shape))
    use.chain = []
    for t in rule.transforms:
        use.chain.append((shape, dtype))
        try:
            shape, dtype = t.shape(shape, dtype, slot.shape)
        except MappingProblem as e:
            return "weights-shape", f"{what} for variable '{slot.path}': {e}"
    if shape != slot.shape:
        after = f" after {rule.describe()}" if rule.transforms or rule.split is not None else ""
        return "weights-shape", (
            f"{what} is {shape}{after}, but variable '{slot.path}' is {slot.shape}"
            + ("; a torch Linear weight [out, in] needs transforms: [transpose]" if len(shape) == 2 and shape[::-1] == slot.shape else "")
        )
    if dtype != slot.dtype and not (rule.lenient_dtype and np.can_cast(dtype, slot.dtype, casting="same_kind")):
        return "weights-dtype", f"{what} is {dtype}, but variable '{slot.path}' is {slot.dtype}: add {{cast: {slot.dtype}}} to its transforms"
    return None


# ---- loading and writing back ----------------------------------------------------------


def _produce(use: Use, source: TensorSource, cache: dict[str, np.ndarray]) -> np.ndarray:
    if use.tensor not in cache:
        cache.clear()  # one tensor held at a time (a fused qkv is read once for its three parts)
        cache[use.tensor] = source.read(use.tensor)
    x = cache[use.tensor]
    if use.rule.split is not None:
        x = np.split(x, len(use.rule.targets), axis=use.rule.split)[use.part]
    for t in use.rule.transforms:
        x = t.apply(x, use.slot.shape)
    return x


def load_plan(plan: Plan, source: TensorSource, variables: Mapping[str, Any], shardings: Mapping[str, Any] | None = None) -> None:
    """Fills ``variables`` (``{key: nnx.Variable}``) variable by variable, one tensor in memory at a time.

    A variable's host array becomes its JAX array without a copy (:func:`to_device`), so
    memory holds the variables set so far, the one being gathered and one tensor. With
    ``shardings`` (``{key: NamedSharding}``) each goes straight onto its shards.
    """
    from .formats import aligned_empty, to_device

    by_var: dict[str, list[Use]] = {}
    for use in plan.uses:
        by_var.setdefault(use.slot.var, []).append(use)
    cache: dict[str, np.ndarray] = {}
    for key, uses in by_var.items():
        var = variables[key]
        shape, dtype = plan.variables[key]
        if len(uses) == 1 and uses[0].slot.index == ():
            value = _produce(uses[0], source, cache)
        else:
            value = aligned_empty(shape, dtype)
            for use in uses:
                value[use.slot.index] = _produce(use, source, cache)
        sharding = shardings.get(key) if shardings is not None else None
        var.set_value(to_device(value, dtype, sharding=sharding))  # value is fresh (TensorSource.read): taken without a copy
        del value
    cache.clear()


def export_plan(plan: Plan, values: Mapping[str, np.ndarray], source: TensorSource | None = None) -> dict[str, np.ndarray]:
    """The model's ``values`` (``{key: array}``) under the checkpoint's names, every transform undone.

    With ``source``, the ignored tensors (buffers such as ``position_ids``) are copied from it.
    """
    parts: dict[str, dict[int, np.ndarray]] = {}
    for use in plan.uses:
        y = np.asarray(values[use.slot.var])
        if use.slot.index:
            y = y[use.slot.index]
        for t, before in zip(reversed(use.rule.transforms), reversed(use.chain), strict=True):
            y = t.invert(y, before)
        parts.setdefault(use.tensor, {})[use.part] = np.ascontiguousarray(y)
    out: dict[str, np.ndarray] = {}
    for tensor, got in parts.items():
        rule = next(u.rule for u in plan.uses if u.tensor == tensor)
        x = got[0] if rule.split is None else np.concatenate([got[k] for k in range(len(rule.targets))], axis=rule.split)
        out[tensor] = np.ascontiguousarray(x.astype(plan.infos[tensor].dtype, copy=False))
    if source is not None:
        for tensor in plan.ignored:
            out[tensor] = source.read(tensor)
    return out


def relative_mapping_file(spec_file: str, name: str) -> Path:
    """The mapping file a spec names, relative to the spec's folder."""
    path = Path(name)
    return path if path.is_absolute() else Path(spec_file).parent / path
