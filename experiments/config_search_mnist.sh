#!/usr/bin/env bash
# Temporal configuration search (issue 17) on MNIST images with a spiking ResNet (resnet10, width 8,
# BatchNorm, 4 stages), repeat encoding, Tmax = 6. Data: 1,000 of the training images outside the
# validation split (first 3,750 MNIST training images; validation = index % 10 == 1, 375 images),
# 1,000 of the first 8,000 test images (evenly spread). 2 epochs only (shared 2-core machine).
# Usage: experiments/config_search_mnist.sh [SEED] [DATA_DIR]   (about 2 min on a busy 2-core machine: 97 and 125 s measured)
set -euo pipefail
NAME=config_search_mnist
DEFAULT_DATA=../shared/data/mnist
. "$(dirname "$0")/config_search_common.sh"
[ -f "$OUT/R.pt" ] || python -m trainer fit --data "mnist:$DATA" --model resnet10 --width 8 --stages 4 --epochs 2 \
    --batch-size 32 --lr 5e-3 --seed "$SEED" --tmin 1 --tmax 6 --configs-per-batch 2 --limit-train 1000 --limit 1000 \
    --neuron lif --norm bn --method mtt --anchor none --threads 1 --quiet --out "$OUT/R.pt"  # as published (see config_search.sh)
search R 3 --validate-configs 30 --calib-batches 3 --limit 1000
