"""The Python API: the CLI's steps for notebooks and scripts.

    import trigger
    design = trigger.convert("qkeras_3layer.json")        # or a model folder, or a Keras model object
    scores = design.predict(x)                            # the firmware, bit-exact, on float events
    design.compare(x)                                     # the model vs the firmware, layer by layer
    bundle = design.build("build/tagger")                 # hls/, rtl/, vectors/, manifest.json
    trigger.verify(bundle); trigger.report(bundle, data="events.npz")

``convert`` takes the settings of ``trigger build`` as keywords and maps them onto the same
``BuildOptions`` and ``trigger.yml`` sections; ``verify`` and ``report`` call the functions the CLI
calls and return the dicts ``reports/verify.json`` and ``reports/report.json`` hold. TensorFlow and
hls4ml are imported inside the functions that need them, so ``import trigger`` stays light.
"""

from __future__ import annotations

import copy
import html
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from trigger.errors import ConfigError
from trigger.source_model import quantize, to_float  # noqa: F401  (part of the API: raw integers <-> reals)

ArrayLike = Union[np.ndarray, Sequence[np.ndarray]]


# keyword of convert -> (where it goes: "option" = BuildOptions field, or a trigger.yml section path)
SETTINGS = {
    "weights": ("option", "weights"),
    "precision": ("option", "precision"),
    "hls_config": ("option", "hls_config"),
    "backend": ("option", "backend"),
    "pipeline": ("option", "pipeline"),
    "softmax": ("option", "keep_softmax"),
    "argmax": ("option", "argmax"),
    "part": ("option", "part"),
    "clock": ("option", "clock_period_ns"),
    "vectors": ("option", "vectors"),
    "ii": ("option", "ii"),
    "hls_precision": ("config", ("hls", "precision")),
    "input_precision": ("config", ("hls", "input_precision")),
    "softmax_tables": ("config", ("hls", "softmax")),
    "clock_mhz": ("config", ("target", "clock_mhz")),
    "multiplier": ("config", ("rtl", "multiplier")),
    "layer_ii": ("config", ("rtl", "layer_ii")),
    "budget": ("config", ("budget",)),
    "name": ("config", ("name",)),
}


def convert(source: Any, *, config: dict | None = None, **settings) -> "Design":
    """Convert a model into a firmware design, as ``trigger build`` does before writing anything.

    ``source``: a model file (Keras ``.json`` + weights, full ``.h5``, ``.keras``, ``.onnx``), a model
    folder or its ``trigger.yml``, or an in-memory Keras/QKeras model (saved to a temporary folder as
    JSON + H5 and read back by the normal loader: nothing is unpickled).

    Settings (all optional; the CLI option in brackets):
      precision='fixed<16,6>' (--precision: post-training formats of a float model),
      hls_precision={'fc1': {'result': 'fixed<8,3>'}, ...} (trigger.yml hls.precision, hls4ml's layer names),
      hls_config=path or dict (--hls-config: hls4ml's config_from_keras_model output),
      input_precision='fixed<16,6>' (hls.input_precision), weights=path (--weights),
      backend='vitis'|'vivado', pipeline='layer'|'auto'|N, multiplier='shift_add'|'dsp'|N (rtl.multiplier),
      clock=ns (--clock) or clock_mhz=MHz, part='xcvu13p-...', ii=N|'auto', layer_ii={layer: N},
      softmax=True (--softmax), softmax_tables={...} (hls.softmax), argmax=True (--argmax),
      vectors=N (--vectors), budget={...}, name='...'.
    ``config``: any further trigger.yml sections, merged over the folder's own (for model folders).
    Bad settings raise ``trigger.errors.ConfigError`` (or ``ModelError``) with the CLI's one-line message.
    """
    from trigger.frontends import BuildOptions

    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"convert: unknown setting {unknown[0]!r} (known: {', '.join(sorted(SETTINGS))})")
    options, sections = {}, copy.deepcopy(config or {})
    for key, value in settings.items():
        if value is None:
            continue
        where, target = SETTINGS[key]
        if where == "option":
            options[target] = value
        else:
            node = sections
            for part in target[:-1]:
                node = node.setdefault(part, {})
            node[target[-1]] = value
    if "ii" in options:
        from trigger.ir.ii import parse_ii

        options["ii"] = parse_ii(options["ii"], "ii")
    if options.get("backend"):
        options["backend"] = str(options["backend"]).lower()
    with tempfile.TemporaryDirectory(prefix="trigger-api-") as work:
        work = Path(work)
        if isinstance(options.get("hls_config"), dict):  # hls4ml's config as a mapping: through the same reader
            path = work / "hls_config.json"
            path.write_text(json.dumps(options["hls_config"]))
            options["hls_config"] = str(path)
        elif options.get("hls_config") is not None:
            options["hls_config"] = str(options["hls_config"])
        label = Path(source).name if isinstance(source, (str, Path)) else ""
        if not isinstance(source, (str, Path)):
            if not hasattr(source, "to_json") or not hasattr(source, "save_weights"):
                raise ConfigError(f"convert: expected a model file, a model folder or a Keras model, "
                                  f"got {type(source).__name__}")
            source, label = save_keras(source, work), f"Keras model {getattr(source, 'name', '')}"
        build_options = BuildOptions(**options)
        design = _load(Path(source), build_options, sections)
    return Design(design, build_options, label)


