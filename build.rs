//! Compiles the plugin's eBPF programs into objects it embeds (`include_bytes!`): the owner
//! programs (src/net/ownership/ebpf/bpf/owners.bpf.c) and the exit program
//! (src/exits/ebpf/bpf/exits.bpf.c), both including src/ebpf/bpf/types.h and lost.h. Needs
//! clang and libbpf's headers (Debian: clang, libbpf-dev; scripts/lib.sh installs them).

use std::env;
use std::path::PathBuf;

const SOURCE_DIR: &str = "src/net/ownership/ebpf/bpf";
const EXITS_DIR: &str = "src/exits/ebpf/bpf";
/// Headers every program includes.
const SHARED_DIR: &str = "src/ebpf/bpf";

fn main() {
    println!("cargo:rerun-if-changed={SHARED_DIR}/types.h");
    println!("cargo:rerun-if-changed={SHARED_DIR}/lost.h");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    compile(
        SOURCE_DIR,
        "owners.bpf.c",
        &["kernel.h", "record.h"],
        &out.join("owners.bpf.o"),
    );
    compile(
        EXITS_DIR,
        "exits.bpf.c",
        &["kernel.h", "exit_record.h"],
        &out.join("exits.bpf.o"),
    );
}

/// Compiles `dir/source` (which includes `headers` from `dir`) into `object`.
fn compile(dir: &str, source: &str, headers: &[&str], object: &std::path::Path) {
    let path = PathBuf::from(dir).join(source);
    for file in std::iter::once(&source).chain(headers) {
        println!("cargo:rerun-if-changed={dir}/{file}");
    }
    let result = libbpf_cargo::SkeletonBuilder::new()
        .source(&path)
        .obj(object)
        .clang_args(["-Wall", "-Werror", "-I", dir, "-I", SHARED_DIR])
        .build();
    if let Err(e) = result {
        panic!(
            "compiling {} failed: {e:#}\n(it needs clang and libbpf's headers: on Debian, \
             `apt-get install clang libbpf-dev`, which scripts/test.sh and scripts/demo.sh do)",
            path.display()
        );
    }
}
