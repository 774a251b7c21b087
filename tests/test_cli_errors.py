"""What a user sees when something is wrong: one line and exit 2 for bad input, a traceback for a bug,
and no TensorFlow start-up noise."""

import os
import subprocess
import sys
import zipfile

import pytest

from trigger import cli
from trigger.cli import build_parser, main
from trigger.errors import BundleError, ConfigError, ModelError, ToolError, TriggerError


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# ------------------------------------------------------------- option values
@pytest.mark.parametrize("argv, option", [
    (["build", "X", "--clock", "-1"], "--clock"),
    (["build", "X", "--clock", "0"], "--clock"),
    (["build", "X", "--clock", "nan"], "--clock"),
    (["build", "X", "--clock", "inf"], "--clock"),
    (["build", "X", "--clock", "250MHz"], "--clock"),
    (["build", "X", "--vectors", "-5"], "--vectors"),
    (["build", "X", "--vectors", "0"], "--vectors"),
    (["build", "X", "--vectors", "1.5"], "--vectors"),
    (["build", "X", "--part", "foo"], "--part"),
    (["build", "X", "--part", ""], "--part"),
    (["build", "X", "--pipeline", "0"], "--pipeline"),
    (["build", "X", "--pipeline", "every"], "--pipeline"),
    (["verify", "X", "--vectors", "0"], "--vectors"),
    (["ci", "X", "--clock", "-4"], "--clock"),
    (["ci", "X", "--part", "xc9999"], "--part"),
])
def test_bad_option_values_are_refused_in_one_line(argv, option, capsys):
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"trigger {argv[0]}: error: argument {option}"), line
    assert repr(argv[argv.index(option) + 1]) in line  # the offending value is quoted


def test_unknown_part_error_lists_the_known_parts(capsys):
    from trigger.parts import PARTS

    assert main(["build", "X", "--part", "foo"]) == 2
    line = _one_error_line(capsys)
    assert all(name in line for name in PARTS)


def test_good_option_values_are_parsed():
    args = build_parser().parse_args(["build", "X", "--clock", "2.5", "--vectors", "300", "--pipeline", "3",
                                      "--part", "xcvu13p-flga2577-2-e"])
    assert (args.clock, args.vectors, args.pipeline, args.part) == (2.5, 300, 3, "xcvu13p-flga2577-2-e")
    args = build_parser().parse_args(["ci", "X", "--pipeline", "layer", "--part", "xc7z020clg400-1"])
    assert (args.pipeline, args.part) == ("layer", "xc7z020clg400-1")
    args = build_parser().parse_args(["build", "X"])
    assert (args.clock, args.vectors, args.pipeline, args.part) == (None, None, None, None)


