//! Harness of the end-to-end tests: the workspace's real binaries (`kv-hub`, `kv-runner`) started
//! on 127.0.0.1 with temporary files, the built page (`dist/`), a tiny static server (to check the
//! page works from a plain static host under a sub-path), and headless Chromium driven over
//! WebDriver (chromedriver + fantoccini).
//!
//! `cargo test --workspace` builds every binary before it runs any test; `dist/` comes from
//! `cargo xtask build-web` (which `cargo xtask test` runs first).

use anyhow::{anyhow, bail, Context, Result};
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// This package's directory: cargo's run-time `CARGO_MANIFEST_DIR` (set by `cargo run`, `cargo
/// test`), else the one it was compiled in. With a target directory shared between clones, a binary
/// cargo did not rebuild would otherwise point at the clone it was first built in.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The repository root.
pub fn repo() -> PathBuf {
    manifest_dir().parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The profile directory the running test binary was built into (`<target>/debug`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default()
}

/// A workspace binary built beside this test.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(p.is_file(), "{} is not built; `cargo test --workspace` builds it before running tests", p.display());
    p
}

/// The built page.
pub fn dist() -> PathBuf {
    let d = repo().join("dist");
    assert!(d.join("index.html").is_file(), "dist/ is not built: run `cargo xtask build-web` (`cargo xtask test` does)");
    d
}

/// Where screenshots and timing reports go (CI artefacts): `<repo>/target/e2e`.
pub fn artefacts() -> PathBuf {
    let d = repo().join("target/e2e");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("kv-e2e-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `kv-hub` on 127.0.0.1 with its own database file.
pub struct Hub {
    child: Child,
    pub url: String,
    pub dir: TempDir,
}

impl Hub {
    /// Starts `kv-hub` serving `dist/`, with upload `tokens` (comma separated) and measurements
    /// imported from `import` (an empty folder when `None`).
    pub fn start(tokens: Option<&str>, import: Option<&Path>) -> Result<Hub> {
        let dir = TempDir::new("hub");
        let empty = dir.0.join("no-measurements");
        std::fs::create_dir_all(&empty)?;
        let mut cmd = Command::new(bin("kv-hub"));
        cmd.args(["--addr", "127.0.0.1:0", "--db"])
            .arg(dir.0.join("kv-hub.db"))
            .arg("--dist")
            .arg(dist())
            .arg("--import")
            .arg(import.unwrap_or(&empty))
            .env_remove("KV_HUB_TOKENS")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(t) = tokens {
            cmd.env("KV_HUB_TOKENS", t);
        }
        let mut child = cmd.spawn().context("starting kv-hub")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(l)) = lines.next() {
                if let Some(rest) = l.strip_prefix("kv-hub: serving ") {
                    let url = rest.split_whitespace().next().unwrap_or("").trim_end_matches('/').to_string();
                    let _ = tx.send(url);
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| anyhow!("kv-hub did not print its address within 30 s"))?;
        Ok(Hub { child, url, dir })
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal static file server for `dist/` under a sub-path (what any static host does), or for
/// a folder laid out as the Hugging Face Hub's `<org>/<name>/resolve/main/<file>` (which, like
/// the Hub, lets any origin read it).
pub struct StaticHost {
    pub url: String,
}

impl StaticHost {
    pub fn start(root: PathBuf, prefix: &'static str) -> Result<StaticHost> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut s = stream;
                    let mut buf = [0u8; 8192];
                    let n = s.read(&mut buf).unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let path = req.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
                    let rel = path.strip_prefix(prefix).map(|r| if r.is_empty() || r.ends_with('/') { format!("{r}index.html") } else { r.to_string() });
                    let file = rel.filter(|r| !r.contains("..")).map(|r| root.join(r.trim_start_matches('/')));
                    let (status, body, ctype) = match file.and_then(|f| std::fs::read(&f).ok().map(|b| (f, b))) {
                        Some((f, b)) => {
                            let ct = match f.extension().and_then(|e| e.to_str()) {
                                Some("html") => "text/html; charset=utf-8",
                                Some("js") => "text/javascript",
                                Some("wasm") => "application/wasm",
                                Some("css") => "text/css",
                                Some("json") => "application/json",
                                _ => "application/octet-stream",
                            };
                            ("200 OK", b, ct)
                        }
                        None => ("404 Not Found", b"not found".to_vec(), "text/plain"),
                    };
                    let _ = write!(s, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n", body.len());
                    let _ = s.write_all(&body);
                });
            }
        });
        Ok(StaticHost { url: format!("http://127.0.0.1:{port}{prefix}") })
    }
}

