#!/usr/bin/env bash
# The "B0 trained at 512 px on synth data" that RESULTS_trained.md and RESULTS_tta.md measure, rebuilt from scratch:
#   bash benchmarks/trained_512_model.sh WORK      -> WORK/synth512 (data) and WORK/run512b (the model)
# No weights can be downloaded here, so it starts from random init: 27 epochs at 128 px crops (the from-scratch
# recipe), 2 epochs at 512 (the paper's recipe), then 6 at 512 with lr 6e-4, head x1, 50 warm-up steps.
# About 30 minutes on 2 cores. Each stage resumes if killed (segcli train --resume).
set -euo pipefail
work=${1:?usage: trained_512_model.sh WORK}
segcli=${SEGCLI:-segcli}
mkdir -p "$work"
[ -f "$work/synth512/classes.json" ] || "$segcli" data synth "$work/synth512" --n 400 --size 512 --seed 12
stage() {  # stage OUT ARGS...: train into OUT; a killed run resumes, a finished one returns at once
  local out=$1; shift
  local resume=(); [ -d "$out" ] && resume=(--resume)
  "$segcli" train "$work/synth512" --out "$out" "${resume[@]}" "$@"
}
stage "$work/run128" --preset segformer_b0 --scratch --image-size 128 --epochs 27
stage "$work/run512a" --preset "$work/run128/best.keras" --image-size 512 --batch-size 4 --epochs 2
stage "$work/run512b" --preset "$work/run512a/best.keras" --image-size 512 --batch-size 4 --epochs 6 \
  --lr 6e-4 --head-lr-mult 1 --warmup-steps 50
