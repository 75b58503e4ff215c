//! Command-line definitions (clap) and what each subcommand does. `gossipchain` alone runs a
//! node, as `gossipchain node` does.

use crate::chain::{Address, ChainKind, ChainParams};
use crate::node::{self, NodeConfig};
use crate::store::{Store, StoreError};
use crate::wallet::{self, Wallet};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;
use std::path::PathBuf;

/// A peer-to-peer blockchain node: nodes find each other on the LAN by mDNS, gossip
/// transactions and blocks, sync what they lack, and keep the chain with the most work.
///
/// Given a command of the prompt (`gossipchain status`, `gossipchain send <address> 5`), it
/// sends it to the node running on --data-dir (or at --node URL) over its HTTP API.
#[derive(Parser, Debug)]
#[command(version)]
pub struct Cli {
    /// What to do (default: run a node).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Node options, when no subcommand is given.
    #[command(flatten)]
    pub node: NodeArgs,
    /// Options of a command for a running node, given before it.
    #[command(flatten)]
    pub leading: crate::client::LeadingArgs,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node and read interactive commands on stdin (type `help`).
    Node(NodeArgs),
    /// Manage wallet key files without a running node.
    Wallet {
        /// The wallet command.
        #[command(subcommand)]
        command: WalletCommand,
    },
    /// A command of the prompt, for the node running on --data-dir or at --node.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// Parses the command line, or exits with a usage error (code 2). Of the node's options, only
/// --data-dir may come before a subcommand (`gossipchain --data-dir D status`), and the
/// client's (--node, --token, --json) before a command for a running node: others before a
/// subcommand would be silently ignored, so they are refused.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
    let mut command = Cli::command();
    let matches = command.get_matches_mut();
    let leading = ["leading_node", "leading_token", "leading_json"];
    let on_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if let Some((sub, _)) = matches.subcommand() {
        let client = <crate::client::ClientCommand as clap::Subcommand>::has_subcommand(sub);
        let given: Vec<String> = command
            .get_arguments()
            .filter(|a| a.get_id() != "data_dir")
            .filter(|a| !(client && leading.contains(&a.get_id().as_str())))
            .filter(|a| on_line(a.get_id().as_str()))
            .map(|a| a.get_long().unwrap_or(a.get_id().as_str()).to_string())
            .collect();
        if let Some(flag) = given.first() {
            command
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--{flag} cannot come before `{sub}` (the node's options go after `gossipchain node`, or with no subcommand)"
                    ),
                )
                .exit();
        }
    } else if let Some(id) = leading.iter().find(|id| on_line(id)) {
        let flag = id.trim_start_matches("leading_");
        command
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--{flag} goes with a command for a running node, e.g. `gossipchain --{flag} ... status`"),
            )
            .exit();
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// The per-user data directory: `$XDG_DATA_HOME/gossipchain` or `~/.local/share/gossipchain`.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("gossipchain"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/gossipchain")),
        None => bail!("no home directory: pass --data-dir"),
    }
}

/// Where the data lives and which chain, shared by every subcommand.
#[derive(Args, Debug, Clone)]
pub struct ChainArgs {
    /// Data directory: block store, wallet.key, node.key. Two nodes on one machine need two.
    /// [default: $XDG_DATA_HOME/gossipchain or ~/.local/share/gossipchain]
    #[arg(long, env = "GOSSIPCHAIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Target block interval (e.g. 10s, 500ms, 2m): the difficulty follows the hash rate so
    /// blocks come at that pace; another interval is another chain. [default: 10s]
    #[arg(long, env = "GOSSIPCHAIN_BLOCK_TIME", value_parser = humantime::parse_duration)]
    pub block_time: Option<std::time::Duration>,
    /// A fixed difficulty instead, in leading zero bits of the block hash, without
    /// retargeting (tests and experiments); another value is another chain.
    #[arg(long, env = "GOSSIPCHAIN_DIFFICULTY", conflicts_with = "block_time")]
    pub difficulty: Option<u32>,
}

