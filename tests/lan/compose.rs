//! Reads docker-compose.yml (and the Dockerfile's runtime stage) into what the LAN test needs:
//! each service's command, environment and IPv4 address on its network, and the network's
//! subnet. A small parser of the YAML subset the file uses (block maps and lists, flow
//! sequences, quoted and plain scalars, comments, anchors, aliases and `<<` merge keys); it
//! fails loudly on anything else rather than guess.

#![allow(dead_code)]

use std::collections::HashMap;

/// A YAML value of the supported subset.
#[derive(Clone, Debug, PartialEq)]
pub enum Yaml {
    Null,
    Str(String),
    List(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// A map's value for `key`.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(e) => e,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Yaml] {
        match self {
            Yaml::List(l) => l,
            _ => &[],
        }
    }
}

struct Line {
    indent: usize,
    text: String,
    number: usize,
}

/// Cuts a comment: `#` at the start or after a space, outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return &line[..i],
            _ => {}
        }
        prev = c;
    }
    line
}

/// The position of the `:` that ends a map key (followed by a space or the end), outside
/// quotes and brackets.
fn key_colon(text: &str) -> Option<usize> {
    let (mut single, mut double, mut depth) = (false, false, 0i32);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '[' | '{' if !single && !double => depth += 1,
            ']' | '}' if !single && !double => depth -= 1,
            ':' if !single
                && !double
                && depth == 0
                && (i + 1 == bytes.len() || bytes[i + 1] == b' ') =>
            {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Result<String, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(c @ ('"' | '\\' | '/')) => out.push(c),
                    other => return Err(format!("unsupported escape \\{other:?} in {s}")),
                }
            } else {
                out.push(c);
            }
        }
        Ok(out)
    } else if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Ok(inner.replace("''", "'"))
    } else if s.starts_with(['"', '\'', '|', '>', '!', '%', '@', '`']) {
        Err(format!("unsupported scalar {s:?}"))
    } else {
        Ok(s.to_string())
    }
}

/// Splits a flow sequence's inside at top-level commas.
fn split_flow(inner: &str) -> Vec<String> {
    let (mut single, mut double, mut depth) = (false, false, 0i32);
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in inner.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '[' | '{' if !single && !double => depth += 1,
            ']' | '}' if !single && !double => depth -= 1,
            ',' if !single && !double && depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

struct Parser {
    lines: Vec<Line>,
    pos: usize,
    anchors: HashMap<String, Yaml>,
}

impl Parser {
    fn err<T>(&self, msg: &str) -> Result<T, String> {
        let n = self.lines.get(self.pos).map_or(0, |l| l.number);
        Err(format!("docker-compose.yml line {n}: {msg}"))
    }

    /// A value written inline after `key:` or `- `.
    fn inline(&mut self, text: &str, indent: usize) -> Result<Yaml, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix('&') {
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            let v = self.inline(value, indent)?;
            self.anchors.insert(name.to_string(), v.clone());
            return Ok(v);
        }
        if let Some(name) = text.strip_prefix('*') {
            return match self.anchors.get(name.trim()) {
                Some(v) => Ok(v.clone()),
                None => self.err(&format!("unknown alias *{name}")),
            };
        }
        if text.is_empty() {
            // A nested block, or nothing.
            return match self.lines.get(self.pos) {
                Some(l) if l.indent > indent => {
                    let ind = l.indent;
                    self.block(ind)
                }
                // A list may sit at its key's indentation.
                Some(l) if l.indent == indent && l.text.starts_with('-') => self.list(indent),
                _ => Ok(Yaml::Null),
            };
        }
        if let Some(inner) = text.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return self.err("a flow sequence must be on one line");
            };
            let items = split_flow(inner)
                .iter()
                .map(|p| self.inline(p, indent))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Yaml::List(items));
        }
        if text.starts_with('{') {
            return self.err("flow maps are not supported");
        }
        unquote(text).map(Yaml::Str)
    }

    fn block(&mut self, indent: usize) -> Result<Yaml, String> {
        match self.lines.get(self.pos) {
            Some(l) if l.text == "-" || l.text.starts_with("- ") => self.list(indent),
            Some(_) => self.map(indent),
            None => Ok(Yaml::Null),
        }
    }

    fn map(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut entries: Vec<(String, Yaml)> = Vec::new();
        let mut merged: Vec<(String, Yaml)> = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return self.err("unexpected indentation");
            }
            if line.text.starts_with("- ") || line.text == "-" {
                break;
            }
            let text = line.text.clone();
            let Some(colon) = key_colon(&text) else {
                return self.err(&format!("expected `key: value`, got {text:?}"));
            };
            let key = unquote(&text[..colon])?;
            self.pos += 1;
            let value = self.inline(&text[colon + 1..], indent)?;
            if key == "<<" {
                match value {
                    Yaml::Map(m) => merged.extend(m),
                    _ => return self.err("`<<` needs a map"),
                }
            } else if entries.iter().any(|(k, _)| *k == key) {
                return self.err(&format!("duplicate key {key}"));
            } else {
                entries.push((key, value));
            }
        }
        // Keys of the map itself win over merged ones.
        for (k, v) in merged {
            if !entries.iter().any(|(e, _)| *e == k) {
                entries.push((k, v));
            }
        }
        Ok(Yaml::Map(entries))
    }

    fn list(&mut self, indent: usize) -> Result<Yaml, String> {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.pos) {
            if line.indent != indent || !(line.text == "-" || line.text.starts_with("- ")) {
                if line.indent > indent {
                    return self.err("unexpected indentation");
                }
                break;
            }
            let rest = line.text[1..].trim_start().to_string();
            let offset = line.text.len() - rest.len();
            if !rest.is_empty() && key_colon(&rest).is_some() && !rest.starts_with('[') {
                // `- key: value` opens a map whose keys sit after the dash.
                let l = &mut self.lines[self.pos];
                l.indent += offset;
                l.text = rest;
                let ind = l.indent;
                items.push(self.map(ind)?);
            } else {
                self.pos += 1;
                items.push(self.inline(&rest, indent)?);
            }
        }
        Ok(Yaml::List(items))
    }
}

