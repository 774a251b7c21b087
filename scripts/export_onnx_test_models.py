"""Writes the PyTorch and Brevitas test models of tests/test_onnx_exports.py into tests/data/onnx/.

Run in the torch venv (never the project's .venv): ``scripts/setup_torch.sh`` creates it, then

    .venv-torch/bin/python scripts/export_onnx_test_models.py

Each network is trained for a few hundred small steps (seeded, CPU, seconds) on the toy jet
features of ``trigger.data.jets`` (16 standardised features, 5 classes; numpy only, no TensorFlow),
viewed as (N, 4, 4) for the MLPs, so that their forward pass starts with ``x.view(x.size(0), -1)``
(the CNN and the sequence network take the same 16 numbers in their own input shapes). Each is then
written as its exporter writes it, with nothing simplified afterwards:

- ``torch_mlp_bn.onnx``: float PyTorch, (N, 4, 4) -> view(N, -1) -> Linear 32 -> BatchNorm1d ->
  ReLU -> Linear 5, by ``torch.onnx.export(dynamo=False)`` (the TorchScript exporter, opset 17) with
  a dynamic batch: the flatten is a Shape -> Gather -> Unsqueeze -> Concat chain feeding a Reshape.
- ``torch_mlp_bn_dynamo.onnx``: the same network by ``torch.onnx.export`` with this torch's
  default exporter (torch.export / dynamo) and a dynamic batch: Shape(start, end) -> Concat -> Reshape.
- ``torch_cnn_bn.onnx``: float PyTorch, (N, 2, 2, 4) -> Conv2d 4 (1 x 3) -> BatchNorm2d -> ReLU ->
  view(N, -1) -> Linear 5 (TorchScript exporter, dynamic batch): a channels-first image with 2 channels.
- ``torch_bn1d_seq.onnx``: float PyTorch, (N, 2, 8) -> BatchNorm1d(2) on the rank-3 tensor -> ReLU ->
  flatten -> Linear 5 (TorchScript exporter, dynamic batch).
- ``brevitas_mlp.onnx``: Brevitas, (N, 4, 4) -> view(N, -1) -> QuantIdentity (8-bit, power-of-two
  scale) -> QuantLinear 24 (4-bit weights) -> QuantReLU (4-bit) -> QuantLinear 5 (4-bit weights) ->
  QuantIdentity (8-bit), by ``brevitas.export.export_qonnx(dynamo=False)`` with a dynamic batch.
- ``brevitas_mlp_dynamo.onnx``: the same network by ``export_qonnx`` with its default exporter
  (dynamo, for this torch) and a fixed batch of 1.

``reference_outputs.npz`` holds 64 fixed inputs (``x``, (64, 4, 4) float32, toy jets of another seed) and
the source framework's own outputs on them, written by the process that exported the files:
``torch_mlp_bn`` (PyTorch's eval-mode forward; both torch MLP files export it), ``torch_cnn_bn`` and
``torch_bn1d_seq`` (the same 16 numbers per input in those networks' input shapes), and ``brevitas_mlp``
(Brevitas' quantized forward, dequantized: output levels times the output quantizer's scale; both
Brevitas files export it). ``versions.json`` records the versions that wrote them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "onnx"
SEED = 20261207
STEPS = 300
BATCH = 64
OPSET = 17  # for the TorchScript exporter; the dynamo exporter uses its own default


def toy_jets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4, 4) float32 features and class labels from the project's toy jet generator (numpy only)."""
    sys.path.insert(0, str(REPO))
    from trigger.data import jets

    x, y = jets.generate(n, seed=seed)
    return x.reshape(n, 4, 4).astype(np.float32), y.astype(np.int64)


class TorchMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        x = x.view(x.size(0), -1)
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


class TorchCNN(nn.Module):
    """(N, 2, 2, 4) -> Conv2d 4 (1 x 3) -> BatchNorm2d -> ReLU -> view(N, -1) -> Linear 5: a channels-first image."""

    shape = (2, 2, 4)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, (1, 3))
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.fc(x.view(x.size(0), -1))


class TorchSequenceBN(nn.Module):
    """(N, 2, 8) -> BatchNorm1d(2) (on the rank-3 tensor) -> ReLU -> flatten -> Linear 5."""

    shape = (2, 8)

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(2)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(x)), 1))


