//! The interactive commands typed at a running node. Parsing is pure ([`parse`]); running a
//! command ([`execute`]) asks the node through its handle and returns the text to print.
//! [`run`] reads lines on a dedicated thread: with a prompt and line editing when stdin is a
//! terminal, plain lines when it is a pipe (scripts, `docker attach`).

use crate::chain::pace::{ChainPace, si};
use crate::chain::{Address, Block, Transaction};
use crate::node::{BlockId, BlockInfo, BlockState, NodeHandle, Stopped};
use libp2p::Multiaddr;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// List the commands.
    Help,
    /// Show the node's state.
    Status,
    /// List connected peers.
    Peers,
    /// Show the last n blocks.
    Chain(usize),
    /// Show one block.
    Block(BlockId),
    /// Show the wallet address.
    Address,
    /// Show a balance (the node's wallet if none given).
    Balance(Option<Address>),
    /// Send coins from the node's wallet.
    Send {
        /// Recipient.
        to: Address,
        /// Coins.
        amount: u64,
        /// Fee.
        fee: u64,
    },
    /// List pending transfers.
    Mempool,
    /// Mine n blocks now.
    Mine(u64),
    /// Continuous mining on or off.
    MineSwitch(bool),
    /// Dial a peer.
    Dial(Multiaddr),
    /// Ask peers for their status now.
    Sync,
    /// Stop the node.
    Quit,
}

/// Each command's usage line, for `help` and for errors.
pub const USAGE: &[(&str, &str)] = &[
    ("help", "list the commands"),
    (
        "status",
        "peer id, chain, height, tip, work, peers, mempool, mining",
    ),
    (
        "peers",
        "connected peers, their addresses and how each was found",
    ),
    (
        "chain [n]",
        "the last n blocks of the best chain (default 10)",
    ),
    ("block <height|hash>", "one block and its transactions"),
    (
        "address",
        "this node's wallet address (mining rewards go there)",
    ),
    (
        "balance [address]",
        "balance and nonce of an address (default: this wallet)",
    ),
    (
        "send <address> <amount> [fee]",
        "sign and send coins from this wallet (fee default 1)",
    ),
    ("mempool", "pending transactions, highest fee first"),
    ("mine [n]", "mine n blocks now (default 1), printing each"),
    ("mine on|off", "mine continuously, or stop"),
    (
        "dial <multiaddr>",
        "connect to a peer, e.g. /ip4/192.168.1.7/tcp/4001",
    ),
    ("sync", "ask every peer for its chain now"),
    (
        "quit",
        "stop the node (also: end of input, Ctrl-D, SIGTERM)",
    ),
];

fn usage(name: &str) -> &'static str {
    USAGE
        .iter()
        .find(|(u, _)| u.split_whitespace().next() == Some(name))
        .map_or("help", |(u, _)| u)
}

/// A command that could not be parsed: what is wrong, and the usage line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What is wrong.
    pub message: String,
    /// The command's usage (or `help`).
    pub usage: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error: {}\nusage: {}", self.message, self.usage)
    }
}

fn parse_amount(what: &str, s: &str, min: u64) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("{what} must be at least {min}")),
        Err(_) if s.starts_with('-') => Err(format!("{what} cannot be negative: '{s}'")),
        Err(_) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("{what} '{s}' is too large (at most {})", u64::MAX))
        }
        Err(_) => Err(format!("{what} must be a whole number, got '{s}'")),
    }
}

/// Most blocks `chain n` lists.
const MAX_CHAIN: u64 = 10_000;
/// Most blocks one `mine n` mines (the prompt waits for them; `mine on` has no limit).
const MAX_MINE: u64 = 1000;

/// A count from 1 to `max`.
fn parse_count(s: &str, max: u64) -> Result<u64, String> {
    match parse_amount("n", s, 1)? {
        n if n > max => Err(format!("n must be at most {max}")),
        n => Ok(n),
    }
}

fn parse_address(s: &str) -> Result<Address, String> {
    s.parse().map_err(|e| format!("bad address '{s}': {e}"))
}

