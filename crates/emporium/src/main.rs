//! `emporium`: the all-in-one commerce backend.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

/// jemalloc returns the memory of a burst (an import, a catch-up of events) to the system over
/// seconds, where the platform allocator keeps a fragmented heap per thread; the serving
/// process stays smaller for the same work.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let started = Instant::now();
    let cli = emporium::cli::Cli::parse();
    let config = match emporium::cli::load_config(&cli) {
        Ok(config) => config,
        Err(code) => return ExitCode::from(code),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_threads())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("emporium: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    ExitCode::from(runtime.block_on(emporium::cli::run(cli, config, started)))
}
