//! The interactive commands typed at a running node. Parsing is pure ([`parse`]), so is
//! rendering ([`render`]); running a command ([`execute`]) asks the node through its handle and
//! returns the text to print. [`run`] takes the lines the stdin thread ([`stdin`]) reads.
//! Log lines go through [`log_sink`], above the prompt when there is one.

pub mod log_sink;
mod parse;
pub mod render;
mod stdin;

pub use parse::{Cmd, ParseError, USAGE, parse};

use crate::node::{BlockId, NodeHandle, Stopped};

/// What a command printed, and whether the node should stop after it.
pub struct Output {
    /// Text for stdout (without a final newline).
    pub text: String,
    /// `quit` was typed.
    pub quit: bool,
}

/// Runs a command against the node. Errors the node reports become one-line `error:` texts.
pub async fn execute(cmd: Cmd, node: &NodeHandle) -> Result<Output, Stopped> {
    let kind = node.address_kind();
    let text = match cmd {
        Cmd::Help => render::help(),
        Cmd::Status => {
            // The snapshot is published after each step of the node; a round trip first makes
            // it include every command before this one (blocks just mined, `mine off`).
            node.chain(0).await?;
            render::status(&node.status())
                + &format!("\nhttp       {}", node.http_url().unwrap_or("off"))
        }
        Cmd::Peers => render::peers(&node.peers().await),
        Cmd::Chain(n) => render::chain(&node.chain(n).await?),
        Cmd::Block(id) => match node.block(id).await? {
            Some(info) => render::block_detail(&info, kind),
            None => {
                let state = match id {
                    BlockId::Hash(hash) => Some(node.block_state(hash).await?),
                    BlockId::Height(_) => None,
                };
                render::missing_block(id, state)
            }
        },
        Cmd::Address => kind.encode(&node.status().address),
        Cmd::Balance(address) => {
            let address = address.unwrap_or(node.status().address);
            let (account, pending) = node.balance(address).await?;
            render::balance(kind, &address, &account, pending)
        }
        Cmd::Send { to, amount, fee } => match node.send(to, amount, fee).await? {
            Ok(txid) => format!("sent {txid}"),
            Err(e) => format!("error: {e}"),
        },
        Cmd::Bump { txid, fee } => match node.bump(txid, fee).await? {
            Ok(new) => format!("replaced {txid} by {new} (fee {fee})"),
            Err(e) => format!("error: {e}"),
        },
        Cmd::Mempool => render::mempool(kind, &node.mempool().await?),
        Cmd::Mine(n) => {
            let mut lines = Vec::new();
            let mut blocks = node.mine(n).await?;
            for _ in 0..n {
                match blocks.recv().await.ok_or(Stopped)? {
                    // Printed as each block is found, not after the last.
                    Ok(info) => println!("mined {}", render::block_line(&info)),
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

/// Runs the interactive commands until `quit` or end of input. Returns when the node should
/// stop.
pub async fn run(node: NodeHandle) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<stdin::Line>(1);
    stdin::spawn_reader(tx)?;
    let kind = node.address_kind();
    while let Some((line, done)) = rx.recv().await {
        let quit = match parse(&line, kind) {
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
