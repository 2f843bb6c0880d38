//! The real `latchkey` binary as a child process: CLI runs and `serve` nodes whose log is kept.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// `latchkey` with a clean environment and `database_url`.
pub fn latchkey(database_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LATCHKEY_DATABASE_URL", database_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `latchkey serve` process. Every line it writes (stdout and stderr) is kept.
pub struct Server {
    pub child: tokio::process::Child,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().unwrap().push(line);
        }
    })
}

impl Server {
    /// Start a node on a free port (not yet ready: see [`Server::ready`]).
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Server {
        Server::start_on(database_url, free_port(), env).await
    }

    pub async fn start_on(database_url: &str, port: u16, env: &[(&str, &str)]) -> Server {
        let mut cmd = latchkey(database_url);
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), log.clone()),
            collect(child.stderr.take().unwrap(), log.clone()),
        ];
        Server {
            child,
            port,
            log,
            readers,
        }
    }

    /// Wait until a log line contains `needle`; all lines so far are returned.
    pub async fn wait_for(&self, needle: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if log.iter().any(|l| l.contains(needle)) {
                return log;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never said {needle:?}: {log:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// `kill -9` the process and wait until it is gone and its output is read.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill");
        for reader in self.readers.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}
