//! The commands, typed at a running node's prompt or given to `gossipchain <command>`.
//! Parsing is pure ([`parse`]), so is rendering ([`render`]); running a command ([`execute`])
//! asks a [`Backend`]: the node's handle in this process ([`local`]) or, from the command line,
//! its HTTP API ([`crate::client`]); both answer with the API's views, so both print the same.
//! [`run`] takes the lines the stdin thread ([`stdin`]) reads. Log lines go through
//! [`log_sink`], above the prompt when there is one.

pub mod local;
pub mod log_sink;
mod parse;
pub mod render;
mod stdin;

pub use parse::{Cmd, ParseError, USAGE, parse, remote};

use crate::chain::{Address, ChainId, ChainKind, Txid};
use crate::http::error::ApiError;
use crate::http::views::{
    AccountView, AddressView, BlockSummary, BlockView, DialView, MempoolView, MiningView, PeerView,
    SentView, StatusView, SyncView,
};
use crate::node::{BlockId, NodeHandle};
use libp2p::Multiaddr;

/// Why a command got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The node refused it, or has nothing to show: its error code and message.
    Refused {
        /// The API's error code (snake_case).
        code: String,
        /// What is wrong, for people.
        message: String,
    },
    /// The node has stopped, or cannot be reached.
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused { message, .. } | Failure::Unreachable(message) => {
                f.write_str(message)
            }
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        if e.code == "node_stopped" {
            Failure::Unreachable(e.message)
        } else {
            Failure::Refused {
                code: e.code.to_string(),
                message: e.message,
            }
        }
    }
}

/// What the commands ask of a node: the node's handle in this process ([`local`]), or its
/// HTTP API (`gossipchain <command>`, [`crate::client`]). Both answer with the API's views,
/// which [`render`] turns into text: one renderer for both.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// The node's state.
    async fn status(&self) -> Result<StatusView, Failure>;
    /// Connected peers.
    async fn peers(&self) -> Result<Vec<PeerView>, Failure>;
    /// The newest `n` blocks of the best chain.
    async fn chain(&self, n: usize) -> Result<Vec<BlockSummary>, Failure>;
    /// One block.
    async fn block(&self, id: BlockId) -> Result<BlockView, Failure>;
    /// An account.
    async fn balance(&self, address: Address) -> Result<AccountView, Failure>;
    /// Sends coins from the node's wallet.
    async fn send(&self, to: Address, amount: u64, fee: u64) -> Result<SentView, Failure>;
    /// Replaces the wallet's pending transfer `txid` by the same one paying `fee`.
    async fn bump(&self, txid: Txid, fee: u64) -> Result<SentView, Failure>;
    /// The mempool.
    async fn mempool(&self) -> Result<MempoolView, Failure>;
    /// Mines `n` blocks, handing each to `each` as it is found.
    async fn mine(&self, n: u64, each: &mut dyn FnMut(&BlockSummary)) -> Result<(), Failure>;
    /// Continuous mining on or off.
    async fn set_mining(&self, on: bool) -> Result<MiningView, Failure>;
    /// Connects to a peer.
    async fn dial(&self, addr: &Multiaddr) -> Result<DialView, Failure>;
    /// Asks every peer for its chain.
    async fn sync(&self) -> Result<SyncView, Failure>;
}

/// What a command answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `help`.
    Help,
    /// `quit`: the node should stop.
    Quit,
    /// `status`.
    Status(StatusView),
    /// `peers`.
    Peers(Vec<PeerView>),
    /// `chain`.
    Chain(Vec<BlockSummary>),
    /// `block`.
    Block(BlockView),
    /// `address`.
    Address(AddressView),
    /// `balance`.
    Balance(AccountView),
    /// `send`.
    Sent(SentView),
    /// `bump`: the transfer replaced, the new fee, and the replacement.
    Bumped {
        /// The transfer replaced.
        old: Txid,
        /// The new fee.
        fee: u64,
        /// The replacement.
        new: SentView,
    },
    /// `mempool`.
    Mempool(MempoolView),
    /// `mine n`: that many blocks, each shown as it came.
    Mined(u64),
    /// `mine on|off`.
    Mining(MiningView),
    /// `dial`.
    Dialed(DialView),
    /// `sync`.
    Synced(SyncView),
}

impl Answer {
    /// The text to print (without a final newline; empty: print nothing).
    pub fn text(&self) -> String {
        match self {
            Answer::Help => render::help(),
            Answer::Quit => "bye".into(),
            Answer::Status(s) => render::status(s),
            Answer::Peers(p) => render::peers(p),
            Answer::Chain(c) => render::chain(c),
            Answer::Block(b) => render::block_detail(b),
            Answer::Address(a) => a.address.clone(),
            Answer::Balance(a) => render::balance(a),
            Answer::Sent(s) => format!("sent {}", s.txid),
            Answer::Bumped { old, fee, new } => {
                format!("replaced {old} by {} (fee {fee})", new.txid)
            }
            Answer::Mempool(m) => render::mempool(m),
            Answer::Mined(_) => String::new(),
            Answer::Mining(m) => format!("mining {}", if m.mining { "on" } else { "off" }),
            Answer::Dialed(d) => format!("connected to {}", d.peer_id),
            Answer::Synced(s) => format!("asked {} peers for their chain", s.peers),
        }
    }

