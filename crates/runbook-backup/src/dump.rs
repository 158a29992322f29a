//! Database dumps as streams into the repository. At the end of the stream the reader waits
//! for the tool: a nonzero exit or an empty dump unwinds with [`StreamFailed`], which aborts the
//! backup before its index or snapshot is written.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, ChildStderr, ChildStdout, ExitStatus},
    sync::{Arc, Mutex},
};

/// Why a stream ended badly; carried out of the backup's thread scope by unwinding.
#[derive(Debug)]
pub(crate) struct StreamFailed(pub String);

/// Everything a child writes to stderr, read on a thread so the child never blocks on it.
pub(crate) struct Stderr(Option<std::thread::JoinHandle<String>>);

impl Stderr {
    pub(crate) fn collect(stderr: Option<ChildStderr>) -> Self {
        Self(stderr.map(|mut s| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = s.read_to_string(&mut text);
                text
            })
        }))
    }

    /// Waits for the child's stderr to close and returns what it wrote.
    pub(crate) fn finish(&mut self) -> String {
        self.0
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// Feeds a child's stdin through `feed`, closes it, waits for the child, and returns the feed's
/// result, the exit status and what the child wrote to stderr.
pub(crate) fn feed_child(
    mut child: Child,
    feed: impl FnOnce(&mut dyn Write) -> crate::Result<()>,
) -> std::io::Result<(crate::Result<()>, ExitStatus, String)> {
    let mut stderr = Stderr::collect(child.stderr.take());
    let fed = match child.stdin.take() {
        Some(mut stdin) => feed(&mut stdin),
        None => Ok(()),
    };
    let status = child.wait()?;
    Ok((fed, status, stderr.finish()))
}

/// The dump as it streams out of `pg_dump`. At the end of the stream it waits for the tool:
/// a nonzero exit or an empty dump unwinds with [`StreamFailed`], which aborts the backup before
/// its index or snapshot is written.
pub(crate) struct DumpReader {
    tool: &'static str,
    child: Child,
    /// Buffered: a pipe read is a system call, and returns at most what the pipe holds.
    stdout: BufReader<ChildStdout>,
    stderr: Stderr,
    bytes: u64,
    redact: Option<String>,
    /// Why the dump failed, for the caller: the unwinding payload itself may be replaced by a
    /// thread scope on its way out.
    failure: FailureSlot,
}

/// Where a dump's failure is written, for the caller .
pub(crate) type FailureSlot = Arc<Mutex<Option<String>>>;

/// A dump that could not start: the tool did not spawn (`Err` of spawn), or it has no stdout.
pub(crate) enum SpawnError {
    Spawn(std::io::Error),
    NoStdout,
}

impl DumpReader {
    /// Starts `cmd` (the dump tool `tool`) writing to a pipe; returns the reader and the slot
    /// its failure is written to. `redact` (a password) is replaced in what the tool says.
    pub(crate) fn spawn(
        tool: &'static str,
        cmd: &mut std::process::Command,
        redact: Option<String>,
    ) -> Result<(Self, FailureSlot), SpawnError> {
        use std::process::Stdio;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SpawnError::Spawn)?;
        let stdout = child.stdout.take().ok_or(SpawnError::NoStdout)?;
        let stderr = Stderr::collect(child.stderr.take());
        Ok(Self::new(tool, child, stdout, stderr, redact))
    }

    fn new(
        tool: &'static str,
        child: Child,
        stdout: ChildStdout,
        stderr: Stderr,
        redact: Option<String>,
    ) -> (Self, FailureSlot) {
        let failure = Arc::new(Mutex::new(None));
        let reader = Self {
            tool,
            child,
            stdout: BufReader::with_capacity(1 << 20, stdout),
            stderr,
            bytes: 0,
            redact,
            failure: failure.clone(),
        };
        (reader, failure)
    }

    fn fail(&self, why: String) -> ! {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(why.clone());
        }
        std::panic::resume_unwind(Box::new(StreamFailed(why)))
    }

    /// Waits for the dump's first bytes, which a dump tool writes only once it has connected
    /// (and, for `pg_dump`, read the catalog). A tool that ends without writing any is an
    /// error: what it said, redacted (it could not connect, the database does not exist).
    pub(crate) fn started(&mut self) -> Result<(), String> {
        loop {
            match self.stdout.fill_buf() {
                Ok(b) if !b.is_empty() => return Ok(()),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let why = self
            .ended()
            .unwrap_or_else(|e| format!("{} failed: {e}", self.tool));
        Err(format!("{why} (no snapshot was written)"))
    }

    /// At the end of the stream: waits for the tool and returns why the dump failed (a
    /// nonzero exit, or no output at all), empty when it did not; `Err` only when waiting for
    /// the tool failed.
    fn ended(&mut self) -> std::io::Result<String> {
        let status = self.child.wait()?;
        let mut err = self.stderr.finish().trim().replace('\n', "; ");
        if let Some(p) = self.redact.as_deref().filter(|p| !p.is_empty()) {
            err = err.replace(p, "***");
        }
        Ok(if !status.success() {
            format!("{} failed ({status}): {err}", self.tool)
        } else if self.bytes == 0 {
            format!("{} produced no output", self.tool)
        } else {
            String::new()
        })
    }
}

impl Read for DumpReader {
    /// Fills `buf` whole unless the dump ends, so that a short read means the end.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            match self.stdout.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes += n as u64;
        if n == 0 && !buf.is_empty() {
            let why = self.ended()?;
            if !why.is_empty() {
                self.fail(why);
            }
        }
        Ok(n)
    }
}

impl Drop for DumpReader {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
