//! `bohai serve` as a child process of the test: real processes, killed, paused and resumed
//! with real signals.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use bohai_hub::config::Config;

/// One `bohai serve` child process, with its own configuration file and log.
#[derive(Debug)]
pub struct ServeProcess {
    /// Its identity among the instances of the hub (`cluster.instance`).
    pub instance: String,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Its configuration file.
    pub config_file: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl ServeProcess {
    /// Starts `bohai serve` for `config` (its `[pki]` master key included) on a free port,
    /// named `instance`.
    pub fn start(config: &Config, instance: &str) -> anyhow::Result<Self> {
        let addr: SocketAddr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut config = config.clone();
        config.http.addr = addr;
        config.cluster.instance = Some(instance.to_owned());
        let dir = tempfile::tempdir()?;
        let config_file = super::write_config_with_master_key(&config, dir.path())?;
        let log = dir.path().join("serve.log");
        let child = super::bohai(&config_file)
            .env("RUST_LOG", "info")
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        Ok(Self {
            instance: instance.to_owned(),
            base_url: format!("http://{addr}"),
            config_file,
            log,
            child: Some(child),
            _dir: dir,
        })
    }

    /// `base_url` joined with `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, `KILL`) to it.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = std::process::Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill -{signal} failed");
        }
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::kill(&mut child);
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        // A paused process must be resumed to die of anything but SIGKILL; SIGKILL it is.
        self.kill();
    }
}
