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
mod observe;
mod signals;
mod tls;
mod usage;