def brevitas_mlp() -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFixedPoint

    class BrevitasMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 24, bias=True, weight_bit_width=4)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(24, 5, bias=True, weight_bit_width=4)
            self.out = qnn.QuantIdentity(bit_width=8)

        def forward(self, x):
            x = self.inp(x.view(x.size(0), -1))
            return self.out(self.fc2(self.relu(self.fc1(x))))

    return BrevitasMLP()


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """A few hundred Adam steps on small batches: enough for batch-norm statistics and activation scales."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(STEPS):
        idx = torch.randint(0, len(xt), (BATCH,), generator=gen)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    print(f"  trained {STEPS} steps: loss {loss.item():.3f}, accuracy {acc:.3f} on {len(xt)} training samples")
    return model


def outputs(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        y = model(torch.from_numpy(x))
    return np.asarray(getattr(y, "value", y).detach().numpy(), dtype=np.float32)


def dynamic_batch(input_name: str, output_name: str) -> dict:
    return dict(input_names=[input_name], output_names=[output_name],
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})


def _drop_orphan_data(path: Path) -> None:
    """Brevitas re-saves torch's export with every tensor inline; torch's external-data file stays behind unused."""
    import onnx

    data = path.with_name(path.name + ".data")
    proto = onnx.load(str(path), load_external_data=False)
    if data.exists() and not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        data.unlink()


def main() -> None:
    import brevitas
    import onnx
    from brevitas.export import export_qonnx

    OUT.mkdir(parents=True, exist_ok=True)
    x_train, y_train = toy_jets(4000, SEED)
    x_fixed, _ = toy_jets(64, SEED + 1)
    example = torch.from_numpy(x_fixed[:2])
    reference: dict[str, np.ndarray] = {"x": x_fixed}
    written = []

    torch.manual_seed(SEED)
    print("PyTorch MLP with BatchNorm1d")
    mlp = train(TorchMLP(), x_train, y_train, SEED)
    torch.onnx.export(mlp, (example,), OUT / "torch_mlp_bn.onnx", dynamo=False, opset_version=OPSET,
                      **dynamic_batch("x", "logits"))
    torch.onnx.export(mlp, (example,), OUT / "torch_mlp_bn_dynamo.onnx", input_names=["x"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    reference["torch_mlp_bn"] = outputs(mlp, x_fixed)
    written += ["torch_mlp_bn", "torch_mlp_bn_dynamo"]

    for name, cls, seed in (("torch_cnn_bn", TorchCNN, SEED + 4), ("torch_bn1d_seq", TorchSequenceBN, SEED + 6)):
        torch.manual_seed(seed)
        print(f"PyTorch {cls.__name__}")
        shape = cls.shape
        net = train(cls(), x_train.reshape(-1, *shape), y_train, seed)
        torch.onnx.export(net, (example.reshape(-1, *shape),), OUT / f"{name}.onnx", dynamo=False,
                          opset_version=OPSET, **dynamic_batch("x", "logits"))
        reference[name] = outputs(net, x_fixed.reshape(-1, *shape))
        written.append(name)

    torch.manual_seed(SEED + 2)
    print("Brevitas MLP")
    qmlp = train(brevitas_mlp(), x_train, y_train, SEED + 2)
    export_qonnx(qmlp, example, export_path=str(OUT / "brevitas_mlp.onnx"), dynamo=False, opset_version=OPSET,
                 **dynamic_batch("x", "y"))
    export_qonnx(qmlp, example[:1], export_path=str(OUT / "brevitas_mlp_dynamo.onnx"))
    _drop_orphan_data(OUT / "brevitas_mlp_dynamo.onnx")
    reference["brevitas_mlp"] = outputs(qmlp, x_fixed)
    written += ["brevitas_mlp", "brevitas_mlp_dynamo"]

    np.savez_compressed(OUT / "reference_outputs.npz", **reference)
    versions = {"torch": torch.__version__, "brevitas": brevitas.__version__, "onnx": onnx.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0]}
    (OUT / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    for name in written:
        proto = onnx.load(str(OUT / f"{name}.onnx"))
        ops = " ".join(n.op_type for n in proto.graph.node)
        print(f"{name}.onnx: {(OUT / f'{name}.onnx').stat().st_size} bytes, opset "
              f"{proto.opset_import[0].version}: {ops}")
    print(f"versions: {versions}")


if __name__ == "__main__":
    main()