    /// The answer as the API's JSON, indented (`None` for `help`, `quit`, and `mine n`, whose
    /// blocks were shown as they came).
    pub fn json(&self) -> Option<String> {
        use serde_json::to_string_pretty as j;
        let v = match self {
            Answer::Help | Answer::Quit | Answer::Mined(_) => return None,
            Answer::Status(s) => j(s),
            Answer::Peers(p) => j(p),
            Answer::Chain(c) => j(c),
            Answer::Block(b) => j(b),
            Answer::Address(a) => j(a),
            Answer::Balance(a) => j(a),
            Answer::Sent(s) | Answer::Bumped { new: s, .. } => j(s),
            Answer::Mempool(m) => j(m),
            Answer::Mining(m) => j(m),
            Answer::Dialed(d) => j(d),
            Answer::Synced(s) => j(s),
        };
        v.ok()
    }
}

/// Runs a command against a node. `mine n` hands each block to `each` as it is found.
pub async fn execute(
    cmd: Cmd,
    node: &impl Backend,
    each: &mut dyn FnMut(&BlockSummary),
) -> Result<Answer, Failure> {
    Ok(match cmd {
        Cmd::Help => Answer::Help,
        Cmd::Quit => Answer::Quit,
        Cmd::Status => Answer::Status(node.status().await?),
        Cmd::Peers => Answer::Peers(node.peers().await?),
        Cmd::Chain(n) => Answer::Chain(node.chain(n).await?),
        Cmd::Block(id) => Answer::Block(node.block(id).await?),
        Cmd::Address => Answer::Address(AddressView {
            address: node.status().await?.address,
        }),
        Cmd::Balance(address) => {
            let address = match address {
                Some(a) => a,
                None => own_address(node).await?,
            };
            Answer::Balance(node.balance(address).await?)
        }
        Cmd::Send { to, amount, fee } => Answer::Sent(node.send(to, amount, fee).await?),
        Cmd::Bump { txid, fee } => Answer::Bumped {
            old: txid,
            fee,
            new: node.bump(txid, fee).await?,
        },
        Cmd::Mempool => Answer::Mempool(node.mempool().await?),
        Cmd::Mine(n) => {
            node.mine(n, each).await?;
            Answer::Mined(n)
        }
        Cmd::MineSwitch(on) => Answer::Mining(node.set_mining(on).await?),
        Cmd::Dial(addr) => Answer::Dialed(node.dial(&addr).await?),
        Cmd::Sync => Answer::Synced(node.sync().await?),
    })
}

/// The node's wallet address.
async fn own_address(node: &impl Backend) -> Result<Address, Failure> {
    let status = node.status().await?;
    let kind = status.address_kind()?;
    kind.parse(&status.address).map_err(|e| Failure::Refused {
        code: "bad_address".into(),
        message: format!(
            "the node's own address '{}' does not parse: {e}",
            status.address
        ),
    })
}

impl StatusView {
    /// The kind of the node's chain (which addresses it takes), from its chain id.
    pub fn address_kind(&self) -> Result<ChainKind, Failure> {
        let id: ChainId = self.chain_id.parse().map_err(|_| Failure::Refused {
            code: "bad_chain_id".into(),
            message: format!("the node's chain id '{}' is not a hash", self.chain_id),
        })?;
        Ok(ChainKind::of(&id))
    }
}

/// Runs the interactive commands until `quit` or end of input. Returns when the node should
/// stop.
pub async fn run(node: NodeHandle) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<stdin::Line>(1);
    stdin::spawn_reader(tx)?;
    while let Some((line, done)) = rx.recv().await {
        let quit = match parse(&line, node.address_kind()) {
            Ok(None) => false,
            Err(e) => {
                println!("{e}");
                false
            }
            Ok(Some(cmd)) => {
                // Printed as each block is found, not after the last.
                let mut each = |b: &BlockSummary| println!("{}", render::mined(b));
                match execute(cmd, &node, &mut each).await {
                    Ok(answer) => {
                        let text = answer.text();
                        if !text.is_empty() {
                            println!("{text}");
                        }
                        answer == Answer::Quit
                    }
                    Err(Failure::Refused { message, .. }) => {
                        println!("error: {message}");
                        false
                    }
                    Err(Failure::Unreachable(_)) => true,
                }
            }
        };
        let _ = done.send(quit);
        if quit {
            break;
        }
    }
    Ok(())
}
