//! `gossipchain <command>`: the prompt's commands sent to a running node over its HTTP API,
//! as `bitcoin-cli` does for bitcoind. The commands are the prompt's own: the same table
//! ([`crate::repl::USAGE`]), the same parser, the same [`crate::repl::execute`] and renderer,
//! with [`http::Remote`] as the backend instead of the node's handle.
//!
//! The node is found through its data dir: it records where its API listens in
//! [`crate::http::ADDR_FILE`] and its action token in `.cookie` (bitcoind's cookie auth), both
//! removed when it stops. `--node URL` names another. Exit codes: 0 done, 1 the node refused
//! or could not be reached (one line on stderr), 2 a usage error.

pub mod http;

use crate::chain::ChainKind;
use crate::repl::{self, Answer, Cmd, Failure, USAGE};
use clap::{Arg, ArgMatches, Args, FromArgMatches};
use std::path::{Path, PathBuf};

/// How to reach the node.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The node's data dir: where it records its HTTP address (http.addr) and its token
    /// (.cookie). [default: $XDG_DATA_HOME/gossipchain or ~/.local/share/gossipchain]
    #[arg(long, env = "GOSSIPCHAIN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The node's HTTP API instead, e.g. http://10.0.0.7:5000 (port 5000 if none is given).
    /// Its token is then read from --data-dir only if that is given.
    #[arg(long, env = "GOSSIPCHAIN_NODE")]
    pub node: Option<String>,
    /// The action token (send, mine, dial, sync) [default: the .cookie of the data dir].
    #[arg(long, env = "GOSSIPCHAIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the node's answer as JSON (the HTTP API's) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The client's options when they come before the command (`gossipchain --node URL status`),
/// as `--data-dir` may; explained under each command's `--help`.
#[derive(Args, Debug, Clone, Default)]
pub struct LeadingArgs {
    /// The node's HTTP API (before a command).
    #[arg(long = "node", id = "leading_node", value_name = "URL", hide = true)]
    pub node: Option<String>,
    /// The action token (before a command).
    #[arg(
        long = "token",
        id = "leading_token",
        value_name = "TOKEN",
        hide = true
    )]
    pub token: Option<String>,
    /// JSON output (before a command).
    #[arg(long = "json", id = "leading_json", hide = true)]
    pub json: bool,
}

impl LeadingArgs {
    /// Whether any was given.
    pub fn any(&self) -> bool {
        self.node.is_some() || self.token.is_some() || self.json
    }
}

/// A command for a running node, as typed at its prompt: its name and its words.
#[derive(Debug, Clone)]
pub struct ClientCommand {
    /// The command's name (`status`, `send`, ...).
    pub name: String,
    /// Its arguments.
    pub words: Vec<String>,
    /// How to reach the node.
    pub args: ClientArgs,
}

/// The command names the client takes, in the order of [`USAGE`], each once.
fn names() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (usage, _) in USAGE {
        if let Some(name) = usage.split_whitespace().next()
            && repl::remote(name)
            && !out.contains(&name)
        {
            out.push(name);
        }
    }
    out
}

impl FromArgMatches for ClientCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = matches.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        Ok(Self {
            name: name.to_string(),
            words: sub
                .get_many::<String>("words")
                .map(|w| w.cloned().collect())
                .unwrap_or_default(),
            args: ClientArgs::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Subcommand for ClientCommand {
    /// One subcommand for each of the prompt's commands, from its table: the words go to the
    /// prompt's parser, so that clap holds no second definition of them.
    fn augment_subcommands(mut cmd: clap::Command) -> clap::Command {
        for name in names() {
            let entries: Vec<&(&str, &str)> = USAGE
                .iter()
                .filter(|(u, _)| u.split_whitespace().next() == Some(name))
                .collect();
            let about: Vec<&str> = entries.iter().map(|(_, what)| *what).collect();
            let usage: Vec<String> = entries
                .iter()
                .map(|(u, _)| format!("gossipchain {u} [OPTIONS]"))
                .collect();
            // The arguments' struct would give its own doc as the about: set it after.
            let sub = ClientArgs::augment_args(clap::Command::new(name))
                .about(about.join("; "))
                .override_usage(usage.join("\n       "))
                .arg(
                    Arg::new("words")
                        .value_name("ARGS")
                        .num_args(0..)
                        .allow_negative_numbers(true)
                        .help("The command's arguments, as at the prompt"),
                );
            cmd = cmd.subcommand(sub);
        }
        cmd
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        names().contains(&name)
    }
}

/// A usage error: the command line names no valid command (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The node refused the command, or could not be reached (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NodeError(pub String);

/// Where the node's API is: `[http://]host[:port]`.
fn parse_node(url: &str) -> Result<(String, u16), UsageError> {
    let bad = |why: &str| UsageError(format!("--node '{url}': {why} (e.g. http://10.0.0.7:5000)"));
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(bad(&format!("only plain http is spoken, not {scheme}")));
        }
        None => url,
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(bad("give a host and port, without a path"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) if p.starts_with(':') => (h, Some(&p[1..])),
            _ => return Err(bad("an IPv6 address goes in brackets, [::1]:5000")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse()
            .map_err(|_| bad(&format!("'{p}' is not a port")))?,
        None => crate::http::DEFAULT_PORT,
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_string(), port))
}

/// The address a node of `dir` recorded, as host and port to connect to: an unspecified
/// address (the node listens on every interface) is reached on loopback.
fn recorded(dir: &Path) -> Result<(String, u16), NodeError> {
    let path = dir.join(crate::http::ADDR_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(NodeError(format!(
                "no node is running on the data dir {} (it has no {}; start one with `gossipchain --data-dir {}`, or name one with --node URL)",
                dir.display(),
                crate::http::ADDR_FILE,
                dir.display()
            )));
        }
        Err(e) => return Err(NodeError(format!("cannot read {}: {e}", path.display()))),
    };
    let addr: std::net::SocketAddr = text.trim().parse().map_err(|_| {
        NodeError(format!(
            "{} does not hold an address like 127.0.0.1:5000",
            path.display()
        ))
    })?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    Ok((ip.to_string(), addr.port()))
}

