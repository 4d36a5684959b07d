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
PRECISION = typer.Option("auto", "--precision", help="auto (bf16 where OpenVINO runs on a CPU with AMX or AVX-512 "
                         "BF16: >= 99.5% mask agreement with fp32 on trained models, benchmarks/RESULTS_trained.md; "
                         "else fp32), fp32, bf16, or int8 (an int8 OpenVINO IR made by `segcli export --precision "
                         "int8`).")
#: --split of eval and bench --data: which pairs are scored (segcli.inference.evaluate.select_pairs).
SPLIT = typer.Option("auto", "--split", help="auto (the val folder if any, else all pairs), val, train or all.")
