//! Whether the tests may run: container tests need root and skip loudly without it.

use std::thread::{self};

/// True when running as root. Otherwise prints a loud skip line naming the current test
/// (libtest names each test's thread after the test) and returns false: the test should
/// return at once, e.g. `if !require_root() { return; }`.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let current = thread::current();
    let name = current.name().unwrap_or("<unnamed test>");
    eprintln!("\n**************** SKIPPED (needs root): {name} ****************\n");
    false
}
