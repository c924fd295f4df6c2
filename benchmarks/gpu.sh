#!/usr/bin/env bash
# benchmarks/gpu.sh: check on a CUDA machine what the CPU-only test machines cannot.
#
#   bash benchmarks/gpu.sh                # run every check (< 8 min on one GPU), print one table
#   bash benchmarks/gpu.sh --syntax       # only check that the embedded Python parses (no GPU)
#
# Checks, each through the g2res code paths (not re-implementations):
#   1. a tiny simulated data set and its cache (g2res simulate, g2res preprocess);
#   2. per recipe (CQT ResNet-18, ResNet-1D, and the matched-filter bank front-end when
#      `model.frontend.name: bank` is registered): one epoch of `g2res cv-train` on cuda
#      with AMP (train.amp), then its fold model loaded on cuda and on cpu: front-end
#      output cuda vs cpu, front-end dtype under autocast, autocast engaged in the
#      backbone (float16 activations), AMP vs fp32 logits, AMP and fp32 training steps
#      (GradScaler) per second, the front-end's share of a forward pass;
#   3. NCCL: an all_reduce over every GPU present (torchrun), then `g2res cv-train` under
#      torchrun with one process per GPU (DDP; with one GPU, world size 1);
#   4. pretraining throughput: `g2res pretrain` on injections from a small waveform pool.
# Exit status: 0 when every check passed, 1 when one failed, 2 without a CUDA GPU.
# Environment: PYTHON (default python), G2RES_GPU_WORK (work directory, default a new
# temporary one, kept for inspection), G2RES_GPU_WORKERS (CPU workers, default min(nproc, 8)).
set -uo pipefail

PY=${PYTHON:-python}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
START=$SECONDS
BUDGET=480 # s: the whole script must finish within 8 minutes

# ------------------------------------------------------------------ embedded Python
write_snippets() { # $1: directory
    mkdir -p "$1"
    cat >"$1/model_check.py" <<'PYEOF'
"""Checks of one trained fold model on cuda: front-end, AMP, training steps.

usage: model_check.py LABEL CHECKPOINT TABLE.tsv [DEVICE]; appends rows to TABLE.tsv.
"""

import sys
import time

import torch

from g2res.models.checkpoint import load_fold_model

label, ckpt, table = sys.argv[1:4]
device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cuda")
amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
rows = []


def row(check, ok, figure):
    """ok True/False: a check; None: a figure only."""
    rows.append((f"{label}: {check}", "-" if ok is None else "ok" if ok else "FAIL", figure))


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats=10):
    fn()
    sync()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - t) / repeats


model, _ = load_fold_model(ckpt, device=device)
ref, _ = load_fold_model(ckpt, device="cpu")
x_cpu = torch.randn(32, 3, 4096, generator=torch.Generator().manual_seed(0))
x = x_cpu.to(device)

with torch.no_grad():
    # Full fp32 for the comparison (TF32 convolutions/matmuls differ from the CPU by ~1e-3).
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    f_dev = model.frontend(x).float().cpu()
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    f_cpu = ref.frontend(x_cpu).float()
    err = float((f_dev - f_cpu).abs().max() / f_cpu.abs().max().clamp_min(1e-12))
    row("front-end on cuda = cpu (fp32)", err < 1e-4, f"max diff / max |cpu| {err:.1e}")
    with torch.autocast(device.type, dtype=amp_dtype):
        f_amp = model.frontend(x)
    # The matched-filter bank front-end must stay fp32 under autocast; others: a figure.
    ok = f_amp.dtype == torch.float32 if label == "bank" else None
    row("front-end dtype under autocast", ok, str(f_amp.dtype).replace("torch.", ""))

    seen = {}
    conv = next(m for m in model.backbone.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)))

    def record(module, inputs, output):  # returns None: the output is left as it is
        seen.setdefault("dtype", output.dtype)

    hook = conv.register_forward_hook(record)
    with torch.autocast(device.type, dtype=amp_dtype):
        z_amp = model(x).float()
    hook.remove()
    z32 = model(x).float()
    row("autocast engaged (first conv)", seen.get("dtype") == amp_dtype, str(seen.get("dtype")).replace("torch.", ""))
    gap = float((z_amp - z32).abs().max())
    row("AMP vs fp32 logits", gap < 0.1 * max(1.0, float(z32.abs().max())), f"max |diff| {gap:.3g}")

    t_front = timed(lambda: model.frontend(x))
    t_fwd = timed(lambda: model(x))
    row("front-end share of a forward", None, f"{100 * t_front / t_fwd:.0f}% ({32 / t_front:.0f} samples/s)")