/// Runs a command against the node and prints its answer. `data_dir` and `leading` are the
/// options given before the command (`gossipchain --data-dir D status`), if any.
pub async fn run(
    cmd: ClientCommand,
    data_dir: Option<PathBuf>,
    leading: LeadingArgs,
) -> anyhow::Result<()> {
    let line = std::iter::once(cmd.name.as_str())
        .chain(cmd.words.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    // Addresses are read as the node's kind of chain reads them (PROTOCOL.md §8), which only
    // the node knows: the words are checked first for either kind, so that a usage error needs
    // no node, and a command with an address is read again for the node's kind below.
    let usage =
        |e: repl::ParseError| UsageError(format!("{}\nusage: gossipchain {}", e.message, e.usage));
    let parsed = match repl::parse(&line, ChainKind::Main) {
        Ok(c) => c,
        // Wrong under both kinds: the error that is not about an address's chain, if one is.
        Err(main) => repl::parse(&line, ChainKind::Test).map_err(|test| {
            if main.message.starts_with("bad address") {
                usage(test)
            } else {
                usage(main)
            }
        })?,
    };
    let Some(parsed) = parsed else {
        return Err(UsageError("no command".into()).into());
    };
    // Given before the command, on the command line: those win over the environment's.
    let args = ClientArgs {
        data_dir: cmd.args.data_dir,
        node: leading.node.or(cmd.args.node),
        token: leading.token.or(cmd.args.token),
        json: leading.json || cmd.args.json,
    };
    let given_dir = args.data_dir.or(data_dir);
    let dir = match &given_dir {
        Some(d) => d.clone(),
        None => crate::cli::default_data_dir()?,
    };
    let (host, port) = match &args.node {
        Some(url) => parse_node(url)?,
        None => recorded(&dir)?,
    };
    // With --node, the token of a data dir goes only where it was asked to go: never to a
    // node named by URL just because a local node left its cookie in the default dir.
    let token = match (args.token, &args.node, &given_dir) {
        (Some(t), _, _) => Some(t),
        (None, Some(_), None) => None,
        (None, _, _) => {
            let path = dir.join(crate::http::auth::COOKIE_FILE);
            match std::fs::read_to_string(&path) {
                Ok(t) => Some(t.trim().to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(NodeError(format!(
                        "cannot read the token in {}: {e}",
                        path.display()
                    ))
                    .into());
                }
            }
        }
    };
    let hint = match &args.node {
        Some(_) => "start it, or check --node".to_string(),
        None => format!("start it with `gossipchain --data-dir {}`", dir.display()),
    };
    let mut remote = http::Remote::new(host, port, token, hint);
    let parsed = if matches!(parsed, Cmd::Send { .. } | Cmd::Balance(Some(_))) {
        let kind = repl::Backend::status(&remote)
            .await
            .and_then(|s| s.address_kind())
            .map_err(|f| NodeError(f.to_string()))?;
        remote.kind = Some(kind);
        match repl::parse(&line, kind).map_err(usage)? {
            Some(c) => c,
            None => return Err(UsageError("no command".into()).into()),
        }
    } else {
        parsed
    };
    let json = args.json;
    let mut each = |b: &crate::http::views::BlockSummary| {
        if json {
            out(&serde_json::to_string(b).unwrap_or_default());
        } else {
            out(&repl::render::mined(b));
        }
    };
    let answer = match repl::execute(parsed, &remote, &mut each).await {
        Ok(a) => a,
        Err(Failure::Refused { message, .. } | Failure::Unreachable(message)) => {
            return Err(NodeError(message).into());
        }
    };
    print(&answer, json);
    Ok(())
}

fn print(answer: &Answer, json: bool) {
    let text = if json {
        answer.json().unwrap_or_default()
    } else {
        answer.text()
    };
    if !text.is_empty() {
        out(&text);
    }
}

/// Prints a line; a reader that went away (`| head`) is no error worth a panic.
fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls() {
        assert_eq!(
            parse_node("http://10.0.0.7:5001").unwrap(),
            ("10.0.0.7".into(), 5001)
        );
        assert_eq!(parse_node("node1:5000/").unwrap(), ("node1".into(), 5000));
        assert_eq!(parse_node("localhost").unwrap(), ("localhost".into(), 5000));
        assert_eq!(parse_node("[::1]:7").unwrap(), ("::1".into(), 7));
        assert_eq!(parse_node("http://[::1]").unwrap(), ("::1".into(), 5000));
        for bad in [
            "https://x:1",
            "x:port",
            "",
            "http://x:1/node/status",
            "[::1",
            ":5000",
        ] {
            assert!(parse_node(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_remote_command_of_the_table_is_a_subcommand() {
        assert_eq!(
            names(),
            [
                "status", "peers", "chain", "block", "address", "balance", "send", "bump",
                "mempool", "mine", "dial", "sync"
            ]
        );
    }
}
