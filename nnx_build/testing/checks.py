"""The checks of one spec test case, run in order; failures are collected, not raised.

A case runs its checks in order (params, forward, outputs, finite, deterministic,
golden, train_step, export); every check that fails adds a located :class:`Failure`.
A check whose failure makes later ones meaningless ends the case early. The
one-train-step check is :func:`~nnx_build.testing.train_step.check_train_step`; the arrays a
case draws, stores and compares are :mod:`~nnx_build.testing.arrays`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..errors import LIMIT_CODES, Location, NnxBuildError, limit_code
from ..text import first_line, fmt_shape
from .arrays import compare, random_array, storable, write_npz
from .discovery import display_path
from .results import CaseResult, Failure, SpecCase
from .train_step import check_train_step

__all__ = ["CaseRun", "run_case"]


class _Stop(Exception):
    """Ends a case early (its later checks depend on the one that failed)."""


def run_case(session: Any, sc: SpecCase, *, update_goldens: bool = False) -> CaseResult:
    """Runs one case of ``session`` (a :class:`~nnx_build.testing.session.SpecSession`); never raises for a failing check (see ``CaseResult.failures``).

    A case that does not validate fails with its located problems and runs nothing.
    """
    t0 = time.perf_counter()
    if sc.case is None:
        failures = [
            Failure("spec", p.loc, [f"error[{p.code}]: {p.message}"], limit=p.code if p.code in LIMIT_CODES else None)
            for p in sc.problems
        ]
        failures = failures or [Failure("spec", sc.loc, ["the case does not validate"])]
        return CaseResult(sc, "error", [], failures, [], time.perf_counter() - t0)
    assert session is not None, "a valid case runs in the session of its spec"
    run = CaseRun(session, sc, update_goldens)
    try:
        run.all()
    except _Stop:
        pass
    except NnxBuildError as e:  # spec errors: compile or abstract check, a limit, out of memory
        run.fail("spec", str(e).splitlines() or [type(e).__name__], at=(), limit=limit_code(e))
    except Exception as e:  # noqa: BLE001  (an unexpected error still names the case; the traceback's end helps)
        import traceback

        tail = traceback.format_exception(e)[-4:-1]
        lines = [first_line(e, with_type=True), *(x.rstrip() for t in tail for x in t.splitlines())]
        run.fail("error", lines, at=())
    return CaseResult(
        sc,
        "failed" if run.failures else "passed",
        sc.case.checks,
        run.failures,
        run.notes,
        time.perf_counter() - t0,
    )


def _fmt(n: int) -> str:
    return f"{n:,}"


def _is_float(arr: Any) -> bool:
    import numpy as np

    return np.issubdtype(np.dtype(arr.dtype), np.floating) or str(arr.dtype) == "bfloat16"


class CaseRun:
    """The checks of one case, in order; failures are collected, not raised."""

    def __init__(self, session: Any, sc: SpecCase, update_goldens: bool):
        self.s = session
        assert sc.case is not None
        self.sc = sc
        self.case = sc.case
        self.update_goldens = update_goldens
        self.failures: list[Failure] = []
        self.notes: list[str] = []
        self.seed = session.spec.seed if self.case.seed is None else self.case.seed

    # -- helpers

    def loc(self, *keys: Any) -> Location:
        return self.s.locate("tests", self.sc.index, *keys)

    def fail(
        self,
        check: str,
        lines: list[str] | str,
        at: tuple[Any, ...] | None = None,
        stop: bool = False,
        limit: str | None = None,
    ) -> None:
        if isinstance(lines, str):
            lines = [lines]
        loc = self.sc.loc if at == () else self.loc(*(at if at is not None else (check,)))
        self.failures.append(Failure(check, loc, lines, limit))
        if stop:
            raise _Stop

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.s.path.parent / p

    # -- the sequence

    def all(self) -> None:
        c = self.case
        if c.params is not None:
            self.check_params()
        if not (c.runs_forward or c.train_step or c.export):
            return
        graph = self.graph()
        outputs: dict[str, Any] | None = None
        inputs: dict[str, Any] | None = None
        if c.runs_forward:
            stored = self.golden_inputs()
            inputs = self.make_inputs(graph, stored)
            outputs = self.forward(self.s.model(self.seed), graph, inputs)
            if c.outputs:
                self.check_outputs(outputs)
            if c.finite:
                self.check_finite(outputs)
            if c.deterministic:
                self.check_deterministic(graph, inputs, outputs)
            if c.golden is not None:
                self.check_golden(inputs, outputs)
        if c.train_step is not None:
            if inputs is None:
                inputs = self.make_inputs(graph, None)
            check_train_step(self, graph, inputs)
        if c.export is not None:
            self.check_export()

    # -- params

    def check_params(self) -> None:
        expected = dict(self.case.params or {})
        got = dict(self.s.report.params)
        lines = []
        for kind in sorted(set(expected) | set(got), key=lambda k: (k not in expected, k)):
            e, g = expected.get(kind), got.get(kind)
            if e == g:
                continue
            if e is None:
                lines.append(f"{kind}: not expected, got {_fmt(g or 0)}")
            elif g is None:
                lines.append(f"{kind}: expected {_fmt(e)}, got none")
            else:
                lines.append(f"{kind}: expected {_fmt(e)}, got {_fmt(g)} ({g - e:+,})")
        if lines:
            by_kind = ", ".join(f"{_fmt(v)} {k}" for k, v in got.items()) or "no variables"
            first = next((k for k in expected if expected.get(k) != got.get(k)), None)
            at = ("params", first) if first is not None else ("params",)
            self.fail("params", ["parameter counts differ", *lines, f"the model has {by_kind}"], at=at)

    # -- inputs and the forward pass

    def graph(self) -> Any:
        program = self.s.program
        method = self.case.method
        if method is None:
            return program.root.main
        methods = dict(program.root.methods)
        if method not in methods:
            from ..errors import did_you_mean

            names = ", ".join(methods) or "none"
            self.fail("method", f"the model has no method '{method}'{did_you_mean(method, methods)}; its methods: {names}", stop=True)
        return methods[method]

    def golden_inputs(self) -> dict[str, Any] | None:
        g = self.case.golden
        if g is None or self.update_goldens:
            return None
        path = self.resolve(g.file)
        if not path.is_file():
            return None  # reported by check_golden
        import numpy as np

        with np.load(path) as data:
            return {k[len("inputs/"):]: data[k] for k in data.files if k.startswith("inputs/")}

    def make_inputs(self, graph: Any, stored: dict[str, Any] | None) -> dict[str, Any]:
        import jax.numpy as jnp
        import numpy as np

        c = self.case
        specs = dict(graph.input_specs)
        unknown = [n for n in c.inputs if n not in graph.inputs]
        if unknown:
            self.fail(
                "inputs",
                f"input '{unknown[0]}' is not an input of the model; its inputs: {', '.join(graph.inputs)}",
                at=("inputs", unknown[0]),
                stop=True,
            )
        from_file: dict[str, Any] = {}
        if c.inputs_file is not None:
            path = self.resolve(c.inputs_file)
            if not path.is_file():
                self.fail("inputs", f"inputs file {display_path(path)} does not exist", at=("inputs_file",), stop=True)
            with np.load(path) as data:
                from_file = {k: data[k] for k in data.files}
        rng = np.random.default_rng(c.data_seed)
        out: dict[str, Any] = {}
        for name in graph.inputs:
            spec = specs.get(name)
            if stored and name in stored:
                out[name] = stored[name]
                continue
            if name in from_file:
                out[name] = from_file[name]
                continue
            given = c.inputs.get(name)
            if given is not None:
                shape = tuple(given.shape)
                dtype = given.dtype or (spec.dtype if spec is not None else "float32")
                low, high = given.low, given.high
            elif spec is not None:
                dims = self.s.program.dims
                shape = tuple(d if isinstance(d, int) else dims.get(d, 1) for d in spec.shape)
                dtype, low, high = spec.dtype, None, None
            else:
                self.fail("inputs", f"input '{name}' has no declared shape; give one under inputs:", at=("inputs",), stop=True)
            out[name] = random_array(rng, shape, dtype, low, high)
        return {k: jnp.asarray(v) for k, v in out.items()}

    def forward(self, model: Any, graph: Any, inputs: dict[str, Any], check: str = "forward") -> dict[str, Any]:
        from flax import nnx

        if self.case.mode == "train":
            model = nnx.clone(model)  # train-mode calls update state: keep the shared model clean
            model.train()
        else:
            model.eval()
        try:
            out = self.s.jitted(self.case.method)(model, inputs)
        except Exception as e:  # noqa: BLE001  (reported as the check's failure)
            shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in inputs.items())
            self.fail(check, [f"the forward pass raised {first_line(e, with_type=True)}", f"inputs: {shapes}"], at=(), stop=True)
        finally:
            model.train()
        outs = out if isinstance(out, tuple) and len(graph.outputs) > 1 else (out,)
        return dict(zip(graph.outputs, outs, strict=False))

    # -- checks on outputs

    def check_outputs(self, outputs: dict[str, Any]) -> None:
        for name, exp in (self.case.outputs or {}).items():
            at = ("outputs", name)
            if name not in outputs:
                self.fail("outputs", f"no output '{name}'; the outputs are: {', '.join(outputs)}", at=at)
                continue
            value = outputs[name]
            if not hasattr(value, "shape"):
                self.fail("outputs", f"output '{name}' is a {type(value).__name__}, not an array", at=at)
                continue
            got_shape = tuple(value.shape)
            if exp.shape is not None:
                want = tuple(exp.shape)
                if len(want) != len(got_shape) or any(w is not None and w != g for w, g in zip(want, got_shape, strict=False)):
                    self.fail(
                        "outputs",
                        f"output '{name}' has shape {fmt_shape(got_shape)}, expected {fmt_shape(want)}",
                        at=(*at, "shape") if self._has(*at, "shape") else at,
                    )
            if exp.dtype is not None and str(value.dtype) != exp.dtype:
                self.fail("outputs", f"output '{name}' has dtype {value.dtype}, expected {exp.dtype}", at=(*at, "dtype") if self._has(*at, "dtype") else at)

    def _has(self, *keys: Any) -> bool:
        doc = self.s.spec._document
        return doc is not None and ("tests", self.sc.index, *keys) in doc.positions

    def check_finite(self, outputs: dict[str, Any]) -> None:
        import jax
        import numpy as np

        for name, value in outputs.items():
            for leaf in jax.tree.leaves(value):
                if not hasattr(leaf, "dtype") or not _is_float(leaf):
                    continue
                arr = np.asarray(leaf, dtype=np.float32)
                bad = int(arr.size - np.isfinite(arr).sum())
                if bad:
                    self.fail("finite", f"output '{name}' has {bad} non-finite value(s) of {arr.size}", at=("finite",) if self._has("finite") else ())

    def check_deterministic(self, graph: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        import numpy as np

        from ..fastpath import flat_weights

        first = self.s.model(self.seed)
        second = self.s.fresh_model(self.seed)
        w1, w2 = flat_weights(first), flat_weights(second)
        lines = []
        if set(w1) != set(w2):
            lines.append(f"the two builds have different variables: {sorted(set(w1) ^ set(w2))[:5]}")
        for key in sorted(set(w1) & set(w2)):
            a, b = np.asarray(w1[key]), np.asarray(w2[key])
            if a.shape != b.shape or not np.array_equal(a, b):
                lines.append(f"variable '{key}' differs between two builds with seed {self.seed}")
        again = self.forward(second, graph, inputs, check="deterministic")
        for name, value in outputs.items():
            other = again.get(name)
            import jax

            for x, y in zip(jax.tree.leaves(value), jax.tree.leaves(other), strict=False):
                if not np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True):
                    diff = np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
                    lines.append(f"output '{name}' differs between two builds with seed {self.seed} (max abs diff {diff:.3g})")
        if lines:
            self.fail("deterministic", ["the same seed did not give the same model", *lines[:10]])

    def check_golden(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        import numpy as np

        g = self.case.golden
        assert g is not None
        path = self.resolve(g.file)
        if self.update_goldens:
            write_npz(
                path,
                {
                    **{f"inputs/{k}": storable(v) for k, v in inputs.items()},
                    **{f"outputs/{k}": storable(v) for k, v in outputs.items() if hasattr(v, "shape")},
                },
            )
            self.notes.append(f"wrote {display_path(path)}")
            return
        if not path.is_file():
            self.fail("golden", f"golden file {display_path(path)} does not exist; write it with nnx-build test --update-goldens", at=("golden", "file"))
            return
        with np.load(path) as data:
            want = {k[len("outputs/"):]: data[k] for k in data.files if k.startswith("outputs/")}
        lines = []
        for name, expected in want.items():
            if name not in outputs:
                lines.append(f"output '{name}' is in the golden file but the model has no such output ({', '.join(outputs)})")
                continue
            got = np.asarray(storable(outputs[name]))
            if got.shape != expected.shape:
                lines.append(f"output '{name}' has shape {fmt_shape(got.shape)}, the golden {fmt_shape(expected.shape)}")
                continue
            lines += compare(name, got, expected, g.rtol, g.atol)
        missing = [n for n in outputs if n not in want]
        if missing:
            lines.append(f"the golden file has no output(s) {', '.join(missing)}; rewrite it with --update-goldens")
        if lines:
            self.fail("golden", [f"outputs differ from {display_path(path)} (rtol={g.rtol:g}, atol={g.atol:g})", *lines])

    # -- export round trip

    def check_export(self) -> None:
        import tempfile

        ex = self.case.export
        assert ex is not None
        try:
            from ..exporters import export as export_fn
        except ImportError as e:
            self.fail("export", f"the exporters are not available in this installation (nnx_build.exporters.export: {e})")
            return
        with tempfile.TemporaryDirectory(prefix="nnx-build-test-") as tmp:
            try:
                result = export_fn(self.s.path, Path(tmp) / "export", to=list(ex.targets), seed=self.seed, verify=True, tolerance=ex.tolerance)
            except NnxBuildError as e:
                self.fail("export", [f"export to {', '.join(ex.targets)} failed", *str(e).splitlines()])
                return
            except Exception as e:  # noqa: BLE001  (a missing optional dependency, a converter bug)
                self.fail("export", f"export to {', '.join(ex.targets)} raised {first_line(e, with_type=True)}")
                return
        status = getattr(result, "verification", {}).get("status", "unknown")
        if status != "passed":
            self.fail("export", f"verification of the export to {', '.join(ex.targets)}: {status}")
        else:
            self.notes.append(f"exported to {', '.join(ex.targets)}, verified")
