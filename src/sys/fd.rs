//! fd