/// Parses one line. `Ok(None)` for a blank line.
pub fn parse(line: &str) -> Result<Option<Cmd>, ParseError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else {
        return Ok(None);
    };
    let err = |message: String| ParseError {
        message,
        usage: usage(name),
    };
    let arity = |min: usize, max: usize| {
        if args.len() < min {
            Err(err("missing argument".into()))
        } else if args.len() > max {
            Err(err(format!("unexpected argument '{}'", args[max])))
        } else {
            Ok(())
        }
    };
    let cmd = match name {
        "help" | "?" => {
            arity(0, 1)?;
            Cmd::Help
        }
        "status" => {
            arity(0, 0)?;
            Cmd::Status
        }
        "peers" => {
            arity(0, 0)?;
            Cmd::Peers
        }
        "chain" => {
            arity(0, 1)?;
            match args.first() {
                None => Cmd::Chain(10),
                Some(n) => Cmd::Chain(parse_count(n, MAX_CHAIN).map_err(err)? as usize),
            }
        }
        "block" => {
            arity(1, 1)?;
            Cmd::Block(args[0].parse().map_err(err)?)
        }
        "address" => {
            arity(0, 0)?;
            Cmd::Address
        }
        "balance" => {
            arity(0, 1)?;
            Cmd::Balance(
                args.first()
                    .map(|a| parse_address(a))
                    .transpose()
                    .map_err(err)?,
            )
        }
        "send" => {
            arity(2, 3)?;
            let to = parse_address(args[0]).map_err(err)?;
            let amount = parse_amount("amount", args[1], 1).map_err(err)?;
            let fee = match args.get(2) {
                Some(f) => parse_amount("fee", f, 0).map_err(err)?,
                None => 1,
            };
            Cmd::Send { to, amount, fee }
        }
        "mempool" => {
            arity(0, 0)?;
            Cmd::Mempool
        }
        "mine" => {
            arity(0, 1)?;
            match args.first().copied() {
                None => Cmd::Mine(1),
                Some("on") => Cmd::MineSwitch(true),
                Some("off") => Cmd::MineSwitch(false),
                Some(n) => Cmd::Mine(parse_count(n, MAX_MINE).map_err(err)?),
            }
        }
        "dial" => {
            arity(1, 1)?;
            Cmd::Dial(
                args[0]
                    .parse()
                    .map_err(|e| err(format!("bad multiaddr '{}': {e}", args[0])))?,
            )
        }
        "sync" => {
            arity(0, 0)?;
            Cmd::Sync
        }
        "quit" | "exit" => {
            arity(0, 0)?;
            Cmd::Quit
        }
        other => {
            return Err(ParseError {
                message: format!("unknown command '{other}'"),
                usage: "help",
            });
        }
    };
    Ok(Some(cmd))
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The `status` lines about difficulty and block rate.
fn pace_lines(p: &ChainPace) -> String {
    let target = match p.block_time_ms {
        Some(ms) => format!(
            "retargeting, one block every {}",
            humantime::format_duration(Duration::from_millis(ms))
        ),
        None => "fixed (no retargeting)".into(),
    };
    let measured = match (p.mean_interval_ms, p.hash_rate) {
        (Some(ms), Some(rate)) => format!(
            "mean interval {:.2} s over the last {} blocks; network {}hashes/s",
            ms / 1000.0,
            p.intervals,
            si(rate)
        ),
        _ => "no blocks mined yet to measure".into(),
    };
    format!(
        "difficulty {:08x} ({}hashes a block expected), {target}\nblock rate {measured}",
        p.next_bits,
        si(p.expected_hashes.as_f64())
    )
}

fn block_line(info: &BlockInfo) -> String {
    let h = &info.block.header;
    format!(
        "#{:<6} {}  {} txs  {}{}",
        h.height,
        info.hash,
        info.block.txs.len(),
        time(h.timestamp),
        if info.on_best_chain {
            ""
        } else {
            "  (side branch)"
        }
    )
}

