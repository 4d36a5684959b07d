"""Options that several commands share, declared once: --model, --backend, --precision, --label-map, --split, and
predict's and eval's --mode, --tile, --stride, --batch-size, --max-side and --tta."""

from __future__ import annotations

import typer

from segcli.inference.predictor import DEFAULT_MAX_SIDE

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
#: --label-map of data check, train and eval (segcli.data.label_map).
LABEL_MAP = typer.Option(None, "--label-map", metavar="FILE", help="A JSON object mapping raw mask "
                         "values to class ids, e.g. Cityscapes' labelIds to train ids: {\"7\": 0, \"8\": 1} (values "
                         "it does not name become 255 = ignore); or reduce_zero_label, mmsegmentation's for masks whose "
                         "0 means unlabelled (ADE20K, LoveDA, Potsdam, Vaihingen): 0 becomes 255 and 1..N classes "
                         "0..N-1.")
#: --split of eval and bench --data: which pairs are scored (segcli.inference.evaluate.select_pairs).
SPLIT = typer.Option("auto", "--split", help="auto (the val folder if any, else all pairs), val, train or all.")

# --- how predict and eval run the network --------------------------------------------------------------------------
MODE = typer.Option("whole", "--mode", help="whole: resize to the model size; slide: tiles, for large images.")
TILE = typer.Option(None, "--tile", help="Slide tile size (multiple of 32; default model size or 512).")
STRIDE = typer.Option(None, "--stride", help="Slide step in pixels (default 2/3 of the tile).")
BATCH_SIZE = typer.Option(None, "--batch-size", "-b", help="Images (whole) or tiles (slide) per network call. Default: "
                          "1 on a CPU (fastest end to end there), 8 with TensorFlow on a GPU.")
MAX_SIDE = typer.Option(None, "--max-side", help="Whole mode, dynamic-size models: cap on the longest side (at least "
                        f"32) [default: {DEFAULT_MAX_SIDE}].")
TTA = typer.Option(None, "--tta", help="Test-time augmentation, averaging the views' probabilities: flip, "
                   "scales=0.75,1.0,1.25, or both (flip,scales=0.75,1.0). Whole mode only.")
