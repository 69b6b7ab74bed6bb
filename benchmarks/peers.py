"""nnx-build against Keras 3 (JAX backend), the peer that also builds from a config and exports.

Two models: ResNet-50 (``specs/zoo/resnet50.yaml`` against Keras' ``ResNet50(weights=None)``
configuration) and ViT-B/16 (``specs/zoo/vit_b16.yaml`` against a Keras functional ViT-B/16
of the same size, built here from Keras layers: Keras itself ships no transformer model
without ``keras_hub`` and its downloads). Every measure runs in fresh processes, the two
frameworks alternating within each round (the order flips every round); ratios are
nnx-build / Keras, the median of the per-round ratios:

* ``check`` / Keras ``model_from_json`` of the saved configuration: wall time and peak RSS;
* ``nnx-build SPEC`` (build, forward on zeros) / ``model_from_json`` + ``predict`` on zeros, on a
  first run (nnx-build's compilation cache empty) and on a second run (the cache filled by
  the first; Keras keeps no compiled programs between processes, so its run is the same);
* jitted forward at batch 1 and 8 (our fast path / Keras' ``stateless_call`` under ``jax.jit``),
  both in one process, called in turn;
* SavedModel and ONNX export time (in one process per framework, after building the model),
  that process' peak RSS, the artifacts' sizes;
* onnxruntime latency at batch 1 and 8 of the two ONNX files, alternating in one process; for
  ResNet-50 also of our spec in Keras' layout (v1: stride on the 1x1 reduce, convolutions with
  biases; its parameter count checked equal to Keras' 25,636,712), the same network as Keras'
  file (the zoo spec is v1.5, 6.7% more FLOPs).

Keras exports ONNX on the JAX backend with ``jax2onnx`` (``keras/src/export/onnx.py``), the
converter nnx-build uses, loading all of its plugins; the conversion runs under nnx-build's
``conversion_fixes`` for both (the converter's max pool lowering gives onnxruntime a
pooling it refuses, ResNet50's stem pool), so both files' MaxPool is fixed the same way.
Keras' SavedModel goes through ``jax2tf``.

Usage: python benchmarks/peers.py [--quick] [--rounds 3] [--models resnet50,vit_b16]
                                  [--onnx-baseline resnet50=PATH.onnx] [--out benchmarks/results/peers.json]
``--quick``: small inputs and a 2-block ViT, one round (for trying the script, not for figures).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common  # noqa: F401
from _common import ROOT, compile_bytecode, write_result

HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent
SPECS = {"resnet50": ROOT / "specs" / "zoo" / "resnet50.yaml", "vit_b16": ROOT / "specs" / "zoo" / "vit_b16.yaml"}
QUICK = {"resnet50": {"image": 64}, "vit_b16": {"image": 32, "layers": 2}}
VIT = {"image": 224, "patch": 16, "d_model": 768, "heads": 12, "mlp": 3072, "layers": 12, "classes": 1000}


# ---- the models on both sides ------------------------------------------------------------


def spec_text(model: str, quick: bool) -> str:
    """The zoo spec, with the quick sizes substituted when ``quick``."""
    text = SPECS[model].read_text()
    if not quick:
        return text
    if model == "resnet50":
        return text.replace("[batch, 224, 224, 3]", f"[batch, {QUICK['resnet50']['image']}, {QUICK['resnet50']['image']}, 3]")
    return text.replace("image: 224,", f"image: {QUICK['vit_b16']['image']},").replace("layers: 12,", f"layers: {QUICK['vit_b16']['layers']},")


def keras_layout_text(text: str) -> str:
    """ResNet-50 in Keras' layout (v1, ``keras.applications.ResNet50``): the stride of a stage's
    first block on its 1x1 reduce instead of the 3x3, and every convolution with a bias, so the
    two ONNX files compute the same network (v1.5 spends 6.7% more FLOPs at 224x224)."""
    down = text.index("  BottleneckDown:")
    head, tail = text[:down], text[down:]
    stride = 'strides: ["${stride}", "${stride}"], '
    conv1 = 'kernel_size: [1, 1], padding: VALID, use_bias: false, in: x}'
    assert tail.count(stride) == 2 and tail.count(conv1) == 1, "the zoo ResNet-50 spec changed: update keras_layout_text"
    tail = tail.replace(stride + "padding: [[1, 1]", "padding: [[1, 1]", 1).replace(conv1, stride + conv1, 1)
    return (head + tail).replace("use_bias: false", "use_bias: true").replace("name: resnet50", "name: resnet50_keras_layout")


def image_size(model: str, quick: bool) -> int:
    return QUICK[model]["image"] if quick else 224


def keras_model(model: str, quick: bool) -> Any:
    """Keras' ResNet50 (v1) or a functional ViT-B/16 with the zoo spec's sizes."""
    import keras

    image = image_size(model, quick)
    if model == "resnet50":
        return keras.applications.ResNet50(weights=None, input_shape=(image, image, 3))
    cfg = {**VIT, **(QUICK["vit_b16"] if quick else {})}
    d, layers = cfg["d_model"], keras.layers
    x = keras.Input((image, image, 3), name="x")
    h = layers.Conv2D(d, cfg["patch"], strides=cfg["patch"], name="patch_embed")(x)
    h = layers.Reshape(((image // cfg["patch"]) ** 2, d))(h)
    h = ClassTokenAndPositions(name="embed")(h)
    for i in range(cfg["layers"]):
        a = layers.LayerNormalization(epsilon=1e-6, name=f"ln_1_{i}")(h)
        a = layers.MultiHeadAttention(cfg["heads"], d // cfg["heads"], name=f"attn_{i}")(a, a)
        h = layers.Add()([h, a])
        m = layers.LayerNormalization(epsilon=1e-6, name=f"ln_2_{i}")(h)
        m = layers.Dense(cfg["mlp"], activation=keras.activations.gelu, name=f"fc1_{i}")(m)  # exact GELU (approximate=False)
        m = layers.Dense(d, name=f"fc2_{i}")(m)
        h = layers.Add()([h, m])
    h = layers.LayerNormalization(epsilon=1e-6, name="ln")(h)
    h = ClassTokenOut(name="cls_out")(h)
    y = layers.Dense(cfg["classes"], name="head")(h)
    return keras.Model(x, y, name="vit_b16")


def _keras_layers() -> tuple[type, type]:
    import keras

    @keras.saving.register_keras_serializable(package="peers")
    class ClassTokenAndPositions(keras.layers.Layer):  # type: ignore[misc]
        """Prepends a learned class token and adds learned position embeddings."""

        def build(self, shape: Any) -> None:
            self.cls = self.add_weight(shape=(1, 1, shape[-1]), initializer="zeros", name="cls_token")
            self.pos = self.add_weight(shape=(1, shape[1] + 1, shape[-1]), initializer=keras.initializers.RandomNormal(stddev=0.02), name="pos")

        def call(self, x: Any) -> Any:
            ops = keras.ops
            cls = ops.broadcast_to(self.cls, (ops.shape(x)[0], 1, ops.shape(x)[-1]))
            return ops.concatenate([cls, x], axis=1) + self.pos

    @keras.saving.register_keras_serializable(package="peers")
    class ClassTokenOut(keras.layers.Layer):  # type: ignore[misc]
        """The class token's features."""

        def call(self, x: Any) -> Any:
            return x[:, 0]

    return ClassTokenAndPositions, ClassTokenOut


