//! `bench`: see the library's documentation, or `bench --help`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::main(bench::Args::parse()).await
}
