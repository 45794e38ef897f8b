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
    cuda_memory_shim(lib.as_deref());
}

/// Compiles `cpp/cuda_memory.cpp` (the CUDA caching allocator's peak and `emptyCache`) when the
/// wheel has what it needs: torch's headers, the CUDA runtime headers of its nvidia package, and
/// libc10_cuda. The cfg `gridsweep_cuda_memory` tells the Rust side; without it peak GPU memory
/// reads as unknown and emptying the cache does nothing. `GRIDSWEEP_NO_CUDA_SHIM=1` builds
/// without it even where it could be built (to check that build, or around broken headers).
fn cuda_memory_shim(lib: Option<&std::path::Path>) {
    println!("cargo::rustc-check-cfg=cfg(gridsweep_cuda_memory)");
    println!("cargo:rerun-if-changed=cpp/cuda_memory.cpp");
    println!("cargo:rerun-if-env-changed=GRIDSWEEP_NO_CUDA_SHIM");
    if std::env::var_os("GRIDSWEEP_NO_CUDA_SHIM").is_some_and(|v| v == "1") {
        println!("cargo:warning=GRIDSWEEP_NO_CUDA_SHIM=1: built without the CUDA shim");
        return;
    }
    let Some(lib) = lib.and_then(|l| std::fs::canonicalize(l).ok()) else { return };
    let include = lib.join("../include");
    // A complete set of CUDA runtime headers (crt/ included): the nvidia runtime package's
    // when it has them, else the set triton ships beside torch.
    let site = lib.join("../..");
    let nvidia =
        std::fs::read_dir(site.join("nvidia")).into_iter().flatten().flatten().map(|e| e.path().join("include"));
    let cuda_include = nvidia
        .chain(std::iter::once(site.join("triton/backends/nvidia/include")))
        .find(|p| p.join("cuda_runtime_api.h").exists() && p.join("crt/host_config.h").exists());
    let (true, true, Some(cuda_include)) =
        (include.join("c10/cuda/CUDACachingAllocator.h").exists(), lib.join("libc10_cuda.so").exists(), cuda_include)
    else {
        println!("cargo:warning=no CUDA headers or libc10_cuda beside libtorch: peak GPU memory will read as unknown");
        return;
    };
    cc::Build::new()
        .cpp(true)
        .file("cpp/cuda_memory.cpp")
        .include(&include)
        .include(&cuda_include)
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .warnings(false)
        .compile("gridsweep_cuda_memory");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-cfg=gridsweep_cuda_memory");
}

/// The `__version__ = '2.11.0+cu130'` line of torch's `version.py`.
fn parse_version_py(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_owned())
}
