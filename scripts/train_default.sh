#!/bin/sh
# Reproduces ml/weights/default.pt (see ml/weights/MODEL_CARD.md) on the CPU (bf16 autocast
# where the CPU has AMX or AVX512-BF16); the same command uses a GPU when one is visible
# (numbers then differ slightly). SEED=N trains an ensemble member with another seed;
# arguments after the output path go to `ml train` (e.g. --resume to continue a stopped run).
# Data: FER2013 train (28,709) for training, PublicTest (3,589) only to pick the best epoch.
set -eu
cd "$(dirname "$0")/.."
DATA="${EDUMOOD_DATA_DIR:-../shared/data}/fer2013"
OUT="${1:-ml/weights/default.pt}"
[ $# -gt 0 ] && shift  # the rest (e.g. --resume) goes to `ml train`
exec nice -n "${NICE:-5}" .venv/bin/python -m ml --threads "${THREADS:-2}" train \
  --data "$DATA/train" --val "$DATA/val" \
  --arch edu-vgg-s --epochs "${EPOCHS:-36}" --batch-size 128 \
  --optimizer adamw --lr 2e-3 --weight-decay 0.05 --scheduler onecycle \
  --label-smoothing 0.1 --small-faces 0.5 --normalisation standardize --seed "${SEED:-0}" \
  --out "$OUT" "$@"
