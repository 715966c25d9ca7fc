//! What the crate's own tests share: how a test says it did nothing.

use std::io::Write;

/// The whole test is skipped (call it, then return): `SKIP test: reason` straight to fd 2, as
/// the root tests under `tests/` print it. libtest captures `eprintln!` of a passing test, and
/// `make test`'s summary counts such a test as skipped, not passed.
pub fn skip(test: &str, reason: &str) {
    let _ = std::io::stderr().write_all(format!("SKIP {test}: {reason}\n").as_bytes());
}
