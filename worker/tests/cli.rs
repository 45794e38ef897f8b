//! The `worker` binary as a user runs it: `inspect` figures and its bad-input handling.

use std::process::{Command, Output};

fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker")).args(args).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_prints_the_papers_figures() {
    let v = json(&worker(&["inspect", "--arch", "grid", "--depth", "1538", "--json"]));
    assert_eq!(v["arch"], "grid");
    assert_eq!(v["depth"], 1538);
    assert_eq!(v["params"], 24_868_122);
    assert_eq!(v["flops"], 3_681_063_616u64);
    assert_eq!(v["blocks"], 768);
    assert_eq!(v["grid_side"], 16);
    assert_eq!(v["longest_path_blocks"], 93);
    assert_eq!(v["shortest_path_blocks"], 0);
    let v = json(&worker(&["inspect", "--arch", "vgg", "--depth", "26", "--json"]));
    assert_eq!((v["params"].as_u64(), v["flops"].as_u64()), (Some(366_938), Some(55_694_016)));
    assert!(v["grid_side"].is_null());
    let text = worker(&["inspect", "--arch", "resnet", "--depth", "26"]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("369,690"));
}

#[test]
fn bad_input_exits_2_with_the_nearest_valid_depths() {
    let cases: &[(&[&str], &str)] = &[
        (&["inspect", "--arch", "grid", "--depth", "20"], "nearest valid depths: 8 or 26"),
        (&["inspect", "--arch", "resnet", "--depth", "25"], "nearest valid depths: 20 or 26"),
        (&["inspect", "--arch", "vgg", "--depth", "0"], "nearest valid depths: 8"),
        (&["inspect", "--arch", "grid", "--depth", "99999999"], "nearest valid depths: 24578"),
        (&["inspect", "--arch", "densenet", "--depth", "26"], "possible values: vgg, resnet, grid"),
        (&["inspect", "--arch", "grid", "--depth", "-26"], "--depth"),
        (&["inspect", "--arch", "grid", "--depth", "abc"], "invalid digit"),
        (&["inspect", "--arch", "grid"], "--depth"),
    ];
    for (args, message) in cases {
        let out = worker(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn devices_reports_libtorch_and_cuda() {
    let v = json(&worker(&["devices", "--json"]));
    assert!(v["libtorch_version"].as_str().unwrap().starts_with("2.11.0"), "{v}");
    let cuda = v["cuda_available"].as_bool().unwrap();
    assert_eq!(cuda, tch::Cuda::is_available());
    assert_eq!(v["cuda_devices"].as_array().unwrap().len() as i64, v["cuda_device_count"].as_i64().unwrap());
}

#[test]
fn bench_compare_and_grid_exec() {
    let args =
        ["bench", "--compare", "--depth", "26", "--batch", "2", "--steps", "1", "--warmup", "0", "--device", "cpu"];
    let v = json(&worker(&args));
    // Both layouts by default: 2 x (resnet, grid-sequential, grid-wavefront).
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 6, "{v}");
    assert!(variants.iter().all(|x| x["images_per_s"].as_f64().unwrap() > 0.0), "{v}");
    let s = &v["summaries"][0];
    assert_eq!(s["memory_format"], "contiguous");
    let ratio =
        s["grid_wavefront_images_per_s"].as_f64().unwrap() / s["grid_sequential_images_per_s"].as_f64().unwrap();
    assert!((s["wavefront_over_sequential"].as_f64().unwrap() - ratio).abs() < 1e-9, "{v}");
    assert_eq!(v["summaries"][1]["memory_format"], "channels-last");
    let cl = v["channels_last_over_contiguous"].as_array().unwrap();
    let resnet_ratio = variants[3]["images_per_s"].as_f64().unwrap() / variants[0]["images_per_s"].as_f64().unwrap();
    assert!((cl[0].as_f64().unwrap() - resnet_ratio).abs() < 1e-9, "{v}");
    let only = json(&worker(&[&args[..], &["--memory-format", "channels-last"]].concat()));
    assert_eq!(only["variants"].as_array().unwrap().len(), 3);
    assert!(only["channels_last_over_contiguous"].is_null());

    let one = ["bench", "--arch", "grid", "--depth", "26", "--batch", "2", "--steps", "1", "--device", "cpu"];
    let v = json(&worker(&one));
    assert_eq!((&v["grid_exec"], &v["memory_format"]), (&"sequential".into(), &"contiguous".into()), "CPU defaults");
    let wave = [&one[..], &["--grid-exec", "wavefront", "--memory-format", "channels-last"]].concat();
    let v = json(&worker(&wave));
    assert_eq!((&v["grid_exec"], &v["memory_format"]), (&"wavefront".into(), &"channels-last".into()));
    for bad in [
        &["bench", "--depth", "26"][..],
        &["bench", "--compare", "--arch", "grid", "--depth", "26"][..],
        &["bench", "--compare", "--grid-exec", "wavefront", "--depth", "26"][..],
        &["bench", "--arch", "grid", "--depth", "26", "--memory-format", "nhwc"][..],
    ] {
        let out = worker(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let out = worker(&["bench", "--compare", "--depth", "20", "--device", "cpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nearest valid depths"));
}

/// The provisioned torch's Python: `.libtorch` links to `<venv>/lib/pythonX.Y/site-packages/torch`.
fn torch_python() -> Option<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let torch = std::fs::canonicalize(root.join(".libtorch")).ok()?;
    let python = torch.ancestors().nth(4)?.join("bin/python");
    python.exists().then_some(python)
}

#[test]
fn gpu_check_script_runs_on_the_cpu() {
    let Some(python) = torch_python() else {
        panic!("no Python beside the provisioned libtorch (.libtorch); run scripts/provision-libtorch.sh");
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("gridsweep-gpu-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new("bash")
        .arg(root.join("scripts/gpu-check.sh"))
        .arg(&out)
        .env("WORKER", env!("CARGO_BIN_EXE_worker"))
        .env("PYTHON", &python)
        .env("DEVICE", "cpu")
        .env("DEPTHS", "8")
        .env("TRAIN_IMAGES", "64")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["missing"], serde_json::json!([]), "{summary}");
    let rows = summary["bench"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "both layouts: {summary}");
    for row in rows {
        for key in ["resnet", "grid_sequential", "grid_wavefront", "pytorch_resnet", "pytorch_grid"] {
            assert!(row[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {row}");
        }
    }
    assert!(summary["optimizer"]["speedup"].as_f64().is_some_and(|v| v > 0.0));
    assert_eq!(summary["train_grid_26"]["wavefront"]["status"], "completed");
    let _ = std::fs::remove_dir_all(&out);
}
