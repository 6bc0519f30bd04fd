//! The async runtime the synchronous engine blocks on for network work: one per
//! command, two worker threads (the work is I/O bound).

use std::future::Future;

use anyhow::Result;

pub fn block_on<F: Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}
