//! Table 2's protocol beside its numbers: the fabricated sweep's analyses (batches of 100 test
//! images, evaluation-mode batch norm) are described in `table2.csv` and `table2.md`, and a row
//! whose runs were analysed differently says so.

use super::*;

/// Table 2's CSV rows as (column -> value) maps.
fn table2_rows(dir: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(dir.join("table2.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader.records().map(|r| header.iter().cloned().zip(r.unwrap().iter().map(String::from)).collect()).collect()
}

#[test]
fn the_protocol_is_written_beside_table_2() {
    let dir = tempfile::tempdir().unwrap();
    write_tables(&sweep(), "s", dir.path()).unwrap();
    let rows = table2_rows(dir.path());
    assert!(!rows.is_empty());
    for r in &rows {
        assert_eq!(r["protocol_bn_mode"], "eval");
        assert_eq!(r["protocol_loss"], "mean cross-entropy per batch");
        assert_eq!((r["protocol_batch_size"].as_str(), r["protocol_batches"].as_str()), ("100", "100"));
        assert_eq!(r["protocol_split"], "test[:128]");
    }
    let md = std::fs::read_to_string(dir.path().join("table2.md")).unwrap();
    assert!(
        md.contains("Protocol (not stated in the paper; ours, per run): 100 batches of 100 images from the test split"),
        "{md}"
    );
    assert!(md.contains("batch norm in evaluation mode (running statistics)"), "{md}");
}

#[test]
fn a_row_analysed_two_ways_lists_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = sweep();
    let analysed = runs.iter_mut().find(|r| r.result.as_ref().is_some_and(|x| x.grad_analysis.is_some())).unwrap();
    let (arch, depth) = (analysed.spec.train.arch, analysed.spec.train.depth);
    analysed.result.as_mut().unwrap().grad_analysis.as_mut().unwrap().config.bn_train_mode = true;
    write_tables(&runs, "s", dir.path()).unwrap();
    let row = table2_rows(dir.path())
        .into_iter()
        .find(|r| r["arch"] == arch.name() && r["depth"] == depth.to_string())
        .unwrap();
    assert_eq!(row["protocol_bn_mode"], "eval;train", "{row:?}");
    let md = std::fs::read_to_string(dir.path().join("table2.md")).unwrap();
    assert!(md.contains("it differs between rows") && md.contains("training mode (each batch's statistics)"), "{md}");
}
