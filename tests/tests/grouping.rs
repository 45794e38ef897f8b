//! Grouping by condition through the real binaries: a sweep with a learning-rate axis (resnet,
//! depth 8, seeds 1 and 2, lr 0.1 and 0.05, one epoch on synthetic data, every job analysed)
//! run with `coordinator run` and two local workers has a row per learning rate in table1.csv
//! and table2.csv, an `lr` column, means that the matching rows of runs.csv reproduce, and a
//! series per learning rate in the plots.

use std::collections::BTreeMap;
use std::path::Path;

use gridsweep_e2e::{run_sweep, scratch};

/// Rows of a CSV file as maps from header to value, and the header.
fn csv_file(path: &Path) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows =
        reader.records().map(|r| headers.iter().cloned().zip(r.unwrap().iter().map(str::to_owned)).collect()).collect();
    (headers, rows)
}

/// The mean of the `column` cells, summed in their order (as the tables sum them).
fn mean_of(rows: &[&BTreeMap<String, String>], column: &str) -> f64 {
    let values: Vec<f64> = rows.iter().map(|r| r[column].parse().unwrap()).collect();
    values.iter().sum::<f64>() / values.len() as f64
}

#[test]
fn an_lr_axis_gives_a_row_and_a_series_per_learning_rate() {
    let dir = scratch("grouping");
    let sweep = dir.join("lr-axis.yaml");
    std::fs::write(
        &sweep,
        "name: lr-axis\ndata: {kind: synthetic, train: 256, test: 128, seed: 3}\n\
         train: {epochs: 1, batch_size: 32}\naxes:\n  arch: [resnet]\n  depth: [8]\n  seed: [1, 2]\n\
         \x20 lr: [0.1, 0.05]\nanalysis: {batch_size: 64}\nlease_ttl_s: 30\n",
    )
    .unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    let run = run_sweep(&sweep, &state, &out, 2, &[]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("4 jobs (4 new"), "{stdout}");

    let (_, runs) = csv_file(&out.join("runs.csv"));
    assert_eq!(runs.len(), 4);
    assert!(runs.iter().all(|r| r["state"] == "completed" && r["error_kind"].is_empty()), "{runs:?}");
    let (header, table1) = csv_file(&out.join("table1.csv"));
    assert_eq!(header[..2], ["lr", "depth"], "the varying setting leads, named as in the sweep file");
    let keys: Vec<(&str, &str)> = table1.iter().map(|r| (r["lr"].as_str(), r["depth"].as_str())).collect();
    assert_eq!(keys, [("0.05", "8"), ("0.1", "8")], "a row per learning rate, by value");
    for row in &table1 {
        let matching: Vec<&BTreeMap<String, String>> =
            runs.iter().filter(|r| r["lr"] == row["lr"] && r["depth"] == row["depth"]).collect();
        assert_eq!(matching.len(), 2, "seeds 1 and 2 at lr {}", row["lr"]);
        assert_eq!(row["n_resnet"], "2");
        let mean = mean_of(&matching, "final_test_acc");
        assert_eq!(row["acc_mean_resnet"], mean.to_string(), "lr {}: recomputed from runs.csv", row["lr"]);
        assert_eq!(row["n_vgg"], "", "no vgg in this sweep");
    }

    let (header, table2) = csv_file(&out.join("table2.csv"));
    assert_eq!(header[..3], ["lr", "arch", "depth"]);
    assert_eq!(table2.iter().map(|r| r["lr"].as_str()).collect::<Vec<_>>(), ["0.05", "0.1"]);
    for row in &table2 {
        let matching: Vec<&BTreeMap<String, String>> = runs.iter().filter(|r| r["lr"] == row["lr"]).collect();
        assert_eq!(row["std"], mean_of(&matching, "grad_std").to_string(), "lr {}", row["lr"]);
    }

    let table1_md = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(table1_md.contains("| lr | layers |") && table1_md.contains("| 0.05 | 8 |"), "{table1_md}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Conditions") && report.contains("| 0.1 | 2 | 2 | 0 | 0 | 0 |"), "{report}");
    let epochs = std::fs::read_to_string(out.join("accuracy_vs_epoch.svg")).unwrap();
    for label in ["resnet lr=0.05 (2 runs)", "resnet lr=0.1 (2 runs)"] {
        assert!(epochs.contains(label), "accuracy_vs_epoch.svg lacks {label}");
    }
    let histogram = std::fs::read_to_string(out.join("grad_histogram.svg")).unwrap();
    assert!(histogram.contains("resnet-8 lr=0.05 (2 runs"), "grad_histogram.svg splits by lr");
    println!("table1.csv:\n{}", std::fs::read_to_string(out.join("table1.csv")).unwrap());
    println!("table1.md:\n{table1_md}");
    let _ = std::fs::remove_dir_all(&dir);
}