fn block_detail(info: &BlockInfo) -> String {
    let b: &Block = &info.block;
    let h = &b.header;
    let mut out = String::new();
    let _ = writeln!(out, "hash       {}", info.hash);
    let _ = writeln!(
        out,
        "height     {}{}",
        h.height,
        if info.on_best_chain {
            ""
        } else {
            " (side branch)"
        }
    );
    let _ = writeln!(out, "parent     {}", h.prev_hash);
    let _ = writeln!(out, "time       {}", time(h.timestamp));
    let _ = writeln!(out, "tx_root    {}", h.tx_root);
    let _ = writeln!(out, "bits       {:08x}", h.bits);
    let _ = writeln!(out, "nonce      {}", h.nonce);
    let _ = writeln!(out, "size       {} bytes", b.encoded_len());
    let _ = write!(out, "txs        {}", b.txs.len());
    for tx in &b.txs {
        let txid = tx.compute_txid();
        match tx {
            Transaction::Coinbase(c) => {
                let _ = write!(out, "\n  {txid}  coinbase {} to {}", c.amount, c.to);
            }
            Transaction::Transfer(t) => {
                let _ = write!(
                    out,
                    "\n  {txid}  {} -> {}  amount {} fee {} nonce {}",
                    t.from, t.to, t.amount, t.fee, t.nonce
                );
            }
        }
    }
    out
}

/// What a command printed, and whether the node should stop after it.
pub struct Output {
    /// Text for stdout (without a final newline).
    pub text: String,
    /// `quit` was typed.
    pub quit: bool,
}

