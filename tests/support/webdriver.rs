//! A headless Chromium driven over the W3C WebDriver protocol by Debian's `chromedriver`
//! (`scripts/deps` installs `chromium` and `chromium-driver`). Only what the dashboard test
//! needs: open a page, run a script, click an element, take a screenshot.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use serde_json::{json, Value};

/// A browser session; dropped, it ends the session and stops chromedriver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// The chromium binary: `BOHAI_CHROMIUM`, else Debian's.
fn chromium_binary() -> String {
    std::env::var("BOHAI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session with a window of
    /// `width` x `height`.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(
            std::env::var("BOHAI_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned()),
        )
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start chromedriver (scripts/deps installs chromium-driver)")?;
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await;
            if let Ok(r) = ready {
                if r.status().is_success() {
                    break;
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromedriver did not answer on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--lang=en-US", format!("--window-size={width},{height}")]
            }
        }}});
        let answer = browser.call("POST", "/session", Some(caps)).await?;
        browser.session = answer["sessionId"]
            .as_str()
            .context("no session id in chromedriver's answer")?
            .to_owned();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let req = match method {
            "POST" => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
            "DELETE" => self.http.delete(&url),
            _ => self.http.get(&url),
        };
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", v["value"]);
        }
        Ok(v.get("value").cloned().unwrap_or(Value::Null))
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{}", self.session, path)
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn eval(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Clicks the first element matching the CSS `selector`.
    pub async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let e = self
            .call(
                "POST",
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await?;
        let id = e
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .context("no element id")?
            .to_owned();
        self.call("POST", &self.at(&format!("/element/{id}/click")), None)
            .await?;
        Ok(())
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let b64 = self.call("GET", &self.at("/screenshot"), None).await?;
        Ok(base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().context("no screenshot")?)?)
    }
}

impl Browser {
    /// Ends the session (closing Chromium) and stops chromedriver.
    pub async fn quit(self) {
        let _ = self.call("DELETE", &self.at(""), None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