if os.environ.get("KERAS_BACKEND") == "jax" and os.environ.get("PEERS_WORKER"):
    ClassTokenAndPositions, ClassTokenOut = _keras_layers()


# ---- workers (each in its own process) --------------------------------------------------


def _alternating_latency(fns: dict[str, Any], x: Any, calls: int) -> dict[str, float]:
    """Median milliseconds per call of each function on ``x``, the functions called in turn
    (after two calls each to compile and warm up): each sees the same machine load."""
    import jax

    for fn in fns.values():
        for _ in range(2):
            jax.block_until_ready(fn(x))
    times: dict[str, list[float]] = {who: [] for who in fns}
    for _ in range(calls):
        for who, fn in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(x))
            times[who].append(time.perf_counter() - t)
    return {who: statistics.median(t) * 1e3 for who, t in times.items()}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def worker(task: str, model: str, quick: bool, work: Path) -> dict[str, Any]:
    """One measure of one framework; runs in a fresh process, prints its result as JSON."""
    import numpy as np

    image, calls = image_size(model, quick), 3 if quick else 15
    spec = work / f"{model}.yaml"
    config = work / f"{model}.keras.json"
    out: dict[str, Any] = {}
    if task == "keras-config":  # once, before the rounds: the configuration the others load
        m = keras_model(model, quick)
        config.write_text(m.to_json())
        out["params"] = int(m.count_params())
        return out
    if task == "keras-from-config":
        import keras

        keras.models.model_from_json(config.read_text())
        return out
    if task == "keras-predict":
        import keras

        m = keras.models.model_from_json(config.read_text())
        m.predict(np.zeros((1, image, image, 3), np.float32), verbose=0)
        return out
    if task == "forward":  # both frameworks in this process, alternating call by call
        import jax
        import keras

        import nnx_build

        m = keras.models.model_from_json(config.read_text())
        tv = [v.value for v in m.trainable_variables]
        ntv = [v.value for v in m.non_trainable_variables]
        stateless = jax.jit(lambda tv, ntv, x: m.stateless_call(tv, ntv, x, training=False)[0])
        fns = {"ours": nnx_build.fast_forward(nnx_build.build(spec)), "keras": lambda x: stateless(tv, ntv, x)}
        for b in (1, 8):
            for who, ms in _alternating_latency(fns, np.zeros((b, image, image, 3), np.float32), calls).items():
                out.setdefault(who, {})[f"forward_ms_b{b}"] = ms
        return out
    if task in ("ours-export", "keras-export"):
        folder = work / task
        if task == "ours-export":
            import nnx_build
            from nnx_build.exporters import export

            m = nnx_build.build(spec)
            t = time.perf_counter()
            export(m, folder / "savedmodel", to="savedmodel", verify=False, force=True)
            out["savedmodel_s"] = time.perf_counter() - t
            t = time.perf_counter()
            export(m, folder / "onnx", to="onnx", verify=False, force=True)
            out["onnx_s"] = time.perf_counter() - t
            out["savedmodel_bytes"] = _dir_bytes(folder / "savedmodel" / "savedmodel")
            out["onnx_bytes"] = _dir_bytes(folder / "onnx" / "onnx")
            out["onnx_path"] = str(folder / "onnx" / "onnx" / "main.onnx")
        else:
            import keras

            m = keras.models.model_from_json(config.read_text())
            m.predict(np.zeros((1, image, image, 3), np.float32), verbose=0)  # Keras exports only a called model
            shutil.rmtree(folder, ignore_errors=True)  # its weights file has a new name each time: none left from a round before
            folder.mkdir(parents=True)
            t = time.perf_counter()
            m.export(str(folder / "savedmodel"), format="tf_saved_model", verbose=False)
            out["savedmodel_s"] = time.perf_counter() - t
            from jax2onnx.plugins.plugin_system import import_all_plugins

            from nnx_build.exporters.onnx_fixes import conversion_fixes

            t = time.perf_counter()
            import_all_plugins()  # what Keras' export loads (all the converter's plugins), timed with it
            # its MaxPool fixed as ours is: the converter's lowering of a max pool over every
            # dim gives a pooling onnxruntime refuses (ResNet50's stem pool)
            with conversion_fixes():
                m.export(str(folder / "model.onnx"), format="onnx", verbose=False)
            out["onnx_s"] = time.perf_counter() - t
            out["savedmodel_bytes"] = _dir_bytes(folder / "savedmodel")
            out["onnx_bytes"] = _dir_bytes(folder / "model.onnx") + sum(_dir_bytes(p) for p in folder.glob("model.onnx*.data"))
            out["onnx_path"] = str(folder / "model.onnx")
        out["weights_bytes"] = int(m.count_params() * 4) if task == "keras-export" else _weights_bytes(m)
        return out
    raise SystemExit(f"unknown task {task}")