def save_keras(model, folder: Path) -> Path:
    """An in-memory Keras/QKeras model as ``<name>.json`` + ``<name>_weights.h5`` (what the loader reads)."""
    import re

    name = re.sub(r"\W", "_", getattr(model, "name", "") or "model") or "model"
    json_path = Path(folder) / f"{name}.json"
    json_path.write_text(model.to_json())
    model.save_weights(str(Path(folder) / f"{name}_weights.h5"))
    return json_path


def _load(source: Path, options, sections: dict):
    """load_design, with trigger.yml sections given from Python merged in (a model file gets a config of its own)."""
    from trigger.frontends import FILE_FRONTENDS, FRONTENDS, _resolve, _refuse_cluster, load_design, read_config

    if not sections:
        return load_design(source, options)
    if source.is_dir() or source.suffix in (".yml", ".yaml"):
        config, path = read_config(source)
        config = _merge(config, sections)
        kind = config.get("kind")
        if kind not in FRONTENDS:
            raise ConfigError(f"{path}: field 'kind' must be one of {', '.join(sorted(FRONTENDS))}, got {kind!r}")
        if kind != "lut":
            _refuse_cluster(options, str(path))
        return _resolve(FRONTENDS[kind])(config, path, options)
    if not source.exists():
        raise ConfigError(f"{source} not found")
    if FILE_FRONTENDS.get(source.suffix.lower(), "").split(":")[0] not in ("trigger.frontends.network",
                                                                           "trigger.frontends.onnx",
                                                                           "trigger.frontends.hgq2"):
        raise ConfigError(f"{source}: settings other than the build options apply to networks only")
    model = {"file": str(source.resolve())}
    if options.weights:
        model["weights"] = str(Path(options.weights).resolve())
    config = _merge({"kind": "network", "model": model}, sections)
    return _resolve(FRONTENDS["network"])(config, source.resolve().parent / "trigger.yml", options)


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "budget":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class LayerComparison(dict):
    """The layer-by-layer comparison (the dict verify.json's ``layers`` holds), shown as a table in notebooks."""

    def _repr_html_(self) -> str:
        from trigger.frontends.layer_compare import TABLE_HEADER, describe, table_rows

        head = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in table_rows(self))
        return f"<p>{html.escape(describe(self))}</p><table><tr>{head}</tr>{body}</table>"

    def __str__(self) -> str:
        from trigger.frontends.layer_compare import describe

        return describe(self)


