#!/usr/bin/env bash
# The nasprof walk-through behind `make demo`: export -> measure -> table -> predictor -> validate -> search
# on the local CPU, then the same model on a fake Android phone (real adb client, fake device on loopback)
# and on an STM32F746 board (memory/latency estimate). Everything lands in demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=demo-out
rm -rf "$OUT"
mkdir -p "$OUT"
# Named devices of the demo live in demo-out/, never in the user's config.
export NASPROF_DEVICES="$PWD/$OUT/devices.toml"
RES=160
# Wide enough for table keys; rich falls back to 80 columns when output is not a terminal.
export COLUMNS="${COLUMNS:-140}"
CANDIDATE="$(cat examples/candidate.txt)"

# step TITLE CMD...: print the title (if any) and the command, then run it.
step() {
  [ -n "$1" ] && printf '\n\033[1;36m== %s\033[0m\n' "$1"
  printf '\033[2m$ %s\033[0m\n' "${*:2}"
  "${@:2}"
}

step "1/9 The search space: choices and size" \
  nasprof space show mobilenetv2
step "2/9 Export the bundled candidate (examples/candidate.txt) to ONNX and count it" \
  nasprof export "$CANDIDATE" -o "$OUT/candidate.onnx"
step "3/9 Measure it on the local CPU: fresh sessions, raw samples, per-block breakdown" \
  nasprof measure "$OUT/candidate.onnx" --device cpu --runs 50 --sessions 3 --per-node --top 8 \
  --json "$OUT/candidate.cpu.json"
step "4/9 Build the latency lookup table of the space: every distinct layer at ${RES}px" \
  nasprof table build --space mobilenetv2 --resolution "$RES" --device cpu --db "$OUT/cpu.db"
step "      ...and look at it" \
  nasprof table show "$OUT/cpu.db" --limit 8
step "5/9 Fit a lookup-table predictor (the table's sum, per-call overhead removed) and predict the candidate" \
  nasprof predictor fit --table "$OUT/cpu.db" --measure-overhead -o "$OUT/lut.json"
nasprof predict "$CANDIDATE" --predictor "$OUT/lut.json"
# Whole networks do not run as the sum of their layers measured alone (weights arrive cold, layouts are
# kept between layers). --calibrate measures 12 other sampled networks (seed 1000) in the same interleaved
# rounds as the 12 validated ones and profiles each once: it learns an in-network ratio for every table
# key, then fits factors per layer family, a cost per MB of weights and a per-network constant.
# --save-predictor keeps the calibrated predictor for the search.
step "6/9 Calibrate on 12 networks and validate on 12 others, measured together in 6 interleaved rounds" \
  nasprof validate --predictor "$OUT/lut.json" --device cpu --space mobilenetv2 --samples 12 --seed 1 \
  --calibrate 12 --save-predictor "$OUT/lut-calibrated.json" \
  --json "$OUT/validate.json" --csv "$OUT/validate.csv" --plot "$OUT/validate.png"
# The latency target is this machine's own: the measured median of the candidate from step 3.
TARGET=$(python -c "import json; print(round(json.load(open('$OUT/candidate.cpu.json'))['latency_ms']['median'], 3))")
step "7/9 Search with MnasNet's reward (hard constraint, T = the candidate's ${TARGET} ms): evolution" \
  nasprof search --space mobilenetv2 --predictor "$OUT/lut-calibrated.json" --target-ms "$TARGET" --reward hard \
  --budget 20000 --seed 0 --top 5 --json "$OUT/search.json" --plot "$OUT/search.png" \
  --export-best "$OUT/best.onnx"

# -- 8: a (fake) Android phone over adb ------------------------------------------------------------------
printf '\n\033[1;36m== 8/9 The same candidate on an Android phone over adb (a fake phone on loopback)\033[0m\n'
python -c "from nasprof.testing.fake_adb import write_fake_runner as w; r, _ = w('$OUT/runner'); r.chmod(0o755)"
python -m nasprof.testing.fake_adb --port 0 --serial FAKE0001 --root "$OUT/phones" --idle-timeout 120 \
  > "$OUT/adb-server.txt" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$OUT/adb-server.txt" && break; sleep 0.1; done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/adb-server.txt" | head -n1)
step "" nasprof devices add pixel --backend android --serial FAKE0001 \
  --runner "$OUT/runner/onnxruntime_perf_test" --set "adb_server=tcp:127.0.0.1:$PORT" --force
step "" nasprof devices check pixel
step "" nasprof measure "$OUT/candidate.onnx" --device pixel --runs 20 --sessions 2 --set runs_per_sample=4

# -- 9: a microcontroller ---------------------------------------------------------------------------------
step "9/9 Does MobileNetV2-0.35 (144px, last channel 448) fit an STM32F746? (estimate)" \
  nasprof export mobilenet_v2 --width 0.35 --resolution 144 --last-channel 448 -o "$OUT/mbv2_035_144.onnx"
step "" nasprof measure "$OUT/mbv2_035_144.onnx" --device stm32f746 --memory-model tinyengine \
  --plot "$OUT/mcu_memory.png" --json "$OUT/mcu.json"

printf '\n\033[1;32mDone.\033[0m Results, plots and models are in %s/:\n' "$OUT"
ls -1 "$OUT"