def _weights_bytes(model: Any) -> int:
    from nnx_build.fastpath import flat_weights

    return int(sum(v.nbytes for v in flat_weights(model).values()))


def ort_worker(paths: dict[str, str], image: int, quick: bool) -> dict[str, Any]:
    """onnxruntime latency of each file at batch 1 and 8, the files alternating call by call."""
    import numpy as np
    import onnxruntime as ort

    sessions = {}
    for name, path in paths.items():
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sessions[name] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    out: dict[str, Any] = {}
    for b in (1, 8):
        x = np.zeros((b, image, image, 3), np.float32)
        feeds = {n: {s.get_inputs()[0].name: x} for n, s in sessions.items()}
        for n, s in sessions.items():
            for _ in range(2):
                s.run(None, feeds[n])
        times: dict[str, list[float]] = {n: [] for n in sessions}
        for _ in range(3 if quick else 15):
            for n, s in sessions.items():
                t = time.perf_counter()
                s.run(None, feeds[n])
                times[n].append(time.perf_counter() - t)
        for n in sessions:
            out[f"{n}_ms_b{b}"] = statistics.median(times[n]) * 1e3
    return out


# ---- the driver --------------------------------------------------------------------------


def run(argv: list[str], *, keras: bool, cache: Path | None = None) -> tuple[dict[str, Any], float, float]:
    """Runs a command in a fresh process: (its JSON result, wall seconds, peak RSS in MB).

    nnx-build's compilation cache is off unless ``cache`` names its folder (never the user's own)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2", "PEERS_WORKER": "1",
           "NNX_BUILD_COMPILE_CACHE": str(cache) if cache else "0"}
    if keras:
        env["KERAS_BACKEND"] = "jax"
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{stderr[-3000:]}")
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), wall, usage.ru_maxrss / 1024


def _py(task: str, model: str, quick: bool, work: Path) -> list[str]:
    return [sys.executable, str(HERE), "--worker", task, "--models", model, "--work", str(work), *(["--quick"] if quick else [])]


def same_layout_onnx(model: str, quick: bool, work: Path, keras_params: int) -> str | None:
    """ResNet-50 in Keras' layout exported to ONNX once (verified against JAX), for latency
    against the same network; refuses to go on if its parameter count differs from Keras'."""
    if model != "resnet50":
        return None
    spec = work / "resnet50_keras_layout.yaml"
    spec.write_text(keras_layout_text(spec_text(model, quick)))
    import nnx_build

    ours = nnx_build.check(spec).total_params
    if ours != keras_params:
        raise SystemExit(f"{spec.name}: {ours:,} parameters, Keras' ResNet50 has {keras_params:,}")
    out = work / "same-layout"
    subprocess.run([str(BIN / "nnx-build"), "export", str(spec), "--to", "onnx", "--out", str(out), "--force"],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "JAX_PLATFORMS": "cpu", "NNX_BUILD_COMPILE_CACHE": "0"})
    return str(out / "onnx" / "main.onnx")


