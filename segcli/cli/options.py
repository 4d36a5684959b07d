"""Options that several commands share, declared once: --model, --backend, --precision."""

from __future__ import annotations

import typer

MODEL_HELP = ("Run directory (best.keras + classes.json), .keras file, model name (`segcli presets`, `segcli weights "
              "list`: fine-tuned presets and imported names), weights folder, or exported .onnx/.tflite/OpenVINO "
              "model. Default: $SEGCLI_MODEL, else segformer_b0_ade20k_512.")
MODEL = typer.Option(None, "--model", "-m", help=MODEL_HELP)
BACKEND = typer.Option("auto", "--backend", help="auto (OpenVINO on a CPU-only machine where it is installed, "
                       "else TensorFlow: measured in benchmarks/RESULTS.md), tensorflow, openvino, or onnxruntime "
                       "(exported .onnx files).")
PRECISION = typer.Option("fp32", "--precision", help="fp32; bf16 (OpenVINO, on CPUs with AMX or AVX-512 BF16); int8 "
                         "(an int8 OpenVINO IR made by `segcli export --precision int8`).")
