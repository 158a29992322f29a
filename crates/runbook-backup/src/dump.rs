//! Database dumps as streams into the repository. At the end of the stream the reader waits
//! for the tool: a nonzero exit or an empty dump unwinds with [`StreamFailed`], which aborts the
//! backup inside the repository library before its snapshot is written (a plain read error
//! would only make it skip the file and save the snapshot without it).

use std::{
    io::{BufReader, Read},
    process::{Child, ChildStdout},
    sync::{Arc, Mutex},
};

/// Why a stream ended badly; carried out of rustic's worker threads by unwinding.
#[derive(Debug)]
pub(crate) struct StreamFailed(pub String);

pub(crate) fn collect(stderr: Option<std::process::ChildStderr>) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    if let Some(mut s) = stderr {
        let sink = buf.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if let Ok(mut b) = sink.lock() {
                *b = text;
            }
        });
    }
    buf
}

/// The dump as it streams out of `pg_dump`. At the end of the stream it waits for the tool:
/// a nonzero exit or an empty dump unwinds with [`StreamFailed`], which aborts the backup inside
/// the repository library before its snapshot is written (a plain read error would only make
/// it skip the file and save the snapshot without it).
pub(crate) struct DumpReader {
    tool: &'static str,
    child: Child,
    /// Buffered: the chunker reads in small pieces, and a pipe read is a system call.
    stdout: BufReader<ChildStdout>,
    stderr: Arc<Mutex<String>>,
    bytes: u64,
    redact: Option<String>,
    /// Why the dump failed, for the caller: the unwinding payload itself may be replaced by the
    /// repository library's thread scope on its way out.
    failure: Arc<Mutex<Option<String>>>,
}

impl DumpReader {
    /// Wraps a running dump tool; returns the reader and the slot its failure is written to.
    pub(crate) fn new(
        tool: &'static str,
        child: Child,
        stdout: ChildStdout,
        stderr: Arc<Mutex<String>>,
        redact: Option<String>,
    ) -> (Self, Arc<Mutex<Option<String>>>) {
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
}

impl Read for DumpReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.stdout.read(buf)?;
        self.bytes += n as u64;
        if n == 0 {
            let status = self.child.wait()?;
            // Give the stderr reader a moment to finish collecting.
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut err = self
                .stderr
                .lock()
                .map(|s| s.trim().replace('\n', "; "))
                .unwrap_or_default();
            if let Some(p) = self.redact.as_deref().filter(|p| !p.is_empty()) {
                err = err.replace(p, "***");
            }
            if !status.success() {
                self.fail(format!("{} failed ({status}): {err}", self.tool));
            }
            if self.bytes == 0 {
                self.fail(format!("{} produced no output", self.tool));
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
