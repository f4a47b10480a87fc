#!/usr/bin/env bash
# Runs on a lent GPU machine (no network, no PyAV): several `kdsharp train pipeline` runs at once on
# one GPU, each a single stage with its own overrides, within one time budget -- a race between
# student designs (plus the teacher and `fast` continued), all reading the same training bundle.
# Small students leave an H100 mostly idle, so running them side by side costs little per run.
#   here:  kdsharp train pack -c configs/bundle.yaml -o .bundle/bundle.zip
#   there: MINUTES=7.5 bash scripts/gpu_race.sh          (.bundle carried; RACE=name,name to pick)
# Each run publishes its fp16 EMA weights every minute to $WORK/<run>/ (weights, pipeline.json) and
# logs to $WORK/<run>.log; at the end everything (weights, logs, run folders without .pth) is packed
# into ONE file, $OUT/race.tar: the device returns at most 8 files from $OUT (a first race that
# left its 20-odd files there got back only the logs, and the weights had to be fetched from /tmp).
# A CPU smoke test: SMOKE=1 MINUTES=1 OUT=/tmp/race bash scripts/gpu_race.sh
set -uo pipefail
FINAL=${OUT:-gpu_out}
OUT=${WORK:-/tmp/race-work}
MINUTES=${MINUTES:-7.5}
BUNDLE=${BUNDLE:-.bundle/bundle.zip}
WORKERS=${WORKERS:-2}
mkdir -p "$OUT" "$FINAL"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cv2', cv2.__version__)"

SMOKE_SETS=()
if [[ ${SMOKE:-0} == 1 ]]; then  # tiny batches on the CPU: checks every run starts, trains and publishes
    SMOKE_SETS=(data.batch=2 data.crop=64 val.count=4 val.max_images=4 val.every=5 amp=off channels_last=false)
fi

# name stage key=value... (each key=value becomes --set stage:key=value)
RUNS=(
    "teacher teacher data.crop=256 data.batch=8"
    "luma3 student model.name=resunet_luma model.init=null loss.distill_feature.scales=[s4,s8]"
    "luma4 student model.name=resunet_luma4 model.init=null loss.distill_feature.scales=[s4,s8]"
    "plain16x16 student model.name=fast_y model.kwargs.channels=16 model.kwargs.num_blocks=16 model.init=null loss.distill_feature.scales=[s4]"
    "plain32x4 student model.name=fast_y model.kwargs.channels=32 model.kwargs.num_blocks=4 model.init=null loss.distill_feature.scales=[s4]"
    "luma3_nokd student_nokd model.name=resunet_luma model.init=null"
    "luma4_nokd student_nokd model.name=resunet_luma4 model.init=null"
    "fast fast"
    "fast_s2 student model.name=fast_y model.kwargs.scale=2 model.init=null loss.distill_feature.scales=[s2]"
    "luma3_s2 student model.name=resunet_luma model.kwargs.stem=2 model.init=null loss.distill_feature.scales=[s2,s4]"
    "plain32x4_nokd student_nokd model.name=fast_y model.kwargs.channels=32 model.kwargs.num_blocks=4 model.init=null"
    "rgb_s2 student model.name=resunet_lite model.kwargs.stem=2 model.init=null loss.distill_feature.scales=[s2,s4]"
)

launch() {
    local name=$1 stage=$2
    shift 2
    local args=()
    for kv in "$@" "data.workers=$WORKERS" "threads=1" "${SMOKE_SETS[@]}"; do args+=(--set "$stage:$kv"); done
    python3 -m kdsharp train pipeline --bundle "$BUNDLE" --minutes "$MINUTES" --stages "$stage" \
        --out "/tmp/kdsharp-race/$name" --publish "$OUT/$name" --publish-every 60 "${args[@]}" \
        >"$OUT/$name.log" 2>&1
    echo "$name: exit $?"
}

pids=()
for run in "${RUNS[@]}"; do
    read -r -a words <<<"$run"
    if [[ -n ${RACE:-} && ",$RACE," != *",${words[0]},"* ]]; then continue; fi
    launch "${words[@]}" &
    pids+=($!)
done
(sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null; uptime) &
wait "${pids[@]}"
for log in "$OUT"/*.log; do echo "== $log"; grep -E "val|step .*/" "$log" | tail -n 3; done
tar -czf "$OUT/runs.tgz" -C /tmp/kdsharp-race --exclude='*.pth' --exclude='*.safetensors' . 2>/dev/null
tar -cf "$FINAL/race.tar" -C "$OUT" . && ls -la "$FINAL"
exit 0
