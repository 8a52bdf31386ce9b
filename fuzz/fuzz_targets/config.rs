#![no_main]
use std::path::Path;

use icap_check::fuzzing::{parse_config as parse, SectionKind, Source, Wanted};
use libfuzzer_sys::fuzz_target;

// Never panics; an accepted file has each section once, in line order, and
// picking the layers for any backend/server of it does not panic either.
fuzz_target!(|text: &str| {
    let Ok(file) = parse(text, Path::new("fuzz.conf"), Source::Flag, &Wanted::All) else {
        return;
    };
    for (i, section) in file.sections.iter().enumerate() {
        assert!(file.sections[..i]
            .iter()
            .all(|s| s.kind != section.kind && s.line < section.line));
        assert!(section
            .entries
            .iter()
            .all(|e| e.line > section.line && !e.key.starts_with('-')));
        if let SectionKind::Server(name) = &section.kind {
            let (backend, server) = name
                .split_once('/')
                .expect("server sections are BACKEND/SERVER");
            assert!(!file.layers(Some(backend), Some(server)).is_empty());
        }
    }
});
