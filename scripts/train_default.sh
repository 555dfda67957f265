#!/bin/sh
# Trains one member of the default model (ml/weights/members/, see ml/weights/MODEL_CARD.md):
# v3's recipe on the CPU (bf16 autocast where the CPU has AMX or AVX512-BF16); the same command
# uses a GPU when one is visible (numbers then differ slightly). SEED=N picks the member's seed;
# arguments after the output path go to `ml train` (e.g. --resume to continue a stopped run,
# --teacher CKPT for a distilled student). `python -m ml ensemble` then combines members into
# ml/weights/default.pt (the card gives the commands).
# Data: FER2013 train (28,709) for training, PublicTest (3,589) only to pick the best epoch.
set -eu
cd "$(dirname "$0")/.."
DATA="${EDUMOOD_DATA_DIR:-../shared/data}/fer2013"
OUT="${1:?usage: scripts/train_default.sh CHECKPOINT [ml train options]}"
shift  # the rest (e.g. --resume) goes to `ml train`
exec nice -n "${NICE:-5}" .venv/bin/python -m ml --threads "${THREADS:-2}" train \
  --data "$DATA/train" --val "$DATA/val" \
  --arch edu-vgg-s --epochs "${EPOCHS:-36}" --batch-size 128 \
  --optimizer adamw --lr 2e-3 --weight-decay 0.05 --scheduler onecycle \
  --label-smoothing 0.1 --small-faces 0.5 --normalisation standardize --seed "${SEED:-0}" \
  --out "$OUT" "$@"
