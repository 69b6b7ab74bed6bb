"""Mutations of every example spec never raise an untyped exception, never hang.

Each case mutates one example spec (deleted keys, wrong types, unknown names, zero,
negative and huge dims, dangling and cyclic references, payload names, deep nesting,
multi-megabyte strings), writes it as YAML or JSON and runs it through the loader,
validation and the compiler; on the small specs one case in four also runs the
abstract check (``nnx.eval_shape``: nothing allocated). The outcome must be a model
or located ``SpecError``s.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nnx_build.builder.abstract import abstract_check
from nnx_build.builder.compiler import compile_spec
from nnx_build.loader import Limits
from nnx_build.spec_io import load_spec, spec_locator

from .conftest import fuzz, run_case
from .strategies import DOCS, SMALL, SPEC_FILES, mutation, to_text

#: tighter than the defaults so that a mutated repeat stays quick to check
LIMITS = Limits(max_modules=400)
#: the abstract check refuses the terabyte mutations before anything is allocated
BUDGET = {"max_params": 10**12, "max_bytes": 2**34}


def _stages(path, text: str, check: bool):
    suffix = ".json" if text.lstrip().startswith("{") else ".yaml"
    stages = [
        ("load", lambda _: load_spec(text, limits=LIMITS)),
        ("compile", lambda spec: compile_spec(spec, spec_locator(spec), LIMITS)),
    ]
    if check:
        stages.append(("check", lambda prog: abstract_check(prog, spec_locator(prog.spec), **BUDGET)))
    return suffix, stages


@fuzz(int(__import__("os").environ.get("FUZZ_N", 1200)))
@given(st.data())
def test_mutated_example_specs(data) -> None:
    path = data.draw(st.sampled_from(SPEC_FILES), label="spec")
    mutated = data.draw(mutation(DOCS[path]), label="mutated")
    for _ in range(data.draw(st.integers(0, 2), label="more")):
        mutated = data.draw(mutation(mutated), label="mutated again") if isinstance(mutated, dict) and mutated else mutated
    fmt = data.draw(st.sampled_from(["yaml", "yaml", "json"]), label="format")
    text = to_text(mutated, fmt)
    if text is None:
        text = "format: 1\n"
    check = path in SMALL and data.draw(st.integers(0, 3), label="check?") == 0
    _, stages = _stages(path, text, check)
    run_case("mutations", f"{path.name} ({fmt})", stages)

