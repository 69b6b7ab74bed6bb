"""Nothing named in a spec is imported or called: real payloads, an audit hook as witness.

Each payload spec is checked in a fresh process by ``nnx-build check``'s code path,
after a benign warm-up, with ``sys.addaudithook`` recording process creation
(``os.system``, ``subprocess.Popen``, ``os.exec*``, ``os.posix_spawn``, ...), code
execution (``exec``, ``compile``) and imports. Every payload must be refused with a
located error (exit code 2), no watched event may fire, no module may be imported,
and no payload's side effect (a file created by ``touch``) may appear.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

HEAD = "format: 1\nname: m\ninputs:\n  x: [batch, 4]\n"
#: text of the payloads: none of it may reach compile() or exec
MARKERS = ("system", "__import__", "Popen", "touch", "lambda", "__class__", "__globals__", "eval", "exec", "format(", "subprocess")


def payloads(sentinel: Path) -> dict[str, str]:
    touch = f"touch {sentinel}/"
    return {
        "yaml-apply-os-system": f'format: 1\nname: !!python/object/apply:os.system ["{touch}apply"]\ninputs: {{x: [batch, 4]}}\nlayers: [relu]\n',
        "yaml-name-os-system": HEAD + "layers:\n  - !!python/name:os.system\n",
        "yaml-new-popen": f'{HEAD}layers: [relu]\ndoc: !!python/object/new:subprocess.Popen [["touch", "{sentinel}/popen"]]\n',
        "yaml-module-os": HEAD + "layers: [relu]\ndoc: !!python/module:os\n",
        "yaml-apply-in-key": f'{HEAD}layers: [relu]\nargs:\n  ? !!python/object/apply:os.system ["{touch}key"]\n  : 1\n',
        "type-os-system": HEAD + "layers:\n  - {type: os.system, in: x}\n",
        "type-builtins-eval": HEAD + 'layers:\n  - {type: "builtins>eval", in: x}\n',
        "type-dotted-builtin": HEAD + "layers:\n  - e: {type: builtins.exec}\n",
        "type-dunder-import": HEAD + "layers:\n  - {type: __import__}\n",
        "type-subprocess": HEAD + 'layers:\n  - p: {type: "subprocess>Popen", args: ["touch", "x"]}\n',
        "module-os-field": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4, module: os}\n",
        "call-os-system": HEAD + "layers:\n  - {type: call, module: os, method: system}\n",
        "call-dunder-class": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4}\n"
        "  - {type: call, module: l.__class__, method: __init__}\n",
        "call-globals": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4}\n"
        "  - {type: call, module: l.__call__.__globals__, method: clear}\n",
        "call-module-api": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4}\n  - {type: call, module: l, method: set_attributes}\n",
        "init-os-system": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4, kernel_init: {type: os.system}}\n",
        "init-dotted": HEAD + 'variables:\n  w: {shape: [4], init: "jax.numpy.save"}\nlayers: [relu]\n',
        "init-kwarg-code": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4, "
        "kernel_init: {type: normal, stddev: \"__import__('os').system('true')\"}}\n",
        "activation-import": HEAD + "layers:\n  - c: {type: SimpleCell, in_features: 4, hidden_features: 4, activation_fn: __import__}\n",
        "activation-eval": HEAD + "layers:\n  - c: {type: SimpleCell, in_features: 4, hidden_features: 4, activation_fn: eval}\n",
        "dtype-code": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4, dtype: os.system}\n",
        "kind-base-eval": HEAD + 'kinds:\n  Evil: {base: "builtins>eval"}\nlayers: [relu]\n',
        "kinds-dunder-path": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: 4, kinds: {__class__.__init__: Param}}\n",
        "linen-os": HEAD + "layers:\n  - l: {type: Linen, layer: os.system, args: {command: true}}\n",
        "linen-args-code": HEAD + 'layers:\n  - l: {type: Linen, layer: Dense, args: {features: 4, kernel_init: "__import__(\'os\').system"}, in_shape: [4]}\n',
        "expr-import": f"{HEAD}args: {{d: 4}}\nlayers:\n"
        f"  - l: {{type: Linear, in_features: 4, out_features: \"${{__import__('os').system('{touch}expr')}}\"}}\n",
        "expr-lambda": HEAD + "layers:\n  - l: {type: Linear, in_features: 4, out_features: \"${(lambda: 4)()}\"}\n",
        "expr-attribute": HEAD + "args: {d: 4}\nlayers:\n  - l: {type: Linear, in_features: 4, out_features: \"${d.__class__.__bases__}\"}\n",
        "expr-format-string": HEAD + "args: {d: 4}\nlayers:\n  - l: {type: Linear, in_features: 4, out_features: \"${'{0.__class__}'.format(d)}\"}\n",
        "block-type-os": HEAD + "blocks:\n  os.system: {layers: [relu]}\nlayers:\n  - b: {type: os.system}\n",
        "json-class": '{"format": 1, "name": "m", "inputs": {"x": ["batch", 4]}, "layers": [{"type": "os.system", "__class__": "subprocess.Popen"}]}',
    }


def test_payloads_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    files = []
    for name, text in payloads(sentinel).items():
        path = tmp_path / (f"{name}.json" if text.startswith("{") else f"{name}.yaml")
        path.write_text(text, encoding="utf-8")
        files.append(str(path))
    proc = subprocess.run(
        [sys.executable, str(HERE / "payload_runner.py"), str(sentinel), *files],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for r in report["results"]:
        assert r["exit"] == 2, (r["spec"], r["output"])
        assert "error[" in r["output"] and "Traceback" not in r["output"], (r["spec"], r["output"])
        # located: FILE:LINE:COL
        assert f"{r['spec']}:" in r["output"], r
    # library internals may parse or evaluate their own annotations ('bool'); nothing from a spec may get there
    executed = [e for e in report["events"] if e[1] in ("exec", "compile")]
    others = [e for e in report["events"] if e[1] not in ("exec", "compile")]
    assert others == [], "\n".join(map(str, others[:40]))
    # the expression evaluator parses ${...} with ast.parse (filename '<unknown>') and walks the tree
    # itself: parsing is allowed, compiling to code or executing is not
    tainted = [e for e in executed if any(m in e[2] for m in MARKERS) and not e[2].startswith("<unknown>: ")]
    assert tainted == [], "\n".join(map(str, tainted[:40]))
    assert all(e[1] != "exec" or e[2].endswith("@<string>") for e in executed), executed
    assert any(e[2].startswith("<unknown>: __import__") for e in executed)  # the hook did see the payload parsed
    assert report["new_modules"] == [], report["new_modules"]
    assert report["sentinels"] == []
    print(f"{len(report['results'])} payload specs refused; no process, exec, compile or import event")


@pytest.mark.parametrize("module", ["os", "subprocess", "builtins"])
def test_plugin_option_is_the_only_way_to_import(tmp_path: Path, module: str) -> None:
    # a spec naming a module imports nothing; --plugin with the same name is the user's choice
    spec = tmp_path / "spec.yaml"
    spec.write_text(HEAD + f"layers:\n  - {{type: \"{module}>system\", in: x}}\n", encoding="utf-8")
    code = (
        "import sys; from nnx_build.cli import main\n"
        f"rc = main(['check', {str(spec)!r}])\n"
        "print('RC', rc, 'IMPORTED', 'nnx_plugin_probe' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "RC 2 IMPORTED False" in proc.stdout, proc.stdout + proc.stderr
    assert "error[unknown-type]" in proc.stderr
