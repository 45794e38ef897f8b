"""The cross-file checks of scripts/deploy-check.sh: what a schema cannot see.

    python scripts/deploy_check.py manifests ROOT WORKER_IMAGE COORDINATOR_IMAGE
    python scripts/deploy_check.py dockerfiles ROOT
    python scripts/deploy_check.py flags MANIFEST CONTAINER HELP_FILE [PENDING_FLAG...]
    python scripts/deploy_check.py sweep-results RESULTS_DIR JOBS EPOCHS RESUMED_JOB

Each prints one line per finding ("ok: ..." or "FAIL: ...") and exits 1 if any failed. Needs
PyYAML (in the check's virtual environment).
"""

import fnmatch
import os
import re
import sys

import yaml

failures = 0


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        failures += 1
    return cond


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name=None):
    for d in docs:
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise SystemExit(f"FAIL: no {kind} {name or ''} in the manifests")


def arg(args, flag):
    return args[args.index(flag) + 1] if flag in args else None


def mounted_file(pod, container, volume_kind, item_key):
    """The path at which `container` sees the item `item_key` of its `volume_kind` volume."""
    for v in pod["volumes"]:
        if volume_kind in v:
            for item in v[volume_kind].get("items", []):
                if item["key"] == item_key:
                    for m in container.get("volumeMounts", []):
                        if m["name"] == v["name"]:
                            return v, os.path.join(m["mountPath"], item["path"])
    return None, None


def manifests(root, worker_image, coordinator_image):
    k8s = os.path.join(root, "deploy", "k8s")
    coord_docs = load(os.path.join(k8s, "coordinator.yaml"))
    job = find(load(os.path.join(k8s, "workers-job.yaml")), "Job")
    secret = find(load(os.path.join(k8s, "token-secret.example.yaml")), "Secret")
    volume_pod = find(load(os.path.join(k8s, "volume-pod.yaml")), "Pod")
    sts = find(coord_docs, "StatefulSet")
    services = {d["metadata"]["name"]: d for d in coord_docs if d["kind"] == "Service"}
    pod = sts["spec"]["template"]["spec"]
    (coord,) = [c for c in pod["containers"] if c["name"] == "coordinator"]
    job_pod = job["spec"]["template"]["spec"]
    (worker,) = job_pod["containers"]

    # Images: the names deploy/docker/build.sh gives them.
    check(worker["image"] == worker_image, f"worker Job image {worker['image']} is build.sh's {worker_image}")
    check(coord["image"] == coordinator_image, f"coordinator image {coord['image']} is build.sh's {coordinator_image}")
    for c in pod.get("initContainers", []):
        check(c["image"] in (worker_image, coordinator_image), f"init container {c['name']} uses a built image")
    check(volume_pod["spec"]["containers"][0]["image"] == coordinator_image, "volume pod uses the coordinator image")

    # The Service the workers are pointed at, and its ports.
    env = {e["name"]: e for e in worker["env"]}
    url = env["GRIDSWEEP_COORDINATOR"]["value"]
    m = re.fullmatch(r"https?://([^:/]+):(\d+)", url)
    check(m is not None, f"GRIDSWEEP_COORDINATOR {url} is a URL with host and port")
    if m:
        host, port = m.group(1), int(m.group(2))
        svc = services.get(host.split(".")[0])
        check(svc is not None and svc["spec"].get("clusterIP") != "None", f"{host} is the coordinator's Service")
        if svc:
            ports = {p["name"]: p for p in svc["spec"]["ports"]}
            check(ports.get("grpc", {}).get("port") == port, f"Service {host} serves gRPC on {port}")
            check(ports.get("http", {}).get("port") == 8080, f"Service {host} serves HTTP on 8080")
            check(svc["spec"]["selector"].items() <= pod_labels(sts).items(), f"Service {host} selects the coordinator pod")
    headless = services.get(sts["spec"]["serviceName"])
    check(headless is not None and headless["spec"].get("clusterIP") == "None", "StatefulSet's serviceName is a headless Service in the file")
    check(sts["spec"]["replicas"] == 1, "one coordinator replica")
    container_ports = {p["name"]: p["containerPort"] for p in coord["ports"]}
    check(container_ports == {"grpc": 50051, "http": 8080}, f"container ports {container_ports}")

    # The coordinator's command line.
    args = coord["args"]
    check("run" in args, "coordinator runs `run`")
    check(arg(args, "--listen") == "0.0.0.0:50051", "--listen 0.0.0.0:50051")
    check(arg(args, "--http") == "0.0.0.0:8080", "--http 0.0.0.0:8080")
    check(arg(args, "--local-workers") == "0", "--local-workers 0")
    worker_host = m.group(1) if m else None
    check(arg(args, "--advertise") == worker_host, f"--advertise {arg(args, '--advertise')}: the host the workers connect to")
    vct = sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    (state_mount,) = [m for m in coord["volumeMounts"] if m["name"] == vct]
    for flag in ("--state", "--out", "--data"):
        value = arg(args, flag) or ""
        check(value.startswith(state_mount["mountPath"] + "/"), f"{flag} {value} is on the claimed volume")
    sweep_volume, sweep_path = mounted_file(pod, coord, "configMap", "sweep.yaml")
    check(sweep_path is not None and sweep_path == args[args.index("run") + 1], f"the sweep file is the ConfigMap's ({sweep_path})")

    # Probes: Kubernetes' gRPC probe on the gRPC port.
    for probe in ("readinessProbe", "livenessProbe"):
        check(coord.get(probe, {}).get("grpc", {}).get("port") == 50051, f"{probe} is grpc on 50051")

    # The token: the same Secret, key and mounted file on both sides.
    secret_name = secret["metadata"]["name"]
    check("token" in secret.get("stringData", {}), f"Secret {secret_name} example has the key `token`")
    for who, p, c in (("coordinator", pod, coord), ("worker", job_pod, worker)):
        v, path = mounted_file(p, c, "secret", "token")
        check(v is not None and v["secret"]["secretName"] == secret_name, f"{who} mounts Secret {secret_name}")
        check(path is not None and arg(c["args"], "--token-file") == path, f"{who} --token-file is the Secret's file ({path})")
        mode = v["secret"].get("defaultMode", 0o644) if v else 0
        check(mode & 0o040 != 0, f"{who}'s token file is group-readable (mode {mode:o}) for the fsGroup")

    # Non-root, as the images' USER.
    for who, p in (("coordinator", pod), ("worker", job_pod), ("volume", volume_pod["spec"])):
        sc = p.get("securityContext", {})
        check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001 and sc.get("fsGroup") == 10001,
              f"{who} pod runs as uid 10001, fsGroup 10001")
    claim = volume_pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
    check(claim == f"{vct}-{sts['metadata']['name']}-0", f"volume pod claims the coordinator's volume ({claim})")


