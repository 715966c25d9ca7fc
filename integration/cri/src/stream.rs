//! The client side of the CRI streaming server (containerd's copy of kubelet's
//! `pkg/cri/streaming`). Exec and Attach answer with a URL on that server; a WebSocket to it
//! with the subprotocol `v4.channel.k8s.io` carries the streams, the first byte of each binary
//! message naming the channel: 0 stdin (to the server), 1 stdout, 2 stderr, 3 the status (one
//! JSON `metav1.Status` when the process is done: `Success`, or `Failure` with reason
//! `NonZeroExitCode` and the code as the message of the cause `ExitCode`), 4 terminal resize (to
//! the server, JSON `{"Width":W,"Height":H}`). The server first sends an empty message on the
//! lowest channel it writes (stdout when asked for) to say the streams are open.
//!
//! v4 cannot close stdin alone (the CLOSE signal is v5.channel.k8s.io's, which containerd 1.6's
//! server does not offer): closing the WebSocket is what closes stdin, and with it the other
//! streams, so no status follows it.

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

pub const PROTOCOL: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One Exec or Attach session: what the server sent so far, by channel.
pub struct Session {
    ws: WebSocketStream<TcpStream>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<Value>,
    /// the channel of the first message, and whether it was empty (the "streams open" one)
    pub first: Option<(u8, bool)>,
    ended: bool,
}

