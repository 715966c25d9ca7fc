//! openat2