def one_round(model: str, quick: bool, work: Path, flip: bool, baseline: str | None, same: str | None = None) -> dict[str, Any]:
    """Every measure once for both frameworks, alternating (Keras first when ``flip``).

    ``nnx-build SPEC`` runs with a compilation cache that is empty at the start of the round
    (the first run on a machine) and once more after the round, with that cache filled (a
    second run); the other measures run without it."""
    spec = str(work / f"{model}.yaml")
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    pairs = {
        "check": ([str(BIN / "nnx-build"), "check", spec], _py("keras-from-config", model, quick, work)),
        "build_forward": ([str(BIN / "nnx-build"), spec], _py("keras-predict", model, quick, work)),
        "export": (_py("ours-export", model, quick, work), _py("keras-export", model, quick, work)),
    }
    r: dict[str, Any] = {}
    for measure, (ours, theirs) in pairs.items():
        order = [("keras", theirs), ("ours", ours)] if flip else [("ours", ours), ("keras", theirs)]
        for who, argv in order:
            result, wall, rss = run(argv, keras=who == "keras", cache=cache if measure == "build_forward" and who == "ours" else None)
            r[f"{measure}/{who}"] = {**result, "wall_s": wall, "peak_rss_mb": rss}
        print(f"  {measure}: ours {r[f'{measure}/ours']['wall_s']:.1f} s, keras {r[f'{measure}/keras']['wall_s']:.1f} s", file=sys.stderr)
    both, _, _ = run(_py("forward", model, quick, work), keras=True)
    r["forward/ours"], r["forward/keras"] = both["ours"], both["keras"]
    result, wall, rss = run(pairs["build_forward"][0], keras=False, cache=cache)
    r["build_forward_warm/ours"] = {**result, "wall_s": wall, "peak_rss_mb": rss}
    r["build_forward_warm/keras"] = r["build_forward/keras"]  # Keras keeps no compiled programs between processes
    shutil.rmtree(cache, ignore_errors=True)
    paths = {"ours": r["export/ours"]["onnx_path"], "keras": r["export/keras"]["onnx_path"]}
    if baseline:
        paths["baseline"] = baseline
    if same:
        paths["same"] = same
    if flip:
        paths = dict(reversed(list(paths.items())))
    cmd = [sys.executable, str(HERE), "--ort", json.dumps(paths), "--work", str(work), "--models", model, *(["--quick"] if quick else [])]
    r["ort"], _, _ = run(cmd, keras=False)
    return r


