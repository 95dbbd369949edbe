//! The `redveil demo` command's pieces that live in the library.

pub mod catalog;
pub mod dataset;
pub mod run;
