//! The launchers under `deploy/`: the Kubernetes Job parses as YAML and asks for what a worker
//! needs (one GPU per pod, the token from a Secret, the coordinator's address), and the Slurm
//! batch script is a GPU job array that `bash -n` accepts and that, run with a stand-in worker,
//! builds the expected command line and refuses to start without a coordinator or a token.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

/// A file under `deploy/`.
fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(rel)
}

/// `v[key]`, which must exist.
fn at<'v>(v: &'v Value, key: &str) -> &'v Value {
    v.get(key).unwrap_or_else(|| panic!("no `{key}` in {v:?}"))
}

/// `v` as a list of strings.
fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

#[test]
fn kubernetes_job_runs_one_gpu_worker_per_pod_with_the_token_from_a_secret() {
    let text = std::fs::read_to_string(deploy("k8s/workers-job.yaml")).unwrap();
    let job: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(at(&job, "apiVersion").as_str(), Some("batch/v1"));
    assert_eq!(at(&job, "kind").as_str(), Some("Job"));
    let spec = at(&job, "spec");
    assert!(at(spec, "parallelism").as_u64().unwrap() >= 1);
    assert!(spec.get("completions").is_none(), "a work-queue Job: workers exit 0 when the sweep is done");
    let pod = at(at(spec, "template"), "spec");
    assert!(matches!(at(pod, "restartPolicy").as_str(), Some("OnFailure" | "Never")));

    let containers = at(pod, "containers").as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(strings(at(c, "command")), ["worker"]);
    let limits = at(at(c, "resources"), "limits");
    assert_eq!(at(limits, "nvidia.com/gpu").as_u64(), Some(1), "one GPU per pod");

    // The arguments: the coordinator from the environment, the token file, the pod's only GPU.
    let args = strings(at(c, "args"));
    let arg = |flag: &str| {
        let i = args.iter().position(|a| a == flag).unwrap_or_else(|| panic!("no {flag} in {args:?}"));
        args[i + 1].clone()
    };
    assert_eq!(arg("--device"), "cuda:0");
    assert_eq!(arg("--coordinator"), "$(GRIDSWEEP_COORDINATOR)");
    let env = at(c, "env").as_sequence().unwrap();
    let coordinator = env.iter().find(|e| at(e, "name").as_str() == Some("GRIDSWEEP_COORDINATOR")).unwrap();
    assert!(at(coordinator, "value").as_str().unwrap().starts_with("http"));

    // The token: a Secret volume, mounted read-only, holding the file --token-file names.
    let token_file = PathBuf::from(arg("--token-file"));
    let volumes = at(pod, "volumes").as_sequence().unwrap();
    let secret_volume = volumes.iter().find(|v| v.get("secret").is_some()).expect("a Secret volume");
    let secret = at(secret_volume, "secret");
    assert_eq!(at(secret, "secretName").as_str(), Some("gridsweep-token"));
    let item = &at(secret, "items").as_sequence().unwrap()[0];
    let mounts = at(c, "volumeMounts").as_sequence().unwrap();
    let mount = mounts.iter().find(|m| at(m, "name") == at(secret_volume, "name")).expect("the Secret is mounted");
    assert_eq!(at(mount, "readOnly").as_bool(), Some(true));
    let mounted = Path::new(at(mount, "mountPath").as_str().unwrap()).join(at(item, "path").as_str().unwrap());
    assert_eq!(mounted, token_file, "--token-file is the Secret's file");
    // Every other volume mounted is declared.
    for m in mounts {
        assert!(volumes.iter().any(|v| at(v, "name") == at(m, "name")), "{m:?} has no volume");
    }
}

/// The batch script's text.
fn sbatch_text() -> String {
    std::fs::read_to_string(deploy("slurm/gridsweep-workers.sbatch")).unwrap()
}

