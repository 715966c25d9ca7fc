//! Small safe wrappers for syscalls that nix lacks. `unsafe` lives here, each block with a
//! `// SAFETY:` line.