impl ChainArgs {
    /// The data directory, defaulting to the per-user data directory.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => default_data_dir(),
        }
    }

    /// The chain parameters.
    pub fn params(&self) -> anyhow::Result<ChainParams> {
        let p = match (self.difficulty, self.block_time) {
            (Some(bits), _) => ChainParams::with_bits(bits),
            (None, Some(t)) => {
                ChainParams::with_block_time(u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
            }
            (None, None) => ChainParams::default(),
        };
        p.check()?;
        Ok(p)
    }
}

/// Options of a running node.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Data directory and chain.
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Address to listen on (repeatable).
    #[arg(
        long,
        env = "GOSSIPCHAIN_LISTEN",
        value_delimiter = ',',
        default_value = "/ip4/0.0.0.0/tcp/0"
    )]
    pub listen: Vec<Multiaddr>,
    /// A peer to join through (a bootnode), e.g. /ip4/10.0.0.7/tcp/4001 with or without
    /// /p2p/<peer id> (repeatable; for peers mDNS cannot reach). Dialled until it answers;
    /// after a drop, redialled while the node has fewer than --target-peers peers (always
    /// with --no-kad).
    #[arg(long = "peer", env = "GOSSIPCHAIN_PEERS", value_delimiter = ',')]
    pub peers: Vec<Multiaddr>,
    /// Do not discover peers by mDNS.
    #[arg(long, env = "GOSSIPCHAIN_NO_MDNS")]
    pub no_mdns: bool,
    /// An address others reach this node at, e.g. /ip4/203.0.113.7/tcp/4001 or
    /// /dns4/node.example.org/tcp/4001 (repeatable): announced in the DHT, so that nodes
    /// beyond this LAN can find and dial it. Needs the port open in the firewall.
    #[arg(
        long = "external-addr",
        env = "GOSSIPCHAIN_EXTERNAL_ADDR",
        value_delimiter = ','
    )]
    pub external_addrs: Vec<Multiaddr>,
    /// Connections to seek through the DHT; the node stops dialling there (it still accepts
    /// others, up to 64 in all).
    #[arg(long, env = "GOSSIPCHAIN_TARGET_PEERS", default_value_t = 8)]
    pub target_peers: usize,
    /// Do not run the Kademlia DHT (discovery by mDNS and --peer only).
    #[arg(long, env = "GOSSIPCHAIN_NO_KAD")]
    pub no_kad: bool,
    /// Mine continuously from the start.
    #[arg(long, env = "GOSSIPCHAIN_MINE")]
    pub mine: bool,
    /// Mining threads [default: all cores].
    #[arg(long, env = "GOSSIPCHAIN_THREADS")]
    pub threads: Option<usize>,
    /// Ignore stdin (run as a service; stop with SIGTERM).
    #[arg(long, env = "GOSSIPCHAIN_NO_REPL")]
    pub no_repl: bool,
    /// Address of the HTTP API and dashboard [default: 127.0.0.1:5000, or the next free port
    /// when another node on this machine has it]. Beyond loopback, anyone who reaches it can
    /// read the node (actions still need the token in <data dir>/.cookie).
    #[arg(long, env = "GOSSIPCHAIN_HTTP", conflicts_with = "no_http")]
    pub http: Option<std::net::SocketAddr>,
    /// Do not serve HTTP.
    #[arg(long, env = "GOSSIPCHAIN_NO_HTTP")]
    pub no_http: bool,
    /// Allow browser pages from this origin to call the API (CORS), e.g. http://localhost:3000
    /// (repeatable; default: none).
    #[arg(
        long = "http-cors",
        env = "GOSSIPCHAIN_HTTP_CORS",
        value_delimiter = ','
    )]
    pub http_cors: Vec<String>,
}

