//! `emporium`: the all-in-one commerce backend.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// mimalloc hands freed pages back to the system, where the platform allocator keeps a
/// fragmented heap per thread: after a burst (catch-up, import) the process shrinks again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = emporium::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("emporium: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(emporium::cli::run(cli, started)))
}
