//! The `gossipchain` binary: parses the command line, sets up logging, runs.

use gossipchain::repl::log_sink::LogSink;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = gossipchain::cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,libp2p=warn,libp2p_gossipsub=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogSink)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match gossipchain::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // A command line naming no valid command is a usage error, as clap's own are.
            if e.is::<gossipchain::client::UsageError>() {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
