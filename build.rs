//! Compiles the eBPF owner programs (src/net/ownership/ebpf/bpf/owners.bpf.c) into an object the
//! plugin embeds (`include_bytes!` in src/net/ownership/ebpf/mod.rs). Needs clang and libbpf's
//! headers (Debian: clang, libbpf-dev; scripts/lib.sh installs them).

use std::env;
use std::path::PathBuf;

const SOURCE_DIR: &str = "src/net/ownership/ebpf/bpf";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let source = PathBuf::from(SOURCE_DIR).join("owners.bpf.c");
    for file in ["owners.bpf.c", "kernel.h", "record.h"] {
        println!("cargo:rerun-if-changed={SOURCE_DIR}/{file}");
    }
    let result = libbpf_cargo::SkeletonBuilder::new()
        .source(&source)
        .obj(out.join("owners.bpf.o"))
        .clang_args(["-Wall", "-Werror", "-I", SOURCE_DIR])
        .build();
    if let Err(e) = result {
        panic!(
            "compiling {} failed: {e:#}\n(it needs clang and libbpf's headers: on Debian, \
             `apt-get install clang libbpf-dev`, which scripts/test.sh and scripts/demo.sh do)",
            source.display()
        );
    }
}