def pod_labels(sts):
    return sts["spec"]["template"]["metadata"]["labels"]


def dockerignore(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def ignored(rel, patterns):
    parts = rel.split("/")
    for pat in patterns:
        pat = pat.strip("/")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatch("/".join(parts[:i]), pat):
                return True
    return False


def dockerfiles(root):
    patterns = dockerignore(root)
    for kind in ("worker", "coordinator"):
        path = os.path.join(root, "deploy", "docker", f"Dockerfile.{kind}")
        if not check(os.path.exists(path), f"Dockerfile.{kind} exists"):
            continue
        with open(path) as f:
            text = re.sub(r"\\\n", " ", f.read())
        lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
        stages = {m.group(1) for l in lines if (m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", l, re.I))}
        users = [l.split()[1] for l in lines if l.upper().startswith("USER ")]
        check(users and users[-1].split(":")[0] not in ("0", "root"), f"Dockerfile.{kind}: runs as non-root ({users[-1] if users else 'no USER'})")
        check(users and users[-1] == "10001:10001", f"Dockerfile.{kind}: USER is the manifests' 10001:10001")
        for l in lines:
            word = l.split()[0].upper()
            if word in ("COPY", "ADD"):
                tokens = l.split()[1:]
                source_stage = next((t.split("=", 1)[1] for t in tokens if t.startswith("--from=")), None)
                tokens = [t for t in tokens if not t.startswith("--")]
                if source_stage:
                    check(source_stage in stages, f"Dockerfile.{kind}: `{l}` copies from a stage of the file")
                    continue
                for src in tokens[:-1]:
                    if src == ".":
                        continue
                    matches = globbed(root, src)
                    check(bool(matches), f"Dockerfile.{kind}: `{src}` exists")
                    for p in matches:
                        check(not ignored(p, patterns), f"Dockerfile.{kind}: `{p}` is not excluded by .dockerignore")
            elif word == "RUN":
                for script in sorted(set(re.findall(r"(?:deploy/docker|scripts)/[\w.-]+\.sh|runtime-setup\.sh", l))):
                    rel = script if "/" in script else f"deploy/docker/{script}"
                    full = os.path.join(root, rel)
                    check(os.path.isfile(full) and os.access(full, os.X_OK), f"Dockerfile.{kind}: RUN uses {rel}, present and executable")
        for l in lines:
            if l.upper().startswith("ARG ") and "IMAGE=" in l:
                image = l.split("=", 1)[1]
                check(image.count("/") >= 2 and ":" in image, f"Dockerfile.{kind}: {l.split()[1].split('=')[0]} {image} is fully qualified and tagged")
    for p in ("target", ".libtorch"):
        check(ignored(p, patterns), f".dockerignore excludes {p}")


def globbed(root, src):
    import glob

    return sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, src)))


