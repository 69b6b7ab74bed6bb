"""`import nnx_build` and `nnx-build --help` stay fast: no JAX, Flax, TensorFlow at import."""

from __future__ import annotations

import subprocess
import sys

import nnx_build

HEAVY = ("jax", "flax", "tensorflow", "onnx", "onnxruntime", "orbax", "jax2onnx")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}; import sys; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_nnx_build_is_light() -> None:
    assert not _imported_after("import nnx_build") & set(HEAVY)


def test_cli_module_is_light() -> None:
    assert not _imported_after("import nnx_build.cli") & set(HEAVY)


def test_public_names_resolve() -> None:
    for name in nnx_build.__all__:
        assert getattr(nnx_build, name) is not None
    assert nnx_build.build.__module__ == "nnx_build.builder"


def test_help_of_every_command_is_light() -> None:
    # `nnx-build --help` and `nnx-build COMMAND --help` import the commands, their shared
    # options and the pipeline's Options, none of which may pull in JAX
    code = (
        "import contextlib, io, typer; from nnx_build.cli import main, app; "
        "names = list(typer.main.get_command(app).commands); "
        "quiet = contextlib.redirect_stdout(io.StringIO()); quiet.__enter__(); "
        "codes = [main([*n, '--help']) for n in [[], *([x] for x in names)]]; quiet.__exit__(None, None, None); "
        "assert codes == [0] * (len(names) + 1), codes"
    )
    assert not _imported_after(code) & set(HEAVY)


def test_pipeline_options_and_weights_tables_are_light() -> None:
    code = "import nnx_build.pipeline, nnx_build.commands.options, nnx_build.weights; nnx_build.pipeline.Options()"
    assert not _imported_after(code) & set(HEAVY)


def test_new_public_names() -> None:
    from nnx_build.pipeline import Options

    assert nnx_build.Options is Options
    assert nnx_build.save_weights.__module__ == "nnx_build.weights"
    assert nnx_build.load_weights.__module__ == "nnx_build.builder"
    assert issubclass(nnx_build.OutOfMemoryError, nnx_build.NnxBuildError)


def test_cli_and_commands_import_one_way() -> None:
    """cli imports the commands; no command module (nor the options they share) imports cli."""
    import ast
    from pathlib import Path

    root = Path(nnx_build.__file__).parent
    for path in sorted((root / "commands").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                absolute = "nnx_build." * (node.level > 0) + (node.module or "") if node.level != 1 else f"nnx_build.commands.{node.module}"
                imported = {absolute, *(f"{absolute}.{a.name}".replace("nnx_build..", "nnx_build.") for a in node.names)}
            elif isinstance(node, ast.Import):
                imported = {a.name for a in node.names}
            else:
                continue
            assert "nnx_build.cli" not in imported, f"{path.name} imports nnx_build.cli"