/// Wallet subcommands.
#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Create a new key file (refuses to overwrite one), print its address, and show once the
    /// 24 words that restore it (`wallet restore`).
    New {
        /// Data directory and chain.
        #[command(flatten)]
        chain: ChainArgs,
        /// Key file [default: <data dir>/wallet.key].
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Write a key file from the 24 backup words of `wallet new`, read from stdin (typed or
    /// piped: words on the command line would stay in the shell's history).
    Restore {
        /// Data directory and chain.
        #[command(flatten)]
        chain: ChainArgs,
        /// Key file [default: <data dir>/wallet.key].
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print a key file's address (and its secret with --secret).
    Show {
        /// Data directory and chain.
        #[command(flatten)]
        chain: ChainArgs,
        /// Key file [default: <data dir>/wallet.key].
        #[arg(long)]
        file: Option<PathBuf>,
        /// Also print the secret key. Anyone who sees it can spend the coins.
        #[arg(long)]
        secret: bool,
    },
    /// Print the balance of an address (default: the wallet) from the data dir's block store.
    /// The node must be stopped; ask a running one with `gossipchain balance`.
    Balance {
        /// Data directory and chain.
        #[command(flatten)]
        chain: ChainArgs,
        /// Key file [default: <data dir>/wallet.key].
        #[arg(long)]
        file: Option<PathBuf>,
        /// The address (bech32m, gc1… on the default chain, or 64 hex digits) [default: the
        /// wallet's].
        address: Option<String>,
    },
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // A --data-dir before the subcommand serves it when it has none of its own.
    let dir = cli.node.chain.data_dir.clone();
    let fill = |chain: &mut ChainArgs| {
        if chain.data_dir.is_none() {
            chain.data_dir.clone_from(&dir);
        }
    };
    match cli.command {
        None => run_node(cli.node).await,
        Some(Command::Node(mut args)) => {
            fill(&mut args.chain);
            run_node(args).await
        }
        Some(Command::Wallet { mut command }) => {
            match &mut command {
                WalletCommand::New { chain, .. }
                | WalletCommand::Restore { chain, .. }
                | WalletCommand::Show { chain, .. }
                | WalletCommand::Balance { chain, .. } => fill(chain),
            }
            run_wallet(command)
        }
        Some(Command::Client(cmd)) => crate::client::run(cmd, dir, cli.leading).await,
    }
}

async fn run_node(args: NodeArgs) -> anyhow::Result<()> {
    // Listening from the start: a signal during start-up then stops the node cleanly once it
    // runs, instead of killing the process with the default action.
    let signal = shutdown_signal();
    let params = args.chain.params()?;
    let mut config = NodeConfig::new(args.chain.data_dir()?, params);
    config.net.listen = args.listen;
    config.net.bootstrap = args.peers;
    config.net.behaviour.mdns = !args.no_mdns;
    config.net.behaviour.kad = !args.no_kad;
    config.net.external = args.external_addrs;
    config.net.target_peers = args.target_peers;
    config.mine = args.mine;
    if let Some(t) = args.threads {
        config.threads = t.max(1);
    }
    let data_dir = config.data_dir.clone();
    // What a load leaves free in the allocator goes back to the system.
    crate::memory::spawn_trimmer();
    let (handle, task) = node::start(config)
        .await
        .with_context(|| format!("cannot start the node in {}", data_dir.display()))?;
    let http = if args.no_http {
        None
    } else {
        let config = crate::http::HttpConfig {
            addr: args.http.unwrap_or(crate::http::DEFAULT_ADDR),
            fallback: args.http.is_none(),
            cors: args.http_cors,
        };
        match crate::http::start(handle.clone(), config, &data_dir).await {
            Ok(server) => Some(server),
            Err(e) => {
                handle.shutdown().await;
                let _ = task.await;
                return Err(e.into());
            }
        }
    };
    let repl = async {
        if args.no_repl {
            std::future::pending::<()>().await;
        } else if let Err(e) = crate::repl::run(handle.clone()).await {
            tracing::error!("cannot read stdin: {e}");
        }
    };
    tokio::select! {
        _ = repl => {}
        _ = signal => tracing::info!("signal received: shutting down"),
    }
    if let Some(server) = http {
        server.shutdown().await;
    }
    handle.shutdown().await;
    task.await.context("node task failed")?;
    Ok(())
}

/// SIGTERM or Ctrl-C (SIGINT) when not at a line-editing prompt. The handlers are installed
/// when this is called, not when the future is first polled.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let signals = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match signals {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn key_file(chain: &ChainArgs, file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match file {
        Some(f) => f,
        None => chain.data_dir()?.join("wallet.key"),
    })
}

/// The kind of chain `chain` names, for the text of addresses.
fn chain_kind(chain: &ChainArgs) -> anyhow::Result<ChainKind> {
    Ok(ChainKind::of(&chain.params()?.chain_id()))
}