/// Runs a command against the node. Errors the node reports become one-line `error:` texts.
pub async fn execute(cmd: Cmd, node: &NodeHandle) -> Result<Output, Stopped> {
    let text = match cmd {
        Cmd::Help => {
            let mut out = String::from("commands:");
            for (u, what) in USAGE {
                let _ = write!(out, "\n  {u:<32} {what}");
            }
            out
        }
        Cmd::Status => {
            // The snapshot is published after each step of the node; a round trip first makes
            // it include every command before this one (blocks just mined, `mine off`).
            node.chain(0).await?;
            let s = node.status();
            let listen: Vec<String> = s.listen.iter().map(|a| a.to_string()).collect();
            format!(
                "peer id    {}\nchain id   {}\nheight     {}\ntip        {}\nwork       {}\n{}\npeers      {}\nmempool    {}\norphans    {}\nmining     {}\nsyncing    {}\naddress    {}\nlistening  {}",
                s.peer_id,
                s.chain_id,
                s.height,
                s.tip,
                s.work,
                pace_lines(&s.pace),
                s.peers,
                s.mempool,
                s.orphans,
                if s.mining { "on" } else { "off" },
                if s.syncing { "yes" } else { "no" },
                s.address,
                listen.join(" ")
            )
        }
        Cmd::Peers => {
            let peers = node.peers().await;
            if peers.is_empty() {
                "no peers".into()
            } else {
                peers
                    .iter()
                    .map(|p| {
                        let addrs: Vec<String> =
                            p.addresses.iter().map(|a| a.to_string()).collect();
                        format!(
                            "{}  {}  found by {}{}{}",
                            p.peer,
                            addrs.join(","),
                            p.found_by,
                            p.rtt.map_or(String::new(), |r| format!("  rtt {r:.1?}")),
                            p.agent
                                .as_deref()
                                .map_or(String::new(), |a| format!("  {a}")),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Cmd::Chain(n) => node
            .chain(n)
            .await?
            .iter()
            .map(block_line)
            .collect::<Vec<_>>()
            .join("\n"),
        Cmd::Block(id) => match (node.block(id).await?, id) {
            (Some(info), _) => block_detail(&info),
            (None, BlockId::Hash(hash)) => match node.block_state(hash).await? {
                BlockState::Orphan => format!("block {hash} is waiting for its parent"),
                BlockState::Invalid(e) => format!("error: block {hash} was rejected: {e}"),
                _ => "error: no such block".into(),
            },
            (None, BlockId::Height(_)) => "error: no such block".into(),
        },
        Cmd::Address => node.status().address.to_string(),
        Cmd::Balance(address) => {
            let address = address.unwrap_or(node.status().address);
            let (account, pending) = node.balance(address).await?;
            format!(
                "{address}\nbalance    {}\nnonce      {}\npending    {} (spent by transactions in the mempool)",
                account.balance, account.nonce, pending
            )
        }
        Cmd::Send { to, amount, fee } => match node.send(to, amount, fee).await? {
            Ok(txid) => format!("sent {txid}"),
            Err(e) => format!("error: {e}"),
        },
        Cmd::Mempool => {
            let txs = node.mempool().await?;
            if txs.is_empty() {
                "mempool is empty".into()
            } else {
                txs.iter()
                    .map(|(id, t)| {
                        format!(
                            "{id}  {} -> {}  amount {} fee {} nonce {}",
                            t.from.short(),
                            t.to.short(),
                            t.amount,
                            t.fee,
                            t.nonce
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        Cmd::Mine(n) => {
            let mut lines = Vec::new();
            for _ in 0..n {
                match node.mine_one().await? {
                    Ok(info) => {
                        let line = format!("mined {}", block_line(&info));
                        // Printed as each block is found, not after the last.
                        println!("{line}");
                    }
                    Err(e) => {
                        lines.push(format!("error: {e}"));
                        break;
                    }
                }
            }
            lines.join("\n")
        }
        Cmd::MineSwitch(on) => {
            node.set_mining(on).await?;
            // Queued without a reply: a round trip confirms that the node has applied it.
            node.chain(0).await?;
            format!("mining {}", if on { "on" } else { "off" })
        }
        Cmd::Dial(addr) => match node.dial(addr.clone()).await {
            Ok(peer) => format!("connected to {peer}"),
            Err(e) => format!("error: cannot dial {addr}: {e}"),
        },
        Cmd::Sync => {
            let n = node.sync().await?;
            format!("asked {n} peers for their chain")
        }
        Cmd::Quit => {
            return Ok(Output {
                text: "bye".into(),
                quit: true,
            });
        }
    };
    Ok(Output { text, quit: false })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let a = Address::of(&crate::testkit::key(1));
        assert_eq!(parse("  ").unwrap(), None);
        assert_eq!(parse("status").unwrap(), Some(Cmd::Status));
        assert_eq!(parse("chain").unwrap(), Some(Cmd::Chain(10)));
        assert_eq!(parse("chain 3").unwrap(), Some(Cmd::Chain(3)));
        assert_eq!(
            parse("block 7").unwrap(),
            Some(Cmd::Block(BlockId::Height(7)))
        );
        assert_eq!(
            parse(&format!("send {a} 5")).unwrap(),
            Some(Cmd::Send {
                to: a,
                amount: 5,
                fee: 1
            })
        );
        assert_eq!(
            parse(&format!("send {a} 5 0")).unwrap(),
            Some(Cmd::Send {
                to: a,
                amount: 5,
                fee: 0
            })
        );
        assert_eq!(parse("mine").unwrap(), Some(Cmd::Mine(1)));
        assert_eq!(parse("mine off").unwrap(), Some(Cmd::MineSwitch(false)));
        assert!(matches!(
            parse("dial /ip4/127.0.0.1/tcp/1").unwrap(),
            Some(Cmd::Dial(_))
        ));
    }

    #[test]
    fn bad_input_names_the_problem_and_the_usage() {
        let e = parse("frobnicate").unwrap_err();
        assert_eq!(e.message, "unknown command 'frobnicate'");
        let e = parse("send").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.usage),
            ("missing argument", "send <address> <amount> [fee]")
        );
        let e = parse("send 12 5").unwrap_err();
        assert!(e.message.starts_with("bad address '12'"), "{}", e.message);
        let a = Address::of(&crate::testkit::key(1));
        let e = parse(&format!("send {a} -5")).unwrap_err();
        assert_eq!(e.message, "amount cannot be negative: '-5'");
        let e = parse(&format!("send {a} 99999999999999999999")).unwrap_err();
        assert!(e.message.contains("too large"), "{}", e.message);
        let e = parse(&format!("send {a} 0")).unwrap_err();
        assert_eq!(e.message, "amount must be at least 1");
        let e = parse(&format!("send {a} 1.5")).unwrap_err();
        assert!(e.message.contains("whole number"), "{}", e.message);
        let e = parse("block xyz").unwrap_err();
        assert!(e.message.contains("neither a height nor a block hash"));
        let e = parse("dial nowhere").unwrap_err();
        assert!(e.message.starts_with("bad multiaddr"));
        assert_eq!(
            parse("mine 1001").unwrap_err().message,
            "n must be at most 1000"
        );
        assert_eq!(parse("mine 1000").unwrap(), Some(Cmd::Mine(1000)));
        assert_eq!(
            parse("chain 10001").unwrap_err().message,
            "n must be at most 10000"
        );
        let e = parse("status now").unwrap_err();
        assert_eq!(e.message, "unexpected argument 'now'");
    }
}

/// Where log lines go: stderr, or, while a line-editing prompt is shown, above the prompt
/// (through the editor's printer) so that logs never garble what the user is typing.
pub mod log_sink {
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};

    /// Prints above the prompt.
    type Printer = Box<dyn FnMut(String) + Send>;

    static PRINTER: OnceLock<Mutex<Printer>> = OnceLock::new();

    /// Sends every later log line through `printer`.
    pub fn set_printer(printer: Printer) {
        let _ = PRINTER.set(Mutex::new(printer));
    }

    /// A `MakeWriter` for tracing-subscriber.
    pub struct LogSink;

    /// Buffers one log event, written out whole on drop.
    pub struct LogLine(Vec<u8>);

    impl Write for LogLine {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for LogLine {
        fn drop(&mut self) {
            let bytes = std::mem::take(&mut self.0);
            match PRINTER.get() {
                // The lock only guards the printer handle, never held across an await.
                Some(p) => {
                    if let Ok(mut p) = p.lock() {
                        p(String::from_utf8_lossy(&bytes).into_owned());
                    }
                }
                None => {
                    let _ = std::io::stderr().write_all(&bytes);
                }
            }
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
        type Writer = LogLine;
        fn make_writer(&'a self) -> LogLine {
            LogLine(Vec::new())
        }
    }
}

/// A line typed, and where to say that it was handled (true: stop reading).
type Line = (String, tokio::sync::oneshot::Sender<bool>);

/// Reads stdin on a dedicated thread and hands each line over, waiting until it was handled
/// before showing the next prompt. Ends at end of input (the channel closes).
fn spawn_reader(tx: tokio::sync::mpsc::Sender<Line>) -> std::io::Result<()> {
    use std::io::IsTerminal;
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let send = |line: String| -> bool {
                let (done, handled) = tokio::sync::oneshot::channel();
                if tx.blocking_send((line, done)).is_err() {
                    return false;
                }
                // true means quit; a dropped sender means the node is gone.
                !handled.blocking_recv().unwrap_or(true)
            };
            if terminal {
                let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                    return;
                };
                if let Ok(mut printer) = editor.create_external_printer() {
                    log_sink::set_printer(Box::new(move |msg| {
                        use rustyline::ExternalPrinter as _;
                        let _ = printer.print(msg);
                    }));
                }
                loop {
                    match editor.readline("gossipchain> ") {
                        Ok(line) => {
                            if !line.trim().is_empty() {
                                let _ = editor.add_history_entry(line.as_str());
                            }
                            if !send(line) {
                                return;
                            }
                        }
                        // Ctrl-C clears the line, as in a shell; Ctrl-D ends the input.
                        Err(rustyline::error::ReadlineError::Interrupted) => continue,
                        Err(_) => return,
                    }
                }
            } else {
                use std::io::BufRead;
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { return };
                    if !send(line) {
                        return;
                    }
                }
            }
        })
        .map(|_| ())
}

/// Runs the interactive commands until `quit` or end of input. Returns when the node should
/// stop.
pub async fn run(node: NodeHandle) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Line>(1);
    spawn_reader(tx)?;
    while let Some((line, done)) = rx.recv().await {
        let quit = match parse(&line) {
            Ok(None) => false,
            Err(e) => {
                println!("{e}");
                false
            }
            Ok(Some(cmd)) => match execute(cmd, &node).await {
                Ok(out) => {
                    if !out.text.is_empty() {
                        println!("{}", out.text);
                    }
                    out.quit
                }
                Err(Stopped) => true,
            },
        };
        let _ = done.send(quit);
        if quit {
            break;
        }
    }
    Ok(())
}
