//! clone3