class Design:
    """A converted design: its firmware model, ready to emulate, compare, build.

    ``model`` is the firmware model (``trigger.ir.FirmwareModel``); ``frontend_design`` what the
    bundle writer takes (``trigger.frontends.Design``)."""

    def __init__(self, design, options, source: str = ""):
        self.frontend_design = design
        self.options = options
        self.source = source
        self.bundle: Path | None = None  # where build() last wrote it

    # ------------------------------------------------------------ what it is
    @property
    def model(self):
        return self.frontend_design.model

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def input_ports(self) -> list[tuple[str, int]]:
        """(name, element count) of each input port, in bus order."""
        return self.model.input_ports

    @property
    def output_names(self) -> list[str]:
        return self.model.output_names

    def __repr__(self) -> str:
        m = self.model
        return (f"<trigger.Design {m.name}: {m.input.n} inputs -> {m.output.n} outputs, {len(m.ops)} ops"
                f"{', built at ' + str(self.bundle) if self.bundle else ''}>")

    def _repr_html_(self) -> str:
        m = self.model
        esc = html.escape
        types = m.input_types()
        ports = "".join(f"<tr><td>input <b>{esc(n)}</b></td><td>{esc(types[n].describe())}</td></tr>"
                        for n, _ in m.input_ports)
        tensor = m.tensor_types()
        ports += "".join(f"<tr><td>output <b>{esc(n)}</b></td><td>{esc(tensor[n].describe())}</td></tr>"
                         for n in m.output_names)
        ops = "".join(f"<tr><td>{esc(op.name)}</td><td>{esc(op.kind)}</td><td>{esc(op.output.describe())}</td>"
                      f"<td>{esc(op.describe())}</td></tr>" for op in m.ops)
        latency = "estimated at build (design.build)"
        if self.bundle is not None:
            try:
                manifest = json.loads((self.bundle / "manifest.json").read_text())
                clock = manifest["target"]["clock_period_ns"]
                latency = (f"{manifest['latency_cycles']} cycles = {manifest['latency_cycles'] * clock:g} ns at "
                           f"{clock:g} ns, II {manifest.get('ii', 1)}")
            except (OSError, KeyError, ValueError):
                pass
        d = self.frontend_design
        return (f"<div><b>{esc(m.name)}</b> ({esc(m.kind)}, from {esc(self.source)}): {m.input.n} inputs, "
                f"{m.output.n} outputs, {len(m.ops)} ops; part {esc(d.part)}, clock {d.clock_period_ns:g} ns; "
                f"latency: {esc(latency)}"
                f"<table><tr><th>port</th><th>format</th></tr>{ports}</table>"
                f"<table><tr><th>op</th><th>kind</th><th>output format</th><th>what it computes</th></tr>{ops}"
                f"</table></div>")

    # ------------------------------------------------------------ inputs
    def _bus(self, x: ArrayLike, dtype) -> np.ndarray:
        """Events as rows of the input bus: one array (ports side by side, any shape per event), or a list per port."""
        m = self.model
        if isinstance(x, (list, tuple)):
            ports = m.input_ports
            if len(x) != len(ports):
                raise ConfigError(f"{m.name}: {len(x)} arrays given for {len(ports)} input ports "
                                  f"({', '.join(n for n, _ in ports)})")
            parts = []
            for (name, n), part in zip(ports, x):
                part = np.asarray(part, dtype=dtype)
                part = part.reshape(len(part), -1)
                if part.shape[1] != n:
                    raise ConfigError(f"{m.name}: input port {name} takes {n} values per event, got {part.shape[1]}")
                parts.append(part)
            if len({len(p) for p in parts}) > 1:
                raise ConfigError(f"{m.name}: the input ports' arrays have different numbers of events")
            return np.hstack(parts)
        x = np.asarray(x, dtype=dtype)
        if x.ndim == 1 and x.size == m.input.n:
            x = x.reshape(1, -1)
        x = x.reshape(len(x), -1)
        if x.shape[1] != m.input.n:
            raise ConfigError(f"{m.name}: {x.shape[1]} values per event given, the firmware has {m.input.n} inputs")
        return x

    def quantize(self, x: ArrayLike) -> np.ndarray:
        """Raw input integers of float events, exactly as the firmware's inputs hold them (``model.input.quantize``)."""
        return quantize(self.model.input, self._bus(x, np.float64))

    def _outputs(self, values: np.ndarray):
        slices = self.model.output_slices()
        if len(slices) == 1:
            return values
        return [values[:, first:first + n] for _, first, n in slices]

    # ------------------------------------------------------------ the firmware
    def predict_raw(self, raw: ArrayLike) -> np.ndarray:
        """Raw integers in, raw integers out: the bit-exact emulator on rows of the input bus (as the bundle's
        vectors/inputs.npy hold them); returns the output bus (as vectors/outputs.npy holds it)."""
        from trigger.ir.model import emulate

        parts = raw if isinstance(raw, (list, tuple)) else [raw]
        if any(np.asarray(p).dtype.kind not in "iu" for p in parts):
            raise ConfigError(f"{self.name}: predict_raw takes raw integers (use predict for float events)")
        return emulate(self.model, self._bus(raw, np.int64)).outputs

    def predict(self, x: ArrayLike):
        """The firmware's outputs (floats) on float events, each input quantized to its format as the firmware's
        inputs would be. Several input ports: a list of arrays, or one array with the ports side by side.
        Returns one array (events x outputs), or a list with one array per output tensor."""
        from trigger.ir.model import emulate

        out = emulate(self.model, self.quantize(x)).outputs
        return self._outputs(to_float(self.model.output, out))

    def trace(self, x: ArrayLike) -> dict[str, np.ndarray]:
        """Every op's output (floats) on float events, keyed by op name (a Keras model's layer names; hls4ml's
        split activations as ``<layer>_relu`` ...)."""
        from trigger.ir.model import emulate

        result = emulate(self.model, self.quantize(x), trace=True)
        return {op.name: to_float(op.output, t) for op, t in zip(self.model.ops, result.trace)}

    def overflows(self, x: ArrayLike) -> dict:
        """The emulator's overflow counters on float events: {op: {tensor: {values, overflows}}}."""
        from trigger.ir.model import emulate

        return emulate(self.model, self.quantize(x)).overflow_summary()

    # ------------------------------------------------------------ the source model
    def source_predict(self, x: ArrayLike) -> np.ndarray:
        """The source model, run by its own framework, on float events (not quantized); the output bus as floats."""
        source = getattr(self.frontend_design, "source_model", None)
        if source is None:
            raise ConfigError(f"{self.name}: no source model to run (a table or tree design)")
        return np.asarray(source.predict(self._bus(x, np.float64)), dtype=np.float64)

    def compare(self, x: ArrayLike | None = None, tolerance: float | None = None) -> LayerComparison:
        """The source model vs the firmware layer by layer (``trigger.frontends.layer_compare``): per layer the equal count, the
        largest and median deviation in LSBs, the overflow count, and the first deviating layer with an example.

        ``x``: float events (quantized to the input formats; the source model gets the same input values);
        default: the vectors the bundle stores. ``tolerance``: for inexact (float) models, the share of a
        layer's range above which it counts as deviating (default 1 %)."""
        from trigger.frontends.layer_compare import TOLERANCE, compare_layers, layer_source
        from trigger.vectors import DEFAULT_SEED, test_vectors

        d = self.frontend_design
        loaded = getattr(d, "loaded", None)
        source = getattr(d, "source_model", None)
        if loaded is None or source is None:
            raise ConfigError(f"{self.name}: no source model to compare with (a table or tree design)")
        layers = layer_source(loaded, bool(source.exact), self.model)
        raw = test_vectors(self.model, d.vectors, DEFAULT_SEED, d.extra_vectors) if x is None else self.quantize(x)
        result = compare_layers(self.model, layers, raw, TOLERANCE if tolerance is None else tolerance)
        if x is not None:
            from trigger.physics import quantize_inputs

            result["inputs"] = quantize_inputs(self.model, self._bus(x, np.float64))[1]
        return LayerComparison(result)

    # ------------------------------------------------------------ the bundle
    def build(self, out_dir, data=None, y=None, progress: bool = True) -> Path:
        """Write the bundle (what ``trigger build`` writes) into ``out_dir``; returns its path.

        ``data``: the user's events (a file or an array) on which to store the source model's outputs, for
        ``trigger.report(bundle, data=...)`` to show beside the firmware."""
        from trigger.bundle import build_bundle

        if data is not None:
            from trigger.physics import store_source_outputs

            store_source_outputs(self.frontend_design, data, y)
        path = build_bundle(self.source, out_dir, self.options, progress=progress, design=self.frontend_design)
        self.bundle = Path(path)
        return self.bundle


