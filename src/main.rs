use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mimalloc.h` (the enum keeps retired entries, so
/// the numbers stay); the Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Give freed memory back to the system at once rather than after a delay: an idle server
    // would otherwise keep what its start-up used.
    // SAFETY: sets a number in mimalloc's option table; called before any other thread runs.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the async runtime starts")
        .block_on(run())
}

async fn run() -> std::process::ExitCode {
    let cli = latchkey::cli::Cli::parse();
    match latchkey::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