/// Parses the YAML subset.
pub fn parse_yaml(text: &str) -> Result<Yaml, String> {
    let mut lines = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!("line {}: tabs are not supported", i + 1));
        }
        let content = strip_comment(raw).trim_end();
        if content.trim().is_empty() || content == "---" {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        lines.push(Line {
            indent,
            text: content.trim_start().to_string(),
            number: i + 1,
        });
    }
    let mut p = Parser {
        lines,
        pos: 0,
        anchors: HashMap::new(),
    };
    let v = p.block(0)?;
    if p.pos != p.lines.len() {
        return p.err("unparsed content");
    }
    Ok(v)
}

/// A service of the compose file, as the LAN test runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// The container command (arguments after the image's entrypoint).
    pub command: Vec<String>,
    /// Its environment, in file order.
    pub environment: Vec<(String, String)>,
    /// Its network.
    pub network: String,
    /// Its fixed address there, if the file gives one (docker assigns one otherwise).
    pub ipv4_address: Option<String>,
    /// Services it starts after.
    pub depends_on: Vec<String>,
    /// Volume mounts (`name:/path`).
    pub volumes: Vec<String>,
}

/// The parts of docker-compose.yml the LAN test needs.
#[derive(Clone, Debug)]
pub struct Compose {
    pub services: Vec<Service>,
    /// Network name → subnet (CIDR), if the file fixes one.
    pub subnets: Vec<(String, Option<String>)>,
}

fn scalar_list(v: Option<&Yaml>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::List(items)) => items
            .iter()
            .map(|i| {
                i.str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what}: not a list of strings"))
            })
            .collect(),
        Some(Yaml::Str(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(_) => Err(format!("{what}: not a list")),
    }
}

/// Reads the services, their addresses and the subnets.
pub fn parse_compose(text: &str) -> Result<Compose, String> {
    let doc = parse_yaml(text)?;
    let services_y = doc.get("services").ok_or("no services")?;
    let mut services = Vec::new();
    for (name, s) in services_y.entries() {
        let command = scalar_list(s.get("command"), &format!("{name}.command"))?;
        let environment = match s.get("environment") {
            None | Some(Yaml::Null) => Vec::new(),
            Some(Yaml::Map(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Yaml::Str(v) => Ok((k.clone(), v.clone())),
                    Yaml::Null => Ok((k.clone(), String::new())),
                    _ => Err(format!("{name}.environment.{k}: not a scalar")),
                })
                .collect::<Result<_, _>>()?,
            Some(Yaml::List(l)) => l
                .iter()
                .map(|i| {
                    let s = i.str().ok_or(format!("{name}.environment: not strings"))?;
                    let (k, v) = s.split_once('=').unwrap_or((s, ""));
                    Ok((k.to_string(), v.to_string()))
                })
                .collect::<Result<_, String>>()?,
            Some(_) => return Err(format!("{name}.environment: unsupported form")),
        };
        // `networks: [lan]` or `networks: {lan: {ipv4_address: ...}}`.
        let networks = s.get("networks").ok_or(format!("{name}: no networks"))?;
        let (network, ipv4_address) = match networks {
            Yaml::List(items) => match items.as_slice() {
                [Yaml::Str(n)] => (n.clone(), None),
                _ => return Err(format!("{name}: expected exactly one network")),
            },
            Yaml::Map(entries) => match entries.as_slice() {
                [(n, net)] => (
                    n.clone(),
                    net.get("ipv4_address")
                        .and_then(Yaml::str)
                        .map(str::to_string),
                ),
                _ => return Err(format!("{name}: expected exactly one network")),
            },
            _ => return Err(format!("{name}: networks: unsupported form")),
        };
        services.push(Service {
            name: name.clone(),
            command,
            environment,
            network: network.clone(),
            ipv4_address,
            depends_on: scalar_list(s.get("depends_on"), &format!("{name}.depends_on"))?,
            volumes: scalar_list(s.get("volumes"), &format!("{name}.volumes"))?,
        });
    }
    let mut subnets = Vec::new();
    for (name, n) in doc.get("networks").map_or(&[][..], Yaml::entries) {
        let config = n.get("ipam").and_then(|i| i.get("config"));
        let subnet = config
            .map_or(&[][..], Yaml::items)
            .iter()
            .find_map(|c| c.get("subnet").and_then(Yaml::str));
        subnets.push((name.clone(), subnet.map(str::to_string)));
    }
    Ok(Compose { services, subnets })
}

