#!/usr/bin/env bash
# Runs on a lent GPU machine (no network, no PyAV): trains the teacher and distils the students from
# a training bundle within a time budget; weights, pipeline.json, the log and the run logs land in $OUT.
#   here:  kdsharp train pack -c configs/bundle.yaml -o .bundle/bundle.zip
#   there: MINUTES=8.5 bash scripts/gpu_pipeline.sh [--stages ... --share STAGE=W --set STAGE:KEY=VALUE]   (.bundle carried)
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__)"
python3 -m kdsharp train pipeline --bundle "${BUNDLE:-.bundle/bundle.zip}" --minutes "${MINUTES:-8.5}" \
    --out /tmp/kdsharp-runs --publish "$OUT" --publish-every 60 "$@" 2>&1 | tee "$OUT/log.txt"
rc=${PIPESTATUS[0]}
# the best validated weights of each stage, when they are not the final ones (the students' pick)
cp /tmp/kdsharp-runs/*/*_best.safetensors "$OUT"/ 2>/dev/null
tar -czf "$OUT/runs.tgz" -C /tmp/kdsharp-runs --exclude='*.pth' --exclude='*.safetensors' . 2>/dev/null
exit "$rc"
