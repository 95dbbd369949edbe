//! SQL understanding on the query path, without I/O. For now: splitting a simple query into
//! statements and classifying the ones that change session state, which transaction pooling
//! must replay on whichever backend connection serves the client.

mod lexer;
mod session_commands;

pub use lexer::{split_statements, Token};
pub use session_commands::{classify, SessionCommand};
