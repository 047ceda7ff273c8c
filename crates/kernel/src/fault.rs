//! Crash points for fault tests: named places where the process aborts on purpose when the
//! point is enabled in configuration. Disabled points cost one hash lookup in an empty set.

use std::collections::HashSet;
use std::sync::Arc;

/// The set of enabled crash points.
#[derive(Debug, Clone, Default)]
pub struct CrashPoints(Arc<HashSet<String>>);

impl CrashPoints {
    /// Enables the named points.
    pub fn new<I: IntoIterator<Item = String>>(names: I) -> Self {
        Self(Arc::new(names.into_iter().collect()))
    }

    /// Aborts the process (no destructors, no flushing: like a power cut or `kill -9`) when the
    /// point `name` is enabled.
    pub fn hit(&self, name: &str) {
        if self.0.contains(name) {
            eprintln!("crash point {name} reached: aborting");
            std::process::abort();
        }
    }
}