#[test]
fn slurm_script_is_a_gpu_job_array_that_bash_accepts() {
    let text = sbatch_text();
    assert!(text.starts_with("#!/bin/bash\n"));
    let directives: Vec<&str> = text.lines().filter(|l| l.starts_with("#SBATCH ")).collect();
    assert!(directives.iter().any(|l| l.starts_with("#SBATCH --array=")), "{directives:?}");
    assert!(directives.contains(&"#SBATCH --gres=gpu:1"), "one GPU per array task: {directives:?}");
    // sbatch stops reading directives at the first command.
    let lines: Vec<&str> = text.lines().collect();
    let first_command = lines.iter().position(|l| !l.is_empty() && !l.starts_with('#')).unwrap();
    let last_directive = lines.iter().rposition(|l| l.starts_with("#SBATCH ")).unwrap();
    assert!(last_directive < first_command, "#SBATCH lines come before any command");

    let out = Command::new("bash").arg("-n").arg(deploy("slurm/gridsweep-workers.sbatch")).output().unwrap();
    assert!(out.status.success(), "bash -n: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn slurm_script_starts_the_worker_with_coordinator_token_and_gpu() {
    let dir = std::env::temp_dir().join(format!("gridsweep-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("worker");
    std::fs::write(&fake, "#!/bin/sh\nprintf '%s\\n' \"$@\"\n").unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "secret\n").unwrap();
    let script = deploy("slurm/gridsweep-workers.sbatch");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new("bash");
        cmd.arg(&script).args(args).env("GRIDSWEEP_WORKER_BIN", &fake).env("TMPDIR", &dir);
        for var in [
            "GRIDSWEEP_COORDINATOR",
            "GRIDSWEEP_TOKEN_FILE",
            "GRIDSWEEP_DATA",
            "GRIDSWEEP_TLS_CA",
            "GRIDSWEEP_LOG_FORMAT",
            "GRIDSWEEP_DEVICE",
            "GRIDSWEEP_SLOTS",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied()).output().unwrap()
    };

    let out = run(
        &["http://head:50051", token.to_str().unwrap()],
        &[("SLURM_ARRAY_JOB_ID", "77"), ("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_CPUS_PER_TASK", "8")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let argv: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    let work = dir.join("gridsweep-77-3");
    let expected = [
        "--coordinator",
        "http://head:50051",
        "--token-file",
        token.to_str().unwrap(),
        "--device",
        "cuda:0",
        "--work-dir",
        work.to_str().unwrap(),
        "--threads",
        "8",
    ];
    assert_eq!(argv, expected);
    assert!(work.is_dir());

    // The same from the environment, with data, a CA and JSON logs (the log holds JSON only).
    let env = [
        ("GRIDSWEEP_COORDINATOR", "https://head:50051"),
        ("GRIDSWEEP_TOKEN_FILE", token.to_str().unwrap()),
        ("GRIDSWEEP_DATA", "/shared/cifar"),
        ("GRIDSWEEP_TLS_CA", "/shared/ca.pem"),
        ("GRIDSWEEP_LOG_FORMAT", "json"),
    ];
    let out = run(&[], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let argv = String::from_utf8(out.stdout).unwrap();
    for part in
        ["https://head:50051\n", "--data\n/shared/cifar\n", "--tls-ca\n/shared/ca.pem\n", "--log-format\njson\n"]
    {
        assert!(argv.contains(part), "{part:?} in {argv}");
    }

    // Another device and slots (a CPU partition, or two jobs per GPU): the CPUs are shared out.
    let cpus = [("SLURM_ARRAY_JOB_ID", "77"), ("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_CPUS_PER_TASK", "8")];
    let out = run(
        &["http://head:50051", token.to_str().unwrap()],
        &[cpus[0], cpus[1], cpus[2], ("GRIDSWEEP_DEVICE", "cpu"), ("GRIDSWEEP_SLOTS", "3")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let argv = String::from_utf8(out.stdout).unwrap();
    for part in ["--device\ncpu\n", "--slots\n3\n", "--threads\n2\n"] {
        assert!(argv.contains(part), "{part:?} in {argv}");
    }
    let out = run(&["http://head:50051", token.to_str().unwrap()], &[("GRIDSWEEP_SLOTS", "0")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GRIDSWEEP_SLOTS=0"));

    // No coordinator, or no readable token: exit 2 with a message, the worker never started.
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no coordinator"));
    let missing = dir.join("missing");
    let out = run(&["http://head:50051", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not readable"));
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
