//! Compiles `proto/gridsweep/v1/*.proto` with the vendored `protoc` (no system install needed);
//! a `PROTOC` in the environment takes precedence.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/gridsweep/v1/coordinator.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let mut config = tonic_prost_build::Config::new();
    match std::env::var_os("PROTOC") {
        Some(p) => config.protoc_executable(p),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    // The descriptor set the coordinator's reflection service serves.
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("gridsweep_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        // Job states and failure kinds go into runs.jsonl by name.
        .type_attribute(
            "gridsweep.v1.JobState",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"lowercase\")]",
        )
        .type_attribute(
            "gridsweep.v1.FailureKind",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"kebab-case\")]",
        )
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
