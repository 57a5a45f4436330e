//! Builds the eBPF programs of `supervisor-ebpf/` for `bpfel-unknown-none` with
//! aya-build (nightly, `-Z build-std=core`, bpf-linker) and leaves the object in
//! `OUT_DIR/sniffguard-probes`, where `probe.rs` embeds it.

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = format!("{manifest_dir}/../supervisor-ebpf");
    let common_dir = format!("{manifest_dir}/../common");
    // The ABI and the capture rule live in common/: a change there must
    // rebuild the programs.
    println!("cargo:rerun-if-changed={common_dir}/src/abi.rs");
    println!("cargo:rerun-if-changed={common_dir}/src/capture.rs");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "sniffguard-ebpf",
            root_dir: &ebpf_dir,
            ..Default::default()
        }],
        toolchain(),
    )
}

/// The toolchain that builds the programs: `nightly` unless
/// `SNIFFGUARD_EBPF_TOOLCHAIN` names another (scripts/setup.sh sets it to
/// `stable`, with `RUSTC_BOOTSTRAP=1`, on machines without a nightly).
fn toolchain() -> aya_build::Toolchain<'static> {
    println!("cargo:rerun-if-env-changed=SNIFFGUARD_EBPF_TOOLCHAIN");
    match std::env::var("SNIFFGUARD_EBPF_TOOLCHAIN") {
        Ok(name) if !name.is_empty() && name != "nightly" => {
            aya_build::Toolchain::Custom(Box::leak(name.into_boxed_str()))
        }
        _ => aya_build::Toolchain::Nightly,
    }
}
