//! torsion's protocol modules.
//!
//! Each module has the same three parts, so a reader who learns one knows all:
//! a pure parser/encoder (bytes in, typed value or typed error out, no I/O),
//! a `Protocol` + factory that drives it from
//! reactor events, and a config struct with defaults.
//!
//! The codecs land first; the protocols that drive them follow.

pub mod echo;
pub mod gemini;
pub mod http;
pub mod log_escape;
pub mod open_file;
pub mod websocket;
