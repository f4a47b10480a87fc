#!/usr/bin/env bash
# Issue 15's GPU figure: `kdsharp bench --video` end to end (decode -> model -> encode, audio copied)
# on a lent CUDA GPU, 1080p and 720p synthetic call clips, `student` and `fast` in fp16, plus the
# bare models. The device image has no PyAV and no network, so PyAV travels as a wheel:
#   here:  pip download av==18.1.0 --only-binary :all: --python-version 3.12 \
#              --platform manylinux_2_28_x86_64 --no-deps -d .device_wheels        (36 MB; ignored by git)
#   there: bash scripts/gpu_video_bench.sh                          (carry .device_wheels)
# One JSON object per line goes to $OUT/gpu_video.jsonl, the console to $OUT/log.txt.
# A CPU smoke test: DEVICE=cpu HALF= FRAMES=20 SECONDS=1 OUT=/tmp/gv bash scripts/gpu_video_bench.sh
set -uo pipefail
OUT=${OUT:-gpu_out}
DEVICE=${DEVICE:-cuda}
HALF=${HALF---half}
FRAMES=${FRAMES:-300}
SECONDS_CLIP=${SECONDS:-10}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
if ! python3 -c "import av" 2>/dev/null; then
    python3 -m pip install -q --no-index --find-links .device_wheels --target /tmp/kdsharp-pyav av || exit 1
    export PYTHONPATH=/tmp/kdsharp-pyav
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
echo "cpus: $(nproc)"
python3 -c "import torch, av; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'av', av.__version__)"
python3 - "$SECONDS_CLIP" <<'EOF' || exit 1
import sys
from kdsharp.infer.clips import write_call_clip
s = float(sys.argv[1])
write_call_clip("/tmp/kdsharp-pan1080.mp4", (1920, 1080), s, 30, "pan", preset="ultrafast")
write_call_clip("/tmp/kdsharp-talking720.mp4", (1280, 720), s, 30, "talking", preset="ultrafast")
EOF
json="$OUT/gpu_video.jsonl"
: >"$json"
for model in student fast; do
    for clip in /tmp/kdsharp-pan1080.mp4 /tmp/kdsharp-talking720.mp4; do
        python3 -m kdsharp bench --video "$clip" --frames "$FRAMES" --model "$model" --device "$DEVICE" $HALF \
            --json >>"$json" || echo "bench --video $clip --model $model failed"
    done
    python3 -m kdsharp bench --model "$model" --device "$DEVICE" $HALF --json >>"$json" \
        || echo "bench --model $model failed"
done
cat "$json"