def flags(manifest, container, help_file, *pending):
    """Every --flag the container's args use is one the binary's --help lists."""
    for d in load(manifest):
        spec = d.get("spec", {})
        pod = spec["template"]["spec"] if "template" in spec else spec
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            if c["name"] != container:
                continue
            with open(help_file) as f:
                helptext = f.read()
            for a in c["args"]:
                if not a.startswith("--"):
                    continue
                if re.search(r"(^|\s)" + re.escape(a) + r"\b", helptext):
                    check(True, f"{container}: {a} is a flag of this build")
                elif a in pending:
                    print(f"SKIP: {container}: {a} is not in this build's --help yet (being added)")
                else:
                    check(False, f"{container}: {a} is a flag of this build")
            return
    check(False, f"no container {container} in {manifest}")


def sweep_results(results, jobs, epochs, resumed_job):
    """The outputs of the Slurm sweep: every job completed once, each epoch once, the tables."""
    import csv
    import json

    jobs, epochs = int(jobs), int(epochs)
    with open(os.path.join(results, "runs.csv")) as f:
        runs = list(csv.DictReader(f))
    ids = [r["job_id"] for r in runs]
    check(len(runs) == jobs and len(set(ids)) == jobs, f"runs.csv: {len(runs)} rows for {len(set(ids))} jobs, expected {jobs} jobs once each")
    states = sorted({r["state"] for r in runs})
    check(states == ["completed"], f"runs.csv: every job completed ({', '.join(states)})")
    with open(os.path.join(results, "epochs.csv")) as f:
        rows = list(csv.DictReader(f))
    per_job = {}
    for r in rows:
        per_job.setdefault(r["job_id"], []).append(int(r["epoch"]))
    wanted = list(range(1, epochs + 1))
    ok = sorted(per_job) == sorted(ids) and all(sorted(e) == wanted for e in per_job.values())
    counts = {j: len(e) for j, e in per_job.items()}
    check(ok, f"epochs.csv: epochs 1..{epochs} once for each job ({len(rows)} rows; per job {counts})")
    with open(os.path.join(results, "runs.jsonl")) as f:
        results_by_id = {r["job_id"]: r for r in map(json.loads, f)}
    r = results_by_id.get(resumed_job, {}).get("result") or {}
    history = [e["epoch"] for e in r.get("epochs", [])]
    resumed = r.get("resumed_from_epoch") or 0
    check(resumed >= 1 and history == wanted,
          f"the cancelled task's job {resumed_job} resumed from its checkpoint after epoch {resumed} on another worker, its history epochs 1..{epochs} once")
    for name in ("table1.csv", "table1.md", "table2.md", "report.md"):
        path = os.path.join(results, name)
        check(os.path.isfile(path) and os.path.getsize(path) > 0, f"{name} written ({os.path.getsize(path) if os.path.isfile(path) else 0} bytes)")


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    commands = {"manifests": manifests, "dockerfiles": dockerfiles, "flags": flags, "sweep-results": sweep_results}
    commands[command](*rest)
    sys.exit(1 if failures else 0)
