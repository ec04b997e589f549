//! `mock-upstream`: the harness's OpenAI-compatible upstream as a process.
//! Prints `listening on HOST:PORT` once it accepts connections.

use std::time::Duration;

use clap::Parser;
use downcity_bench::upstream::{self, UpstreamConfig};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "A fast OpenAI-compatible mock upstream for benchmarks.")]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Tokens per answer.
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    /// Pause before each streamed token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(&args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let config = UpstreamConfig {
        tokens: args.tokens,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
    };
    upstream::serve(listener, config).await
}
