//! Headless chromium driven through chromedriver (WebDriver), for the page tests.
//!
//! Each [`Browser`] runs its own chromedriver on a port the OS picks, in its own process group,
//! with a fresh chromium profile; dropping it kills the whole group (chromedriver and every
//! chromium process it started), even when the test panicked.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Set to 1 where the browser tests must run (CI): a missing browser fails them instead of
/// skipping them.
pub const REQUIRE: &str = "GOSSIPCHAIN_REQUIRE_BROWSER";

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// chromedriver and chromium are installed, or the reason the tests skip. With
/// [`REQUIRE`]=1 a missing browser is a failure.
pub fn available() -> bool {
    let missing: Vec<&str> = ["chromedriver", "chromium"]
        .into_iter()
        .filter(|n| !on_path(n))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "browser tests need {} (Debian: apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    assert!(std::env::var(REQUIRE).as_deref() != Ok("1"), "{why}");
    eprintln!("skipped: {why}");
    false
}

/// The chromedriver process group; killed on drop.
struct Driver {
    child: Child,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver leads its own group (process_group(0)): signal the group, so chromium
        // and its helpers go too.
        let pgid = self.child.id() as i32;
        // SAFETY: killpg only sends a signal to the group this test created.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A headless chromium session.
pub struct Browser {
    pub client: Client,
    driver_url: String,
    session: String,
    shots: PathBuf,
    // Field order: the session's client first, then the driver's processes, then the profile.
    _driver: Driver,
    _profile: TempDir,
}

/// How long any wait on the page may take.
pub const PAGE_DEADLINE: Duration = Duration::from_secs(20);

impl Browser {
    /// Starts chromedriver and a headless chromium session (1400x1000).
    pub async fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let stdout = child.stdout.take().unwrap();
        let driver = Driver { child };
        // chromedriver prints the port it took; keep draining its output afterwards.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(rest.trim_end_matches('.').trim().to_string());
                }
            }
        });
        let port: u16 = rx
            .recv_timeout(PAGE_DEADLINE)
            .expect("chromedriver reports its port")
            .parse()
            .expect("a port number");
        let driver_url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            // Everything the page writes to the console, and every load error.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await
            .expect("chromium session starts");
        let session = client.session_id().await.unwrap().expect("a session id");
        let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            driver_url,
            session,
            shots,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Runs `script` (a function body; `return` a value) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until `pred` holds for its value, for at most `deadline`; returns the
    /// value and when it first held. Panics with `what` and the last value otherwise.
    pub async fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        script: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> (Value, Instant) {
        let end = Instant::now() + deadline;
        loop {
            let v = self.js(script).await;
            if pred(&v) {
                return (v, Instant::now());
            }
            if Instant::now() > end {
                self.screenshot(&format!("failed-{}", what.replace(' ', "-")))
                    .await;
                panic!("timed out after {deadline:?} waiting for {what}; last value: {v}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the element with `id` has text satisfying `pred`; returns it.
    pub async fn wait_text(&self, id: &str, mut pred: impl FnMut(&str) -> bool) -> String {
        let script =
            format!("const e = document.getElementById({id:?}); return e ? e.textContent : '';");
        let (v, _) = self
            .wait_for(&format!("#{id}"), PAGE_DEADLINE, &script, |v| {
                pred(v.as_str().unwrap_or_default())
            })
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Types `text` into the input with `id`, replacing what it held.
    pub async fn fill(&self, id: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"));
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Clicks the element matching the CSS `selector`.
    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Saves a full-window screenshot as target/screenshots/`name`.png.
    pub async fn screenshot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// The browser console's errors since the last call (console.error, uncaught exceptions,
    /// failed loads, CSP violations): chromedriver's log endpoint with level SEVERE.
    pub async fn console_errors(&self) -> Vec<String> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let r: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("a JSON log");
        r["value"]
            .as_array()
            .unwrap_or_else(|| panic!("no browser log: {r}"))
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Asserts the console holds no error.
    pub async fn assert_no_console_errors(&self, page: &str) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "{page}: console errors: {errors:#?}");
    }

    /// Ends the session (the processes go on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}
