//! Link-time set-up for libtorch from PyPI's wheel.
//!
//! Two traps: the linker's default `--as-needed` drops `libtorch.so` (no symbol of ours is in it),
//! and with it `libtorch_cuda.so`, so CUDA silently stays invisible; and the wheel's libraries
//! live outside the loader's search path. So: `--no-as-needed -ltorch`, and an rpath to the
//! (canonical) lib dir so the binaries run without LD_LIBRARY_PATH. The loader searches
//! LD_LIBRARY_PATH before this DT_RUNPATH, so on a machine whose torch sits elsewhere (a GPU host
//! with its own PyTorch) LD_LIBRARY_PATH picks that one. The torch version built against is
//! recorded for `worker devices`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from);
    if let Some(lib) = &lib {
        let lib = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.clone());
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        let version = std::fs::read_to_string(lib.join("../version.py"))
            .ok()
            .and_then(|text| parse_version_py(&text))
            .unwrap_or_else(|| "unknown".to_owned());
        println!("cargo:rustc-env=GRIDSWEEP_LIBTORCH_BUILD_VERSION={version}");
    } else {
        println!("cargo:rustc-env=GRIDSWEEP_LIBTORCH_BUILD_VERSION=unknown");
    }
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}

/// The `__version__ = '2.11.0+cu130'` line of torch's `version.py`.
fn parse_version_py(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_owned())
}