/// A new key file's path: refused if it exists.
fn new_key_file(chain: &ChainArgs, file: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = key_file(chain, file)?;
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite a key (choose another --file)",
            path.display()
        );
    }
    Ok(path)
}

/// The backup words, numbered in rows of four, for a person to copy.
fn numbered_words(mnemonic: &bip39::Mnemonic) -> String {
    let words: Vec<String> = mnemonic
        .words()
        .enumerate()
        .map(|(i, w)| format!("{:>2} {w:<9}", i + 1))
        .collect();
    words
        .chunks(4)
        .map(|row| format!("  {}", row.join("  ").trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_wallet(command: WalletCommand) -> anyhow::Result<()> {
    match command {
        WalletCommand::New { chain, file } => {
            let kind = chain_kind(&chain)?;
            let path = new_key_file(&chain, file)?;
            let mnemonic = wallet::new_mnemonic();
            let w = Wallet::from_mnemonic(&mnemonic);
            wallet::write_new_secret(&path, &w.secret())?;
            // The address on stdout for scripts; the words on stderr, for the person at the
            // terminal, shown this once.
            println!("{}", kind.encode(&w.address()));
            eprintln!("new wallet written to {} (mode 0600)", path.display());
            eprintln!(
                "Write down these {} words, in order, and keep them offline. They restore this \
                 wallet (`gossipchain wallet restore`) and are not shown again; anyone who has \
                 them can spend its coins.\n{}",
                mnemonic.word_count(),
                numbered_words(&mnemonic)
            );
        }
        WalletCommand::Restore { chain, file } => {
            let kind = chain_kind(&chain)?;
            let path = new_key_file(&chain, file)?;
            // At a terminal the words are one line, ended by Enter; from a pipe, all of it.
            let mut text = String::new();
            let stdin = std::io::stdin();
            if std::io::IsTerminal::is_terminal(&stdin) {
                eprintln!("type or paste the backup words on one line, then press Enter:");
                stdin.read_line(&mut text)
            } else {
                std::io::Read::read_to_string(&mut stdin.lock(), &mut text)
            }
            .context("cannot read the words from stdin")?;
            let mnemonic = wallet::parse_mnemonic(&text)?;
            let w = Wallet::from_mnemonic(&mnemonic);
            wallet::write_new_secret(&path, &w.secret())?;
            println!("{}", kind.encode(&w.address()));
            eprintln!("wallet restored to {} (mode 0600)", path.display());
        }
        WalletCommand::Show {
            chain,
            file,
            secret,
        } => {
            let kind = chain_kind(&chain)?;
            let path = key_file(&chain, file)?;
            let w = Wallet::load(&path)?;
            println!("address {}", kind.encode(&w.address()));
            if secret {
                println!("secret  {}", w.secret_hex());
            }
        }
        WalletCommand::Balance {
            chain,
            file,
            address,
        } => {
            let params = chain.params()?;
            let kind = ChainKind::of(&params.chain_id());
            let address: Address = match address {
                Some(a) => kind
                    .parse(&a)
                    .with_context(|| format!("bad address '{}'", a.trim()))?,
                None => Wallet::load(&key_file(&chain, file)?)?.address(),
            };
            let dir = chain.data_dir()?;
            let store_path = dir.join("blocks.redb");
            if !store_path.exists() {
                bail!(
                    "no block store in {}: run a node there first",
                    dir.display()
                );
            }
            let store = Store::open(&store_path, &params).map_err(|e| match e {
                // Only a database error can mean a running node holds the lock.
                e @ StoreError::Db { .. } => anyhow::Error::new(e).context(
                    "cannot open the block store (is a node running on this data dir? ask it: `gossipchain balance`)",
                ),
                e => anyhow::Error::new(e).context("cannot open the block store"),
            })?;
            let chain_state = store.load_chain(Default::default())?;
            let account = chain_state.ledger().account(&address);
            println!(
                "{}\nbalance    {}\nnonce      {}\nheight     {}",
                kind.encode(&address),
                account.balance,
                account.nonce,
                chain_state.height()
            );
        }
    }
    Ok(())
}
