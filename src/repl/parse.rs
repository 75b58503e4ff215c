//! Parsing of the typed commands: pure, no I/O. A typo or a bad argument becomes a
//! [`ParseError`] naming the command's usage.

use crate::chain::{Address, ChainKind, Txid};
use crate::node::BlockId;
use libp2p::Multiaddr;

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
    /// Speed up a pending transfer of this wallet: the same transfer with a higher fee.
    Bump {
        /// The pending transfer.
        txid: Txid,
        /// The new fee.
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
    (
        "bump <txid> <fee>",
        "speed up a pending transfer of this wallet: resend it with a fee at least 10 % higher",
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

/// Whether a command can be given to a running node from the command line
/// (`gossipchain <command>`): all but `help` and `quit`.
pub fn remote(name: &str) -> bool {
    !matches!(name, "help" | "?" | "quit" | "exit")
}

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

fn parse_address(kind: ChainKind, s: &str) -> Result<Address, String> {
    kind.parse(s).map_err(|e| format!("bad address '{s}': {e}"))
}

/// Parses one line typed at a node whose chain is of `kind` (which addresses it takes).
/// `Ok(None)` for a blank line.
pub fn parse(line: &str, kind: ChainKind) -> Result<Option<Cmd>, ParseError> {
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
                    .map(|a| parse_address(kind, a))
                    .transpose()
                    .map_err(err)?,
            )
        }
        "send" => {
            arity(2, 3)?;
            let to = parse_address(kind, args[0]).map_err(err)?;
            let amount = parse_amount("amount", args[1], 1).map_err(err)?;
            let fee = match args.get(2) {
                Some(f) => parse_amount("fee", f, 0).map_err(err)?,
                None => 1,
            };
            Cmd::Send { to, amount, fee }
        }
        "bump" => {
            arity(2, 2)?;
            let txid = args[0].parse().map_err(|_| {
                err(format!(
                    "bad txid '{}': expected 64 hex digits (see `mempool`)",
                    args[0]
                ))
            })?;
            let fee = parse_amount("fee", args[1], 0).map_err(err)?;
            Cmd::Bump { txid, fee }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses on a node of the default chain.
    fn parse(line: &str) -> Result<Option<Cmd>, ParseError> {
        super::parse(line, ChainKind::Main)
    }

    #[test]
    fn parses_every_command() {
        let key = Address::of(&crate::testkit::key(1));
        let a = ChainKind::Main.encode(&key);
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
                to: key,
                amount: 5,
                fee: 1
            })
        );
        assert_eq!(
            parse(&format!("send {} 5 0", key.to_hex())).unwrap(),
            Some(Cmd::Send {
                to: key,
                amount: 5,
                fee: 0
            })
        );
        let t = Txid([0xab; 32]);
        assert_eq!(
            parse(&format!("bump {t} 11")).unwrap(),
            Some(Cmd::Bump { txid: t, fee: 11 })
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
        let key = Address::of(&crate::testkit::key(1));
        let a = ChainKind::Main.encode(&key);
        let typo = format!(
            "{}{}",
            &a[..a.len() - 1],
            if a.ends_with('q') { 'p' } else { 'q' }
        );
        let e = parse(&format!("send {typo} 5")).unwrap_err();
        assert!(
            e.message.contains("checksum does not match"),
            "{}",
            e.message
        );
        let e = super::parse(&format!("balance {a}"), ChainKind::Test).unwrap_err();
        assert!(
            e.message.contains("this address is for the default chain"),
            "{}",
            e.message
        );
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
        let e = parse("bump abc 5").unwrap_err();
        assert_eq!(
            (e.message.as_str(), e.usage),
            (
                "bad txid 'abc': expected 64 hex digits (see `mempool`)",
                "bump <txid> <fee>"
            )
        );
        let e = parse(&format!("bump {} x", Txid([1; 32]))).unwrap_err();
        assert_eq!(e.message, "fee must be a whole number, got 'x'");
        assert_eq!(parse("bump").unwrap_err().message, "missing argument");
        let e = parse("status now").unwrap_err();
        assert_eq!(e.message, "unexpected argument 'now'");
    }
}