/// Browser tests share two cores: one Chromium at a time.
pub fn one_browser_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Headless Chromium driven through chromedriver.
pub struct Browser {
    pub c: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    pub async fn start() -> Result<Browser> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new("chromedriver").arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting chromedriver (Debian package chromium-driver; `cargo xtask test` installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on {port} within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = TempDir::new("chromium");
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists()).unwrap_or("/usr/bin/chromium");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.0.display())]
            }),
        );
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")).await.context("connecting to chromedriver")?;
        Ok(Browser { c, driver, _profile: profile })
    }

    /// Waits for a CSS selector (20 s).
    pub async fn wait(&self, css: &str) -> Result<fantoccini::elements::Element> {
        self.c.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await.with_context(|| format!("waiting for `{css}`"))
    }

    /// Waits until `js` (a function body returning a boolean) holds.
    pub async fn until(&self, what: &str, js: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.c.execute(js, vec![]).await?.as_bool() == Some(true) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.wait(css).await?.text().await?)
    }

    pub async fn attr(&self, css: &str, name: &str) -> Result<String> {
        self.wait(css).await?.attr(name).await?.ok_or_else(|| anyhow!("`{css}` has no attribute {name}"))
    }

    /// Types into a text field as a user does: select all, type, Tab (the change event fires).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let el = self.wait(css).await?;
        el.click().await?;
        self.c.execute("document.querySelector(arguments[0]).select()", vec![css.into()]).await?;
        el.send_keys(&format!("{text}\u{e004}")).await?;
        Ok(())
    }

    /// Presses and releases one key on whatever has the focus (WebDriver key actions), as a
    /// keyboard does: `'\u{e004}'` is Tab, `'\u{e007}'` Enter.
    pub async fn press(&self, key: char) -> Result<()> {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let a = KeyActions::new("keyboard".into()).then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
        self.c.perform_actions(a).await?;
        Ok(())
    }

    /// Simulates dropping a file on the page (DataTransfer + DragEvent, as a real drop does).
    pub async fn drop_file(&self, name: &str, content: &str) -> Result<()> {
        self.c
            .execute(
                "const [name, text] = arguments; const dt = new DataTransfer(); \
                 dt.items.add(new File([text], name, {type: 'application/json'})); \
                 document.querySelector('main.layout').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));",
                vec![name.into(), content.into()],
            )
            .await?;
        Ok(())
    }

    /// Saves a PNG screenshot under `target/e2e/`.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.c.screenshot().await?;
        let p = artefacts().join(format!("{name}.png"));
        std::fs::write(&p, png)?;
        Ok(p)
    }

    pub async fn close(mut self) -> Result<()> {
        let r = self.c.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        r.map_err(Into::into)
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (the body as text), for checking a service from a test.
pub fn http_get(url: &str) -> Result<String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| anyhow!("{url}: only http:// here"))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let (head, body) = buf.split_once("\r\n\r\n").ok_or_else(|| anyhow!("no HTTP answer from {url}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("{url}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}

/// Runs `kv-runner` with the bundled configs and an unreachable Hub.
pub fn runner(args: &[&str]) -> std::process::Output {
    Command::new(bin("kv-runner"))
        .args(args)
        .env("KV_MODEL_CONFIGS", repo().join("model-configs"))
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap_or_else(|e| panic!("kv-runner: {e}"))
}
