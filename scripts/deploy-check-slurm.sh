#!/usr/bin/env bash
#! A real Slurm for `make deploy-check` (called by scripts/deploy-check.sh, which counts its
#! lines): installs Debian's slurm-wlm and munge when missing, starts munged, slurmctld and
#! slurmd on loopback with a one-node slurm.conf (4 CPUs, and a gres.conf with two `gpu`
#! entries on stand-in device files, so that `--gres=gpu:1` schedules), submits
#! deploy/slurm/gridsweep-coordinator.sbatch on a tiny synthetic sweep and then a 2-task
#! deploy/slurm/gridsweep-workers.sbatch array on the CPU (GRIDSWEEP_DEVICE=cpu), scancels task 1
#! in the middle of a job, and checks that the job was given back at once and resumed from its
#! checkpoint, that every job completed once with each epoch once, that the tables were
#! written, and that the coordinator job and task 0 exited 0. Every daemon it started is
#! stopped by pid on the way out. Needs root (SKIP otherwise) and the binaries built
#! (target/release, else target/debug; or GRIDSWEEP_CHECK_COORDINATOR_BIN and
#! GRIDSWEEP_CHECK_WORKER_BIN).
#!   scripts/deploy-check-slurm.sh PYTHON     (PYTHON: the check's venv, for deploy_check.py)
#! Prints `ok: ...`, `FAIL: ...` and `SKIP: ...` lines; exits 1 after a FAIL.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
py="${1:?usage: deploy-check-slurm.sh PYTHON}"
work="$root/target/deploy-check/slurm-real"
failed=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    failed=1
}
skip() { echo "SKIP: $*"; }

if [[ $(id -u) != 0 ]]; then
    skip "real Slurm: needs root (to install slurm-wlm and munge and run slurmd); run make deploy-check as root"
    exit 0
fi
pick_bin() {
    local name=$1 given=$2
    for b in "$given" "$root/target/release/$name" "$root/target/debug/$name"; do
        if [[ -n "$b" && -x "$b" ]]; then
            echo "$b"
            return 0
        fi
    done
    return 1
}
if ! coordinator_bin=$(pick_bin coordinator "${GRIDSWEEP_CHECK_COORDINATOR_BIN:-}") ||
    ! worker_bin=$(pick_bin worker "${GRIDSWEEP_CHECK_WORKER_BIN:-}"); then
    skip "real Slurm: the coordinator and worker binaries are not built (make build or make build-debug)"
    exit 0
fi