def test_clock_help_says_period_in_ns(capsys):
    assert main(["build", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "clock PERIOD in ns" in out


def test_unknown_command_is_one_line(capsys):
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in _one_error_line(capsys)


# ------------------------------------------------------- errors from the flow
@pytest.mark.parametrize("error", [ConfigError, ModelError, BundleError, ToolError, TriggerError])
def test_trigger_errors_are_one_line_and_exit_2(error, monkeypatch, capsys):
    def fail(args):
        raise error("models/x/trigger.yml: field 'clock_period_ns' must be positive")

    monkeypatch.setattr(cli, "cmd_doctor", fail)
    assert main(["doctor"]) == 2
    assert _one_error_line(capsys) == \
        "trigger doctor: error: models/x/trigger.yml: field 'clock_period_ns' must be positive"


def test_a_multiline_message_is_printed_on_one_line(monkeypatch, capsys):
    def fail(args):
        raise ModelError("m.h5: first\n  second\n")

    monkeypatch.setattr(cli, "cmd_doctor", fail)
    assert main(["doctor"]) == 2
    assert _one_error_line(capsys) == "trigger doctor: error: m.h5: first; second"


@pytest.mark.parametrize("bug", [ValueError("bad index"), RuntimeError("boom"), FileNotFoundError("x"),
                                 KeyError("k"), TypeError("t")])
def test_bugs_keep_their_traceback(bug, monkeypatch):
    def fail(args):
        raise bug

    monkeypatch.setattr(cli, "cmd_doctor", fail)
    with pytest.raises(type(bug)):
        main(["doctor"])


def test_interrupt_exits_130(monkeypatch, capsys):
    def fail(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_doctor", fail)
    assert main(["doctor"]) == 130
    assert _one_error_line(capsys) == "trigger doctor: interrupted"


def test_missing_or_bad_source_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default output folder is build/<name> under the current one
    assert main(["build", str(tmp_path / "nope.json")]) == 2
    assert "nope.json not found" in _one_error_line(capsys)
    (tmp_path / "trigger.yml").write_text("kind: tree\n")
    assert main(["build", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "'kind'" in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------ model files
def _keras3_archive(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.5.0"}')
        archive.writestr("config.json", '{"class_name": "Sequential", "config": {"layers": []}}')
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    return path


def test_keras3_archive_is_named_as_such(tmp_path):
    from trigger.frontends.keras import load_model

    path = _keras3_archive(tmp_path / "net.keras")
    with pytest.raises(ModelError) as err:
        load_model(path)
    message = str(err.value)  # an archive with a garbage weights file: named as the archive's member
    assert message.startswith(f"{path}: model.weights.h5 is not a readable HDF5 file"), message


def test_keras3_archive_renamed_h5_is_named_too(tmp_path):
    from trigger.frontends.keras import load_model

    with pytest.raises(ModelError, match="a Keras .keras archive .* named like an HDF5 file: rename it to .keras"):
        load_model(_keras3_archive(tmp_path / "net.h5"))


def test_other_zip_is_not_called_hdf5(tmp_path):
    from trigger.frontends.keras import load_model

    path = tmp_path / "net.h5"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="a zip archive, not an HDF5 model file"):
        load_model(path)


def test_keras3_archive_through_the_cli(tmp_path, capsys):
    path = _keras3_archive(tmp_path / "net.keras")
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"trigger build: error: {path}: model.weights.h5 is not a readable HDF5 file"), line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("source, match", [
    ("net.onnx", "ONNX"),
    ("net.pb", "unknown model file type"),
    ("missing.json", "not found"),
    ({"weights": "w.h5"}, "needs 'json'"),
])
def test_model_loader_raises_model_errors(source, match, tmp_path):
    from trigger.frontends.keras import load_model

    if isinstance(source, str):
        source = tmp_path / source
    with pytest.raises(ModelError, match=match):
        load_model(source)


def test_model_errors_are_value_errors_for_library_users(tmp_path):
    from trigger.frontends.keras import load_model

    with pytest.raises(ValueError):
        load_model(tmp_path / "net.onnx")


# --------------------------------------------------------- TensorFlow noise
def _python(code: str, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=300)


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_tensorflow_start_up_is_silent():
    run = _python("import trigger.quiet\nimport tensorflow, qkeras, hls4ml\nprint('ok')")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout == "ok\n"


@pytest.mark.slow  # seconds of work (make test-fast stays under 90 s)
def test_keras_and_tensorflow_warnings_are_silent(tmp_path):
    code = f"""
import trigger
import tensorflow as tf
from qkeras import QDense, quantized_bits
q = quantized_bits(6, 0, alpha=1)
model = tf.keras.Sequential([tf.keras.Input((4,)), QDense(2, kernel_quantizer=q, bias_quantizer=q)])
model.to_json()
model.save({str(tmp_path / 'm.h5')!r})
tf.keras.models.load_model({str(tmp_path / 'm.h5')!r}, custom_objects={{'QDense': QDense, 'quantized_bits': quantized_bits}})
"""
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""


def test_quiet_defaults_leave_the_users_settings_alone():
    run = _python("import os, trigger; print(os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ['TF_ENABLE_ONEDNN_OPTS'])",
                  TF_CPP_MIN_LOG_LEVEL="1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1", "0"]


def test_quiet_stdout_swallows_prints_and_replays_them_for_a_bug(capsys):
    from trigger.quiet import quiet_stdout

    with quiet_stdout():
        print("Interpreting Sequential")
    assert capsys.readouterr().out == ""

    with pytest.raises(ZeroDivisionError), quiet_stdout():
        print("Topology:")
        1 / 0
    captured = capsys.readouterr()
    assert captured.out == "" and "Topology:" in captured.err

    with pytest.raises(ModelError), quiet_stdout():
        print("Creating HLS model")
        raise ModelError("m: layer x is not supported")
    assert capsys.readouterr() == ("", "")


def test_quiet_stdout_at_the_file_descriptor(capfd):
    from trigger.quiet import quiet_stdout

    with quiet_stdout(fd=True):
        os.system("echo from a child process")
        print("from python")
    print("after")
    assert capfd.readouterr().out == "after\n"


@pytest.mark.parametrize("extra", [["--scheduler", "tcp://127.0.0.1:1"], ["--workers", "2"]])
def test_cluster_options_on_a_network_build_are_refused(extra, tmp_path, capsys):
    """A network build is one process: --scheduler/--workers there are an error, not silently ignored,
    and nothing is written."""
    out, model = tmp_path / "bundle", tmp_path / "net.onnx"
    model.write_bytes(b"not read: refused before loading")
    assert main(["build", str(model), "-o", str(out), *extra]) == 2
    line = _one_error_line(capsys)
    assert "net.onnx" in line and "kind lut" in line and "trigger scan" in line
    assert not out.exists()
