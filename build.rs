//! Links the functions a check runs ahead of the rest of the text, so that a
//! check maps a fraction of the binary (packaging/hot-text explains why and
//! regenerates the list). The script only groups sections: a linker that
//! finds none of its names links exactly as before. ICAP_CHECK_HOT_TEXT=0 leaves
//! it out, for comparing layouts.

fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/hot-text.ld");
    println!("cargo:rerun-if-changed=packaging/hot-text.ld");
    println!("cargo:rerun-if-env-changed=ICAP_CHECK_HOT_TEXT");
    // The section-per-function layout and INSERT scripts are ELF linkers' (GNU ld,
    // lld); Linux is where the check runs.
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let wanted = std::env::var("ICAP_CHECK_HOT_TEXT").map_or(true, |v| v != "0");
    if linux && wanted {
        println!("cargo:rustc-link-arg-bin=icap-check=-T{script}");
    }
}
