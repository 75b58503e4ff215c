//! An HTTP client inside a node's network namespace. The nodes' APIs listen on 127.0.0.1 of
//! their own namespaces, which the host cannot reach; network namespaces are per thread, so a
//! thread of its own enters the namespace (setns) and runs the requests there on a
//! single-threaded runtime, many at once, for callers on any thread.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

/// Deadline of one request: beyond it the node counts as not answering.
pub const REQUEST: Duration = Duration::from_secs(3);

/// What a request got: the status code and the body, or why none came.
pub type Answer = Result<(u16, String), String>;

struct Job {
    path: String,
    body: Option<String>,
    tag: u64,
    reply: mpsc::Sender<(u64, Answer)>,
}

/// The client of one node's API (`http://127.0.0.1:5000` in its namespace). Dropping it ends
/// its thread once the requests under way are answered.
pub struct Http {
    tx: tokio::sync::mpsc::UnboundedSender<Job>,
}

/// Moves the calling thread into network namespace `ns`.
fn enter_netns(ns: &str) -> Result<(), String> {
    let path = format!("/var/run/netns/{ns}\0");
    // SAFETY: open(2) on a NUL-terminated path and setns(2) on the descriptor it returned,
    // which `OwnedFd` then closes.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(format!("open {ns}: {}", std::io::Error::last_os_error()));
        }
        let fd = OwnedFd::from_raw_fd(fd);
        if libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
            return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

impl Http {
    /// A client of the API at 127.0.0.1:`port` in namespace `ns`.
    pub fn new(ns: &str, port: u16) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns = ns.to_string();
        let base = format!("http://127.0.0.1:{port}");
        std::thread::Builder::new()
            .name(format!("http-{ns}"))
            .spawn(move || {
                if let Err(e) = enter_netns(&ns) {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                let client = reqwest::Client::builder()
                    .timeout(REQUEST)
                    .no_proxy()
                    .build()
                    .expect("an HTTP client");
                let _ = ready_tx.send(Ok(()));
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        let (client, base) = (client.clone(), base.clone());
                        tokio::spawn(async move {
                            let url = format!("{base}{}", job.path);
                            let req = match job.body {
                                Some(b) => client
                                    .post(url)
                                    .header("Content-Type", "text/plain")
                                    .body(b),
                                None => client.get(url),
                            };
                            let answer = match req.send().await {
                                Ok(r) => {
                                    let code = r.status().as_u16();
                                    r.text().await.map(|t| (code, t)).map_err(|e| e.to_string())
                                }
                                Err(e) => Err(e.to_string()),
                            };
                            let _ = job.reply.send((job.tag, answer));
                        });
                    }
                });
            })
            .expect("a thread");
        if let Err(e) = ready_rx.recv().expect("the client thread answers") {
            panic!("HTTP client: {e}");
        }
        Self { tx }
    }

    /// Starts a request (a POST of `body` as text/plain if given, else a GET); its answer goes
    /// to `reply` with `tag`.
    pub fn start(
        &self,
        path: &str,
        body: Option<String>,
        tag: u64,
        reply: &mpsc::Sender<(u64, Answer)>,
    ) {
        let job = Job {
            path: path.to_string(),
            body,
            tag,
            reply: reply.clone(),
        };
        if let Err(e) = self.tx.send(job) {
            let _ =
                e.0.reply
                    .send((tag, Err("the client thread has stopped".into())));
        }
    }

    /// GETs every path at once; the answers in order.
    pub fn get_many(&self, paths: &[String]) -> Vec<Answer> {
        let (tx, rx) = mpsc::channel();
        for (i, p) in paths.iter().enumerate() {
            self.start(p, None, i as u64, &tx);
        }
        drop(tx);
        let mut out: Vec<Answer> = (0..paths.len())
            .map(|_| Err("no answer".to_string()))
            .collect();
        for _ in 0..paths.len() {
            match rx.recv_timeout(REQUEST + Duration::from_secs(2)) {
                Ok((i, a)) => out[i as usize] = a,
                Err(_) => break,
            }
        }
        out
    }

    /// One GET.
    pub fn get(&self, path: &str) -> Answer {
        self.get_many(&[path.to_string()]).remove(0)
    }

    /// One GET of JSON with a 200 answer.
    pub fn json(&self, path: &str) -> Result<serde_json::Value, String> {
        let (code, body) = self.get(path)?;
        if code != 200 {
            return Err(format!("GET {path}: {code} {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}"))
    }
}
