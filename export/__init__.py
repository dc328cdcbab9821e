"""Exporter: a trained checkpoint as ONNX (one time step, stateful ``snn`` neuron ops,
docs/onnx_protocol.md), TorchScript, torch.export (pt2) or NIR (docs/nir_mapping.md).

Python API (what other parts call):

* :func:`export.onnx_export.export_onnx` ``(cfg, model, path) -> Path``
* :func:`export.torch_formats.export_torchscript`, :func:`export.torch_formats.export_pt2`
* :func:`export.nir_export.export_nir`
* :func:`export.protocol.read_protocol` ``(path | ModelProto) -> runtime.protocol.Protocol``
* :func:`export.check.check_onnx` ``(cfg, model, onnx_path) -> CheckResult``
"""