/// The runtime stage of the Dockerfile: its ENTRYPOINT (exec form) and ENV.
#[derive(Clone, Debug, Default)]
pub struct Image {
    pub entrypoint: Vec<String>,
    pub env: Vec<(String, String)>,
}

/// Reads the last stage's `ENTRYPOINT [...]` and `ENV K=V` lines (the forms the file uses).
pub fn parse_dockerfile(text: &str) -> Result<Image, String> {
    let mut image = Image::default();
    for line in text.lines() {
        let line = line.trim();
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word.to_ascii_uppercase().as_str() {
            "FROM" => image = Image::default(),
            "ENTRYPOINT" => {
                let inner = rest
                    .trim()
                    .strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .ok_or("ENTRYPOINT is not in exec form")?;
                image.entrypoint = split_flow(inner)
                    .iter()
                    .map(|p| unquote(p))
                    .collect::<Result<_, _>>()?;
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or(format!("ENV {rest}: only the K=V form is supported"))?;
                    image.env.push((k.to_string(), unquote(v)?));
                }
            }
            _ => {}
        }
    }
    Ok(image)
}

/// The same facts from PyYAML, when python3 has it: one line per service,
/// `name<TAB>address<TAB>command words (\x1f-separated)<TAB>K=V pairs (\x1f-separated)`.
pub fn python_view(path: &std::path::Path) -> Option<Vec<String>> {
    let script = r#"
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for name, s in doc["services"].items():
    nets = s["networks"]
    (addr,) = [""] if isinstance(nets, list) else [(n or {}).get("ipv4_address", "") for n in nets.values()]
    cmd = s.get("command") or []
    if isinstance(cmd, str): cmd = cmd.split()
    env = s.get("environment") or {}
    if isinstance(env, list): env = dict(e.split("=", 1) for e in env)
    print("\t".join([name, addr, "\x1f".join(cmd),
                     "\x1f".join("%s=%s" % (k, v) for k, v in env.items())]))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// [`python_view`]'s format for our parse.
pub fn our_view(c: &Compose) -> Vec<String> {
    c.services
        .iter()
        .map(|s| {
            let env: Vec<String> = s
                .environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            [
                s.name.clone(),
                s.ipv4_address.clone().unwrap_or_default(),
                s.command.join("\x1f"),
                env.join("\x1f"),
            ]
            .join("\t")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_subset() {
        let y = parse_yaml(
            "a: &x\n  k: \"v # not a comment\"  # a comment\n  l: [\"1\", two]\nb:\n  <<: *x\n  k: own\nc:\n- p: 1\n  q: 2\n- plain\n",
        )
        .unwrap();
        assert_eq!(
            y.get("a").unwrap().get("k").unwrap().str(),
            Some("v # not a comment")
        );
        assert_eq!(
            y.get("a").unwrap().get("l").unwrap(),
            &Yaml::List(vec![Yaml::Str("1".into()), Yaml::Str("two".into())])
        );
        assert_eq!(y.get("b").unwrap().get("k").unwrap().str(), Some("own"));
        assert!(y.get("b").unwrap().get("l").is_some());
        let c = y.get("c").unwrap().items();
        assert_eq!(c[0].get("q").unwrap().str(), Some("2"));
        assert_eq!(c[1].str(), Some("plain"));
        assert!(parse_yaml("a: {b: 1}\n").is_err());
        assert!(parse_yaml("a: |\n  x\n").is_err());
    }
}