def verify(bundle, simulator: str = "verilator", vectors: int | None = None, progress: bool = True,
           scheduler: str | None = None, workers: int | None = None) -> dict:
    """``trigger verify``: emulator == HLS C simulation == RTL simulation (and the source model, and its layers);
    writes and returns ``reports/verify.json``; ``result['pass']`` is the verdict. With ``scheduler`` (a Dask
    scheduler's address) or ``workers`` (a LocalCluster of that many), the vector sets run on the cluster, as
    ``trigger verify --scheduler/--workers``: the same ``verify.json`` apart from its timings."""
    from trigger.verify import verify_bundle, verify_on_cluster

    if scheduler is not None or workers is not None:
        return verify_on_cluster(Path(bundle), scheduler, workers, simulator=simulator, vectors=vectors,
                                 progress=progress)
    return verify_bundle(Path(bundle), simulator=simulator, vectors=vectors, progress=progress)


def report(bundle, data=None, y=None, *, budget=None, synth: bool = True, task: str | None = None,
           threshold: float | None = None, rate_mhz: float | None = None, classes=None) -> dict:
    """``trigger report``: latency, resources (Yosys; ``synth=False`` skips it), bit-exactness, the layer comparison
    and, with ``data`` (a file: .npz/.h5 with x and optionally y, or a CSV; or an array of events with ``y``),
    the physics section (``task``, ``threshold``, ``rate_mhz`` and ``classes`` as ``trigger report``'s options); writes
    and returns ``reports/report.json`` (also report.md and report.html)."""
    from trigger.report import build_report

    physics = None
    if data is not None:
        physics = {"data": data, "y": y, "task": task, "threshold": threshold, "class_names": classes}
        if rate_mhz is not None:
            physics["rate_mhz"] = rate_mhz
    return build_report(Path(bundle), budget, synth=synth, physics=physics)
