//! icap-check: a health check for ICAP servers that HAProxy runs as its
//! `external-check command`, and that an operator runs by hand.
//!
//! The path of one check: [`args`] (command line, config file, HAProxy's
//! arguments or haproxy.cfg) → [`plan`] (validated settings) → [`run`]
//! ([`net`] under one deadline → [`probes`]) → [`outcome`] → [`report`].
//! The resident mode ([`resident`]) runs the same checks another way.
//! Imports go one way: `app` → `resident` → `run` → `plan` → `args` → `report`, `probes`
//! → `net` → `outcome`, `file`, `text`, `date`. The library exists for the binary,
//! its tests and its fuzz targets; it is not a stable API.
#![forbid(unsafe_code)]

mod app;
mod args;
mod date;
mod file;
mod net;
mod outcome;
mod plan;
mod probes;
mod report;
mod resident;
mod run;
mod text;

pub use app::run as main;

/// The parsers, for the fuzz targets in fuzz/.
pub mod fuzzing {
    pub use crate::args::config_file::{parse as parse_config, SectionKind, Source, Wanted};
    pub use crate::args::haproxy_api::{
        parse_servers_state, parse_stat, servers as runtime_servers,
    };
    pub use crate::args::haproxy_cfg::parse as parse_haproxy_cfg;
    pub use crate::args::target::{parse as parse_target, parse_server};
    pub use crate::args::time::{format_time, parse_time};
    pub use crate::net::tls::der::{
        common_name, fields, name_text, not_after, oid_text, validity, Fields,
    };
    pub use crate::outcome::Failure;
    pub use crate::probes::icap::chunked::{ChunkError, Decoder};
    pub use crate::probes::icap::reader::{Progress, Response, ResponseReader};
    pub use crate::probes::icap::request::Method;
    pub use crate::probes::icap::response::{
        parse_encapsulated, parse_head, Parsed, Protocol, Section, MAX_HEAD,
    };
}

/// The EICAR test file rebuilt in memory, for the tests that prove it is
/// never stored as its bytes and that give a scanner its signature.
pub mod canary {
    pub use crate::probes::icap::canary::{eicar, LEN};
}

/// What the man page and the completions are made from, for
/// src/bin/icap-check-assets.rs.
pub mod assets {
    pub use crate::args::cli::Cli;
    pub use crate::outcome::ExitStatus;
    pub use crate::probes::SCHEMES;
}