model.train()
y = (torch.arange(32, device=device) % 2).float().reshape(-1, 1)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
loss_fn = torch.nn.BCEWithLogitsLoss()


def steps(amp, n=10):
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    losses = []

    def one():
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))

    seconds = timed(one, n)
    return 32 / seconds, losses, scaler


fp32_rate, _, _ = steps(False)
amp_rate, losses, scaler = steps(True)
finite = all(l == l and abs(l) < 1e6 for l in losses)
row(
    "AMP training steps",
    finite,
    f"{amp_rate:.0f} samples/s vs fp32 {fp32_rate:.0f} (x{amp_rate / fp32_rate:.2f}), "
    f"loss {losses[-1]:.3f}, scale {scaler.get_scale() if scaler.is_enabled() else 'off'}",
)
with open(table, "a") as fh:
    for r in rows:
        fh.write("\t".join(r) + "\n")
sys.exit(1 if any(r[1] == "FAIL" for r in rows) else 0)
PYEOF
    cat >"$1/nccl_check.py" <<'PYEOF'
"""All-reduce over every process of a torchrun job with NCCL: sum of ranks + 1."""

import os

import torch
import torch.distributed as dist

local = int(os.environ["LOCAL_RANK"])
torch.cuda.set_device(local)
dist.init_process_group("nccl")
world = dist.get_world_size()
t = torch.full((1024,), float(dist.get_rank() + 1), device="cuda")
dist.all_reduce(t)
want = world * (world + 1) / 2
assert torch.allclose(t, torch.full_like(t, want)), (t[0].item(), want)
dist.barrier()
if dist.get_rank() == 0:
    print(f"nccl all_reduce over {world} GPU(s): {t[0].item():g} == {want:g}")
dist.destroy_process_group()
PYEOF
    cat >"$1/history_rate.py" <<'PYEOF'
"""Training samples/s of a run's epochs (history.csv) and its validation AUC: one line."""

import sys

import pandas as pd

h = pd.read_csv(sys.argv[1])
rate = h["train_samples"].sum() / (h["data_seconds"] + h["step_seconds"]).sum()
auc = float(h["val_auc"].iloc[-1])
print(f"{rate:.0f} train samples/s, val AUC {auc:.3f}")
sys.exit(0 if auc == auc else 1)
PYEOF
    cat >"$1/pretrain_rate.py" <<'PYEOF'
"""Pretraining samples/s and the injection's share of the time from metrics.json."""

import json
import sys

m = json.load(open(sys.argv[1]))
seconds = m["seconds_injection"] + m["seconds_model"]
rate = m["timed_steps"] * m["batch_size"] / max(seconds, 1e-12)
print(
    f"{rate:.0f} samples/s ({m['timed_steps']} steps x {m['batch_size']}), injection "
    f"{100 * m['injection_share']:.0f}% of the time, val AUC {m['best_val_auc']}, {m['device']}"
)
sys.exit(0 if m["device"].startswith("cuda") else 1)
PYEOF
}

