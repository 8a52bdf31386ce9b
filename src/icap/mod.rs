//! ICAP (RFC 3507), spoken by our own code: wire formats as pure functions
//! (`request`, `response`, `chunked`) and the exchange over a connection (`probe`).

pub mod chunked;
pub mod probe;
pub mod reader;
pub mod request;
pub mod response;