impl Session {
    /// Connects to `url` (`http://127.0.0.1:PORT/exec/TOKEN` or `/attach/TOKEN`) and waits for
    /// the server's first message.
    pub async fn open(url: &str) -> Result<Session> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("streaming URL {url:?}: want http:// (TLS streaming is off)"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| anyhow!("streaming URL {url:?} has no path"))?;
        let addr: SocketAddr = authority
            .parse()
            .with_context(|| format!("streaming URL {url:?}: host:port {authority:?}"))?;
        // the test's containerd is configured to serve streams on loopback only
        ensure!(
            addr.ip() == Ipv4Addr::LOCALHOST,
            "streaming server at {addr}, want 127.0.0.1 (stream_server_address)"
        );
        let tcp = timeout(IO_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr}: timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        let mut req = format!("ws://{authority}/{path}").into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
        let (ws, resp) = timeout(IO_TIMEOUT, tokio_tungstenite::client_async(req, tcp))
            .await
            .map_err(|_| anyhow!("WebSocket handshake with {url}: timed out"))?
            .with_context(|| format!("WebSocket handshake with {url}"))?;
        let proto = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ensure!(
            proto == PROTOCOL,
            "the server chose subprotocol {proto:?}, asked for {PROTOCOL}"
        );
        let mut s = Session {
            ws,
            stdout: Vec::new(),
            stderr: Vec::new(),
            status: None,
            first: None,
            ended: false,
        };
        let deadline = Instant::now() + IO_TIMEOUT;
        while s.first.is_none() {
            if !s.read_one(deadline).await? {
                bail!("the server ended the stream before its first message");
            }
        }
        Ok(s)
    }

    async fn send(&mut self, channel: u8, data: &[u8]) -> Result<()> {
        let mut m = Vec::with_capacity(data.len() + 1);
        m.push(channel);
        m.extend_from_slice(data);
        timeout(IO_TIMEOUT, self.ws.send(Message::Binary(m.into())))
            .await
            .map_err(|_| anyhow!("sending on channel {channel}: timed out"))?
            .with_context(|| format!("sending on channel {channel}"))
    }

    pub async fn stdin(&mut self, data: &[u8]) -> Result<()> {
        self.send(STDIN, data).await
    }

    pub async fn resize(&mut self, width: u16, height: u16) -> Result<()> {
        let m = serde_json::json!({"Width": width, "Height": height}).to_string();
        self.send(RESIZE, m.as_bytes()).await
    }

    /// What arrived so far, for error messages.
    pub fn so_far(&self) -> String {
        format!(
            "stdout {:?}, stderr {:?}, status {}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr),
            self.status
                .as_ref()
                .map_or("none".to_string(), |s| s.to_string())
        )
    }

    /// Reads one message into the buffers; false once the server has ended the stream.
    async fn read_one(&mut self, deadline: Instant) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let m = match timeout(left, self.ws.next()).await {
            Err(_) => bail!("timed out waiting for the server; {}", self.so_far()),
            Ok(None)
            | Ok(Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)))
            | Ok(Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))) => {
                self.ended = true;
                return Ok(false);
            }
            Ok(Some(Err(e))) => bail!("WebSocket: {e}; {}", self.so_far()),
            Ok(Some(Ok(m))) => m,
        };
        match m {
            Message::Binary(b) => {
                let Some((&channel, data)) = b.split_first() else {
                    bail!("a binary message without a channel byte");
                };
                if self.first.is_none() {
                    self.first = Some((channel, data.is_empty()));
                }
                match channel {
                    STDOUT => self.stdout.extend_from_slice(data),
                    STDERR => self.stderr.extend_from_slice(data),
                    STATUS if data.is_empty() => {}
                    STATUS => {
                        ensure!(
                            self.status.is_none(),
                            "a second status {:?}",
                            String::from_utf8_lossy(data)
                        );
                        self.status = Some(serde_json::from_slice(data).with_context(|| {
                            format!("status {:?}", String::from_utf8_lossy(data))
                        })?);
                    }
                    other => bail!(
                        "a message on channel {other} ({:?}), which the server does not write",
                        String::from_utf8_lossy(data)
                    ),
                }
            }
            Message::Text(t) => bail!("a text message {t:?} on the binary protocol {PROTOCOL}"),
            Message::Close(_) => {
                self.ended = true;
                return Ok(false);
            }
            _ => {} // ping, pong
        }
        Ok(true)
    }

    /// Reads until `done` holds of what arrived, for at most `secs`.
    pub async fn read_until(
        &mut self,
        secs: u64,
        what: &str,
        done: impl Fn(&Session) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            if !self
                .read_one(deadline)
                .await
                .with_context(|| format!("waiting for {what}"))?
            {
                bail!("the stream ended before {what}; {}", self.so_far());
            }
        }
        Ok(())
    }

    /// Reads until the server ends the stream (after the status), for at most `secs`.
    pub async fn finish(&mut self, secs: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.read_one(deadline).await? {}
        Ok(())
    }

    /// Closes the WebSocket (and so stdin) and waits for the server to end it.
    pub async fn close(mut self) -> Result<()> {
        timeout(IO_TIMEOUT, self.ws.close(None))
            .await
            .map_err(|_| anyhow!("closing the WebSocket: timed out"))?
            .or_else(|e| match e {
                WsError::ConnectionClosed | WsError::AlreadyClosed => Ok(()),
                e => Err(e),
            })
            .context("closing the WebSocket")?;
        let deadline = Instant::now() + IO_TIMEOUT;
        while self.read_one(deadline).await? {}
        Ok(())
    }

    /// The exit code the status channel carried.
    pub fn exit_code(&self) -> Result<i32> {
        let s = self
            .status
            .as_ref()
            .ok_or_else(|| anyhow!("no status arrived; {}", self.so_far()))?;
        exit_code(s)
    }
}

/// The exit code in a v4 status: 0 for `Success`, the `ExitCode` cause of a `NonZeroExitCode`
/// failure; any other status (an internal error) is an error.
pub fn exit_code(s: &Value) -> Result<i32> {
    match (s["status"].as_str(), s["reason"].as_str()) {
        (Some("Success"), _) => Ok(0),
        (Some("Failure"), Some("NonZeroExitCode")) => s["details"]["causes"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["reason"] == "ExitCode"))
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| anyhow!("NonZeroExitCode status without an ExitCode cause: {s}")),
        _ => bail!("status {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::exit_code;
    use serde_json::json;

    #[test]
    fn status_exit_codes() {
        assert_eq!(
            exit_code(&json!({"metadata": {}, "status": "Success"})).unwrap(),
            0
        );
        let failed = json!({"metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [sh], exit code 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
        assert_eq!(exit_code(&failed).unwrap(), 3);
        let internal = json!({"metadata": {}, "status": "Failure", "message": "boom",
            "reason": "InternalError", "code": 500});
        assert!(exit_code(&internal)
            .unwrap_err()
            .to_string()
            .contains("boom"));
        let no_cause = json!({"status": "Failure", "reason": "NonZeroExitCode"});
        assert!(exit_code(&no_cause).is_err());
    }
}
