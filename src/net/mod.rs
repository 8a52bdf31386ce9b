//! The network under one deadline: where to connect ([`endpoint`]), the
//! deadline itself ([`deadline`]), connecting and moving bytes
//! ([`connection`]) and TLS over it ([`tls`]). It knows no protocol above
//! TLS, and imports nothing of the crate but the outcome vocabulary and the
//! leaf helpers (`file`, `text`, `date`).

pub mod connection;
pub mod deadline;
pub mod endpoint;
pub mod tls;

pub use connection::Connection;
pub use deadline::Deadline;
pub use endpoint::{Endpoint, Host};
pub use tls::{TlsClient, TlsOptions};
