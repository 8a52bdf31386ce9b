//! The integration tests, one test binary: each module runs the built
//! binary against real servers (c-icap, HAProxy, openssl, Python's
//! http.server) or our fault-injection server, all on loopback.

mod canary;
mod cicap;
mod common;
mod config;
mod deadline;
mod escaping;
mod faults;
mod formats;
mod haproxy;
mod http;
mod messages;
mod observe;
mod resident;
mod runtime_api;
mod signals;
mod tls;
mod usage;
