#![no_main]
use std::path::Path;

use icap_check::fuzzing::parse_haproxy_cfg as parse;
use icap_check::fuzzing::parse_server;
use libfuzzer_sys::fuzz_target;

// Never panics; every backend read can be selected by name, and every server's
// check target goes through the HAProxy-argument parser without a panic.
fuzz_target!(|text: &str| {
    let Ok(cfg) = parse(text, Path::new("haproxy.cfg")) else {
        return;
    };
    assert!(cfg.select(&[]).is_ok());
    for backend in &cfg.backends {
        assert!(cfg.select(std::slice::from_ref(&backend.name)).is_ok());
        for server in &backend.servers {
            let (addr, port) = server.check_target();
            let _ = parse_server(&addr, &port);
        }
    }
});
