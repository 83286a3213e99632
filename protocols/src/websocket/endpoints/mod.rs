//! The built-in endpoints: `/echo`, `/chat` and `/status`.

pub mod chat;
pub mod echo;
pub mod status;