RATIOS = {
    "check_wall": ("check/{}", "wall_s"),
    "check_rss": ("check/{}", "peak_rss_mb"),
    "build_forward_wall": ("build_forward/{}", "wall_s"),
    "build_forward_rss": ("build_forward/{}", "peak_rss_mb"),
    "build_forward_warm_wall": ("build_forward_warm/{}", "wall_s"),
    "jit_forward_b1": ("forward/{}", "forward_ms_b1"),
    "jit_forward_b8": ("forward/{}", "forward_ms_b8"),
    "savedmodel_export_s": ("export/{}", "savedmodel_s"),
    "onnx_export_s": ("export/{}", "onnx_s"),
    "export_peak_rss": ("export/{}", "peak_rss_mb"),
    "savedmodel_bytes": ("export/{}", "savedmodel_bytes"),
    "onnx_bytes": ("export/{}", "onnx_bytes"),
}


def summarise(rounds: list[dict[str, Any]], baseline: bool, same: bool = False) -> dict[str, Any]:
    """Medians of per-round values and of per-round ratios (ours / Keras); ``same``: the ONNX
    file of our spec in Keras' layout was timed too (``ort_bN_same``)."""
    values: dict[str, dict[str, float]] = {}
    ratios: dict[str, float] = {}
    for name, (key, field) in RATIOS.items():
        ours = [r[key.format("ours")][field] for r in rounds]
        theirs = [r[key.format("keras")][field] for r in rounds]
        values[name] = {"ours": statistics.median(ours), "keras": statistics.median(theirs)}
        ratios[name] = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    for b in (1, 8):
        extra = [w for w, on in (("baseline", baseline), ("same", same)) if on]
        values[f"ort_b{b}"] = {w: statistics.median(r["ort"][f"{w}_ms_b{b}"] for r in rounds) for w in ("ours", "keras", *extra)}
        ratios[f"ort_b{b}"] = statistics.median(r["ort"][f"ours_ms_b{b}"] / r["ort"][f"keras_ms_b{b}"] for r in rounds)
        for w in extra:
            ratios[f"ort_b{b}_{w}"] = statistics.median(r["ort"][f"{w}_ms_b{b}"] / r["ort"][f"keras_ms_b{b}"] for r in rounds)
    w = rounds[-1]
    weights = {"ours": w["export/ours"]["weights_bytes"], "keras": w["export/keras"]["weights_bytes"]}
    return {"values": values, "ratios": ratios, "weights_bytes": weights}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--models", default="resnet50,vit_b16")
    ap.add_argument("--onnx-baseline", action="append", default=[], help="MODEL=PATH: another ONNX file of our model to time beside")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ort", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    models = a.models.split(",")
    if a.worker:
        print(json.dumps(worker(a.worker, models[0], a.quick, a.work)))
        return 0
    if a.ort:
        print(json.dumps(ort_worker(json.loads(a.ort), image_size(models[0], a.quick), a.quick)))
        return 0
    rounds = a.rounds or (1 if a.quick else 3)
    baselines = dict(b.split("=", 1) for b in a.onnx_baseline)
    compile_bytecode(ROOT / "nnx_build")  # as Keras' installed package has its bytecode
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        for model in models:
            work = Path(tmp) / model
            work.mkdir()
            (work / f"{model}.yaml").write_text(spec_text(model, a.quick))
            config, _, _ = run(_py("keras-config", model, a.quick, work), keras=True)
            same = same_layout_onnx(model, a.quick, work, config["params"])
            per_round = []
            for i in range(rounds):
                print(f"{model}: round {i + 1}/{rounds}", file=sys.stderr)
                per_round.append(one_round(model, a.quick, work, flip=i % 2 == 1, baseline=baselines.get(model), same=same))
            for r in per_round:
                for k in ("export/ours", "export/keras"):
                    r[k].pop("onnx_path", None)
            results[model] = {"rounds": per_round, **summarise(per_round, model in baselines, same is not None), "image": image_size(model, a.quick),
                              "keras_params": config["params"]}
    write_result("peers", {
        "quick": a.quick,
        "rounds": rounds,
        "keras": _keras_version(),
        "conditions": "fresh processes per measure (the jitted forwards: both in one process, called in turn); "
                      "the two frameworks alternate within each round, the order flipping every round; "
                      "ratios are nnx-build / Keras, medians of per-round ratios; nnx-build's bytecode written first, as pip does for an installed package",
        "models": results,
    }, a.out)
    return 0


def _keras_version() -> str:
    from importlib.metadata import version

    return version("keras")


if __name__ == "__main__":
    raise SystemExit(main())
