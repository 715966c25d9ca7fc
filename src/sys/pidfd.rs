//! pidfd