missing=()
command -v slurmctld > /dev/null || missing+=(slurm-wlm)
command -v munged > /dev/null || missing+=(munge)
if ((${#missing[@]})); then
    echo "installing ${missing[*]} from Debian (apt-get)"
    if ! { apt-get install -y -q --no-install-recommends "${missing[@]}" > "$root/target/deploy-check/apt-slurm.log" 2>&1 ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
            >> "$root/target/deploy-check/apt-slurm.log" 2>&1; }; then
        fail "apt-get install ${missing[*]}: $(tail -n 3 "$root/target/deploy-check/apt-slurm.log")"
        exit 1
    fi
fi
ok "Slurm $(slurmctld -V | awk '{print $2}') and munge $(munged -V | awk '{print $1}' | sed 's/^munge-//')"

# --- daemons, each stopped by its pid on the way out --------------------------------------
pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
    if [[ -n "${SLURM_CONF:-}" ]] && ((${#pids[@]} > 1)); then
        scancel --quiet --user=root 2> /dev/null
        sleep 1
    fi
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill "$pid" 2> /dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
    done
}
trap cleanup EXIT
free_ports() {
    python3 -c 'import socket
ss = [socket.socket() for _ in range(int(__import__("sys").argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
rm -rf "$work"
mkdir -p "$work"/{etc,run,key,spool,state,dev,tmp}
chmod 700 "$work/key"
chmod 755 "$work/run"
(umask 077 && head -c 1024 /dev/urandom > "$work/key/munge.key")
munged --foreground --force --socket="$work/run/munge.sock" --key-file="$work/key/munge.key" \
    --log-file="$work/munged.log" --pid-file="$work/run/munged.pid" --seed-file="$work/key/munged.seed" \
    > "$work/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S "$work/run/munge.sock" ]] && break; sleep 0.1; done
if munge -S "$work/run/munge.sock" -n | unmunge -S "$work/run/munge.sock" > /dev/null 2>&1; then
    ok "munged (pid ${pids[0]}) on $work/run/munge.sock: a credential encodes and decodes"
else
    fail "munged did not start: $(tail -n 3 "$work/munged.out")"
    exit 1
fi

read -r ctld_port slurmd_port grpc_port < <(free_ports 3)
host=$(hostname -s)
# Two stand-in GPUs: character devices like /dev/null (a count-only gres entry drains the node).
for i in 0 1; do mknod "$work/dev/gpu$i" c 1 3 2> /dev/null || touch "$work/dev/gpu$i"; done
export SLURM_CONF="$work/etc/slurm.conf"
cat > "$SLURM_CONF" << EOF
ClusterName=gridsweep-check
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$work/run/munge.sock
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
SlurmdParameters=config_overrides
NodeName=gridsweep-check NodeHostname=$host NodeAddr=127.0.0.1 CPUs=4 RealMemory=4096 Gres=gpu:2 State=UNKNOWN
PartitionName=check Nodes=gridsweep-check Default=YES MaxTime=30 State=UP
EOF
echo "NodeName=gridsweep-check Name=gpu File=$work/dev/gpu[0-1]" > "$work/etc/gres.conf"
slurmctld -D -f "$SLURM_CONF" > "$work/slurmctld.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do scontrol ping 2> /dev/null | grep -q UP && break; sleep 0.2; done
slurmd -D -N gridsweep-check -f "$SLURM_CONF" > "$work/slurmd.out" 2>&1 &
pids+=($!)
state=
for _ in $(seq 150); do
    state=$(sinfo -h -n gridsweep-check -o %T 2> /dev/null)
    [[ "$state" == idle ]] && break
    sleep 0.2
done
if [[ "$state" == idle ]]; then
    ok "slurmctld (pid ${pids[1]}, port $ctld_port) and slurmd (pid ${pids[2]}) on loopback: node idle with $(sinfo -h -o %G)"
else
    fail "the node is '$state', not idle: $(tail -n 5 "$work/slurmctld.log" "$work/slurmd.log" 2>&1)"
    exit 1
fi

# --- the coordinator job --------------------------------------------------------------------
epochs=6
cat > "$work/sweep.yaml" << EOF
name: slurmcheck
data: {kind: synthetic, train: 1024, test: 256, seed: 1}
train: {epochs: $epochs, batch_size: 64}
axes: {arch: [resnet, grid], depth: [8], seed: [1, 2]}
lease_ttl_s: 60
EOF
started=$SECONDS
coord_job=$(cd "$work" && env -u GRIDSWEEP_ADVERTISE_HOST -u GRIDSWEEP_DATA -u GRIDSWEEP_TLS_CERT -u GRIDSWEEP_TLS_KEY \
    GRIDSWEEP_COORDINATOR_BIN="$coordinator_bin" GRIDSWEEP_PORT="$grpc_port" GRIDSWEEP_HTTP_PORT= \
    GRIDSWEEP_STATE="$work/sweep-state" GRIDSWEEP_OUT="$work/results" GRIDSWEEP_TOKEN_FILE="$work/token" \
    GRIDSWEEP_ADDRESS_FILE="$work/coordinator.url" \
    sbatch --parsable --cpus-per-task=1 --mem=256M --time=20 "$root/deploy/slurm/gridsweep-coordinator.sbatch" sweep.yaml)
coord_log="$work/gridsweep-coordinator-$coord_job.log"
for _ in $(seq 300); do grep -q "^coordinator listening on" "$coord_log" 2> /dev/null && break; sleep 0.2; done
url=$(cat "$work/coordinator.url" 2> /dev/null)
if grep -q "^coordinator listening on" "$coord_log" 2> /dev/null && [[ -n "$url" ]]; then
    ok "coordinator job $coord_job runs: $(grep -m1 'workers connect to' "$coord_log")"
else
    fail "coordinator job $coord_job did not start serving: $(scontrol show job "$coord_job" -o | grep -o 'JobState=[A-Z]*') $(tail -n 5 "$coord_log" 2>&1)"
    exit 1
fi
status() { "$coordinator_bin" status --connect "http://127.0.0.1:$grpc_port" --token-file "$work/token" "$@"; }
attach="worker --coordinator $url --token-file $work/token"
for _ in $(seq 100); do grep -q "attach workers with" "$coord_log" && break; sleep 0.1; done
if grep -qxF "no local workers; attach workers with: $attach" "$coord_log"; then
    ok "its log prints the attach line: $attach"
else
    fail "no attach line '$attach' in $coord_log: $(grep attach "$coord_log")"
fi
stalled=$(status 2>&1)
if grep -qF "attach workers with: $attach" <<< "$stalled"; then
    ok "coordinator status, before any worker: $(grep -m1 STALLED <<< "$stalled" | sed 's/^ *//'), and the attach line"
else
    fail "coordinator status shows no attach line while stalled: $stalled"
fi

# --- the worker array: task 1 cancelled in the middle of a job --------------------------------
array=$(cd "$work" && TMPDIR="$work/tmp" GRIDSWEEP_WORKER_BIN="$worker_bin" GRIDSWEEP_DEVICE=cpu \
    env -u GRIDSWEEP_SLOTS -u GRIDSWEEP_DATA -u GRIDSWEEP_TLS_CA -u GRIDSWEEP_LOG_FORMAT -u GRIDSWEEP_WORK_DIR \
    sbatch --parsable --array=0-1 --cpus-per-task=1 --mem=1G --time=20 \
    "$root/deploy/slurm/gridsweep-workers.sbatch" "$url" "$work/token")
ok "worker array $array submitted (2 tasks, --gres=gpu:1 each, GRIDSWEEP_DEVICE=cpu)"
task_log="$work/gridsweep-worker-${array}_1.log"
victim=
deadline=$((SECONDS + 300))
while [[ -z "$victim" ]] && ((SECONDS < deadline)); do
    worker_id=$(grep -o -m1 'registered with [^ ]* worker=[a-z0-9-]*' "$task_log" 2> /dev/null | sed 's/.*worker=//')
    if [[ -n "$worker_id" ]]; then
        victim=$(status --json 2> /dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)
for j in s["jobs"]:
    if j["state"] == "running" and j["worker"] == sys.argv[1] and 1 <= j["epoch"] < j["epochs_total"]:
        print(j["job_id"], j["epoch"]); break' "$worker_id")
    fi
    [[ -z "$victim" ]] && sleep 0.2
done
if [[ -z "$victim" ]]; then
    fail "task 1 never held a job between its epochs within 300 s: $(tail -n 5 "$task_log" 2>&1)"
    exit 1
fi
read -r victim_job victim_epoch <<< "$victim"
scancel "${array}_1"
cancelled_at=$SECONDS
released=
while ((SECONDS - cancelled_at < 60)); do
    released=$(status --json 2> /dev/null | python3 -c 'import json, sys
s = json.load(sys.stdin)
j = next(j for j in s["jobs"] if j["job_id"] == sys.argv[1])
print("yes" if j["worker"] != sys.argv[2] else "")' "$victim_job" "$worker_id")
    [[ -n "$released" ]] && break
    sleep 0.2
done
if [[ -n "$released" ]]; then
    ok "scancel ${array}_1 (worker $worker_id, job $victim_job after epoch $victim_epoch): lease given back $((SECONDS - cancelled_at)) s later (TTL 60 s)"
else
    fail "job $victim_job still held by the cancelled worker $worker_id 60 s after scancel"
fi

# --- the end --------------------------------------------------------------------------------
job_state() { scontrol show job "$1" -o 2> /dev/null | grep -o 'JobState=[A-Z]* .*ExitCode=[0-9:]*' | awk '{print $1, $NF}'; }
deadline=$((SECONDS + 600))
while ((SECONDS < deadline)); do
    [[ "$(job_state "$coord_job")" =~ JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) ]] && break
    sleep 0.5
done
for _ in $(seq 100); do [[ "$(job_state "${array}_0")" =~ JobState=(RUNNING|PENDING) ]] || break; sleep 0.2; done
elapsed=$((SECONDS - started))
for check in "$coord_job coordinator COMPLETED" "${array}_0 worker-task-0 COMPLETED" "${array}_1 worker-task-1 CANCELLED"; do
    read -r id what want <<< "$check"
    got=$(job_state "$id")
    expected="JobState=$want ExitCode=0:0"
    [[ "$want" == CANCELLED ]] && expected="JobState=CANCELLED"
    if [[ "$got" == "$expected"* ]]; then
        ok "$what job $id: $got"
    else
        fail "$what job $id: '$got', expected $expected ($(tail -n 3 "$work"/gridsweep-*"$id"*.log 2>&1))"
    fi
done
out=$("$py" "$root/scripts/deploy_check.py" sweep-results "$work/results" 4 "$epochs" "$victim_job" 2>&1) || failed=1
echo "$out"
echo "(Slurm sweep: ${elapsed} s from submitting the coordinator to its end)"
exit $failed
