//! A minimal ttrpc client: one unary request at a time over a unix socket.
//!
//! Frame: 10-byte header (length u32 BE, stream id u32 BE, type u8 (1 request, 2 response),
//! flags u8) + payload. Request{service=1, method=2, payload=3, timeout_nano=4};
//! Response{status=1 (google.rpc.Status{code=1, message=2}), payload=2}.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::pb::{decode, Msg};

pub const TASK_V2: &str = "containerd.task.v2.Task";
pub const TASK_V3: &str = "containerd.task.v3.Task";

/// The task service name of task API `version` (2 or 3, as in `BootstrapResult`).
pub fn task_service(version: u32) -> &'static str {
    if version >= 3 {
        TASK_V3
    } else {
        TASK_V2
    }
}

/// A non-OK ttrpc status.
#[derive(Debug, Clone)]
pub struct Status {
    pub code: u64,
    pub message: String,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ttrpc status {}: {}", self.code, self.message)
    }
}

#[derive(Debug)]
pub enum CallError {
    Io(std::io::Error),
    Status(Status),
    Protocol(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Io(e) => write!(f, "io: {e}"),
            CallError::Status(s) => write!(f, "{s}"),
            CallError::Protocol(s) => write!(f, "protocol: {s}"),
        }
    }
}

pub struct Client {
    stream: UnixStream,
    next_id: u32,
}

impl Client {
    /// Connects to `unix:///path` or a plain path.
    pub fn connect(address: &str) -> std::io::Result<Client> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client { stream, next_id: 1 })
    }

    /// Calls `service/method` with an encoded request; returns the encoded response.
    pub fn call(&mut self, service: &str, method: &str, payload: &[u8]) -> Result<Vec<u8>, CallError> {
        let id = self.next_id;
        self.next_id += 2;
        let req = Msg::new()
            .str(1, service)
            .str(2, method)
            .bytes(3, payload)
            .int(4, 20_000_000_000)
            .into_bytes();
        let mut frame = Vec::with_capacity(10 + req.len());
        frame.extend_from_slice(&(req.len() as u32).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.push(1);
        frame.push(0);
        frame.extend_from_slice(&req);
        self.stream.write_all(&frame).map_err(CallError::Io)?;
        loop {
            let mut hdr = [0u8; 10];
            self.stream.read_exact(&mut hdr).map_err(CallError::Io)?;
            let len = u32::from_be_bytes(hdr[0..4].try_into().unwrap()) as usize;
            let sid = u32::from_be_bytes(hdr[4..8].try_into().unwrap());
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).map_err(CallError::Io)?;
            if sid != id || hdr[8] != 2 {
                continue;
            }
            let resp = decode(&body).map_err(CallError::Protocol)?;
            if let Some(st) = resp.msg(1) {
                let code = st.varint(1).unwrap_or(0);
                if code != 0 {
                    return Err(CallError::Status(Status { code, message: st.string(2).unwrap_or_default() }));
                }
            }
            return Ok(resp.bytes(2).unwrap_or_default().to_vec());
        }
    }

    /// `Connect{id}` → (shim_pid, task_pid, version).
    pub fn connect_task(&mut self, service: &str, id: &str) -> Result<(u64, u64, u64), CallError> {
        let out = self.call(service, "Connect", &Msg::new().str(1, id).into_bytes())?;
        let f = decode(&out).map_err(CallError::Protocol)?;
        Ok((f.varint(1).unwrap_or(0), f.varint(2).unwrap_or(0), f.varint(3).unwrap_or(0)))
    }

    /// `Shutdown{id, now}`.
    pub fn shutdown(&mut self, service: &str, id: &str, now: bool) -> Result<(), CallError> {
        self.call(service, "Shutdown", &Msg::new().str(1, id).uint(2, now as u64).into_bytes()).map(|_| ())
    }
}