if [[ "${1:-}" == "--syntax" ]]; then
    dir=$(mktemp -d)
    write_snippets "$dir"
    for f in "$dir"/*.py; do
        "$PY" -m py_compile "$f" || { echo "gpu.sh: $(basename "$f") does not parse" >&2; exit 1; }
    done
    echo "gpu.sh: the embedded Python snippets parse ($(ls "$dir" | grep -c '\.py$') files)"
    rm -rf "$dir"
    exit 0
fi

# ------------------------------------------------------------------ a GPU, or stop
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "benchmarks/gpu.sh: '$PY' cannot import torch; set PYTHON to the environment with g2res" >&2
    exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "benchmarks/gpu.sh: no CUDA GPU: torch.cuda.is_available() is False on this machine." >&2
    echo "This script checks what needs a GPU (AMP, front-ends on cuda, DDP with NCCL); run it" >&2
    echo "on a machine with at least one CUDA GPU. Nothing was run." >&2
    exit 2
fi
NGPU=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
GPU=$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0))')

WORK=${G2RES_GPU_WORK:-$(mktemp -d -t g2res-gpu.XXXXXX)}
NW=${G2RES_GPU_WORKERS:-$(($(nproc) < 8 ? $(nproc) : 8))}
mkdir -p "$WORK/logs"
TABLE="$WORK/table.tsv"
: >"$TABLE"
write_snippets "$WORK/py"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
G2=("$PY" -m g2res)
FAILED=0

# logfile NAME: the log of step NAME (spaces and brackets replaced).
logfile() { echo "$WORK/logs/${1//[^A-Za-z0-9._-]/_}.log"; }

# step NAME TIMEOUT_S CMD...: run CMD with its output in logfile NAME, add a table row.
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS log
    log=$(logfile "$name")
    local rc=0
    timeout "$limit" "$@" >"$log" 2>&1 || rc=$?
    if ((rc == 0)); then
        printf '%s\tok\t%ss\n' "$name" $((SECONDS - t0)) >>"$TABLE"
        return 0
    fi
    FAILED=1
    local why="exit $rc"
    [[ $rc -eq 124 ]] && why="timed out after ${limit}s"
    printf '%s\tFAIL\t%s (log: %s)\n' "$name" "$why" "$log" >>"$TABLE"
    echo "--- $name failed ($why); last lines of $log:" >&2
    tail -n 15 "$log" >&2
    return 1
}

# figure NAME CMD...: a one-line figure printed by CMD, as a table row.
figure() {
    local name=$1
    shift
    local out err
    err=$(logfile "$name")
    if out=$("$@" 2>"$err"); then
        printf '%s\tok\t%s\n' "$name" "$out" >>"$TABLE"
    else
        FAILED=1
        printf '%s\tFAIL\t%s (see %s)\n' "$name" "${out:-no output}" "$err" >>"$TABLE"
    fi
}

echo "g2res GPU checks on $NGPU x $GPU in $WORK (logs in $WORK/logs)"

# 1. data and cache --------------------------------------------------------------
step simulate 150 "${G2[@]}" simulate "$WORK/data" --n-train 1024 --n-test 128 --snr 8 20 \
    --workers "$NW" --seed 0 -q --force
step preprocess 90 "${G2[@]}" preprocess "$WORK/data" --out "$WORK/cache" -q --force
if [[ ! -f "$WORK/cache/manifest.json" ]]; then
    echo "benchmarks/gpu.sh: no cache, nothing else can run" >&2
    column -t -s $'\t' "$TABLE"
    exit 1
fi
TRAIN=(--cache "$WORK/cache" --folds 2 --fold 0 --epochs 1 --device cuda -q --force
    train.amp=true "train.num_workers=$((NW < 4 ? NW : 4))")

# 2. one epoch per recipe on cuda with AMP, then the model checks ---------------
RECIPES=("cqt-resnet18:$ROOT/pipelines/cqt-resnet18.yaml" "resnet1d:$ROOT/pipelines/resnet1d.yaml")
BANK_OVERRIDES=()
if "$PY" -c 'import sys; import g2res.models; from g2res.transforms.frontends import list_frontends
sys.exit(0 if "bank" in list_frontends() else 1)' 2>/dev/null; then
    bank_recipe=$(grep -l -E 'name: *bank' "$ROOT"/pipelines/*.yaml 2>/dev/null | head -n 1)
    if [[ -n "$bank_recipe" ]]; then
        RECIPES+=("bank:$bank_recipe")
    else # no recipe yet: the bank front-end on the ResNet-1D recipe
        RECIPES+=("bank:$ROOT/pipelines/resnet1d.yaml")
        BANK_OVERRIDES=(model.frontend.name=bank)
    fi
else
    printf 'bank front-end\tskipped\tmodel.frontend.name: bank is not registered in this checkout\n' >>"$TABLE"
fi
for entry in "${RECIPES[@]}"; do
    label=${entry%%:*}
    recipe=${entry#*:}
    extra=()
    [[ $label == bank ]] && extra=("${BANK_OVERRIDES[@]}")
    run="$WORK/runs/$label"
    if step "cv-train $label (1 epoch, AMP)" 150 "${G2[@]}" cv-train --config "$recipe" --out "$run" \
        "${TRAIN[@]}" "${extra[@]}"; then
        figure "cv-train $label throughput" "$PY" "$WORK/py/history_rate.py" "$run/fold0/history.csv"
        "$PY" "$WORK/py/model_check.py" "$label" "$run/fold0/best.pt" "$TABLE" \
            >"$(logfile "check-$label")" 2>&1 || {
            FAILED=1
            printf '%s checks\tFAIL\tsee %s\n' "$label" "$(logfile "check-$label")" >>"$TABLE"
        }
    fi
done

# 3. NCCL and DDP over the GPUs present ----------------------------------------------
TORCHRUN=("$PY" -m torch.distributed.run --standalone --nproc-per-node "$NGPU")
if step "nccl all_reduce ($NGPU GPU)" 60 "${TORCHRUN[@]}" "$WORK/py/nccl_check.py"; then
    figure "nccl result" tail -n 1 "$(logfile "nccl all_reduce ($NGPU GPU)")"
fi
ddp="$WORK/runs/ddp"
if step "cv-train under torchrun ($NGPU proc)" 150 "${TORCHRUN[@]}" -m g2res cv-train \
    --config "$ROOT/pipelines/resnet1d.yaml" --out "$ddp" "${TRAIN[@]}"; then
    figure "ddp throughput" "$PY" "$WORK/py/history_rate.py" "$ddp/fold0/history.csv"
fi
[[ $NGPU -eq 1 ]] && printf 'ddp note\t-\tone GPU: world size 1, so DDP wrapping is not exercised\n' >>"$TABLE"

# 4. pretraining throughput ------------------------------------------------------------
if step "waveform pool (256)" 120 "${G2[@]}" waveforms --out "$WORK/pool" --n 256 --mass-range 10 60 \
    --workers "$NW" --seed 0 -q --force; then
    if step "pretrain 300 steps" 150 "${G2[@]}" pretrain --config \
        "$ROOT/pipelines/inject-pretrain-resnet1d.yaml" --out "$WORK/runs/pre" \
        --cache "$WORK/cache" --pool "$WORK/pool" --steps 300 --force -q \
        device=cuda injection.eval_every=150 injection.curriculum_steps=100; then
        figure "pretrain throughput" "$PY" "$WORK/py/pretrain_rate.py" "$WORK/runs/pre/metrics.json"
    fi
fi

# ------------------------------------------------------------------ the table
elapsed=$((SECONDS - START))
if ((elapsed > BUDGET)); then
    FAILED=1
    printf 'total time\tFAIL\t%ss > %ss budget\n' "$elapsed" "$BUDGET" >>"$TABLE"
else
    printf 'total time\tok\t%ss (budget %ss)\n' "$elapsed" "$BUDGET" >>"$TABLE"
fi
echo
{
    printf 'check\tresult\tfigure\n'
    cat "$TABLE"
} | column -t -s $'\t'
echo
if ((FAILED)); then
    echo "benchmarks/gpu.sh: some checks FAILED (logs in $WORK/logs)" >&2
    exit 1
fi
echo "benchmarks/gpu.sh: every check passed"
