//! Database dumps as streams into the repository. At the end of the stream the reader waits
//! for the tool: a nonzero exit or an empty dump unwinds with [`StreamFailed`], which aborts the
//! backup before its index or snapshot is written.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, ChildStderr, ChildStdin, ChildStdout, ExitStatus},
    sync::{Arc, Mutex},
    time::Duration,
};

/// The room asked for the pipe a dump arrives through, or a restore leaves through: Linux's
/// limit for a process without privileges (`/proc/sys/fs/pipe-max-size`), sixteen times its
/// default of 64 KiB.
const PIPE_ROOM: usize = 1 << 20;

/// Enlarges `pipe` to [`PIPE_ROOM`]: its room, or zero when it could not be enlarged (it is
/// then used as it is, unpaced: pausing pays only with the room to go on in the pause).
fn enlarged(pipe: impl std::os::fd::AsFd) -> usize {
    match rustix::pipe::fcntl_setpipe_size(pipe, PIPE_ROOM) {
        Ok(room) if room >= PIPE_ROOM => room,
        _ => 0,
    }
}

/// How long the reader waits after a read found the pipe nearly empty, so that the next read
/// takes many of the tool's writes at once. A dump tool writes 4 KiB at a time (`pg_dump`'s
/// stdio buffer); a reader that went straight back to the pipe slept in each read and was
/// woken by each write, 170 k reads and 130 k context switches for a 719 MB dump, both
/// processes paying for every switch. In this pause the tool writes on without blocking and
/// without waking anyone: [`PIPE_ROOM`] holds 2 ms of a 500 MB/s stream.
const PACE: Duration = Duration::from_micros(500);

/// The pauses a restore's writer makes, from [`PACE`] doubling (64 ms in all), while the pipe
/// has too little room. Each is about as long as the wait so far, so the tool, which freed
/// less than a quarter of the pipe in that wait, cannot empty the three quarters still held
/// in it. After the last the writer writes a quarter and blocks: the tool has stalled or
/// exited (the write then fails).
const WRITE_PAUSES: u32 = 7;

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
        Some(stdin) => feed(&mut PacedStdin::new(stdin)),
        None => Ok(()),
    };
    let status = child.wait()?;
    Ok((fed, status, stderr.finish()))
}

/// A restore tool's stdin, written in large pieces. A tool reads its input 4 KiB at a time
/// (`pg_restore`'s stdio buffer); a writer that kept a pipe full was woken by each of those
/// reads to add 4 KiB, 286 k context switches for a 719 MB dump. Here the pipe is enlarged to
/// [`PIPE_ROOM`] and a write waits, pausing, until a quarter of it is free (or all of what is
/// written fits), so the tool reads on without waking anyone and the writer wakes once per
/// large write.
struct PacedStdin {
    pipe: ChildStdin,
    /// The pipe's room; zero when it could not be enlarged (writes are not paced).
    room: usize,
}

impl PacedStdin {
    fn new(pipe: ChildStdin) -> Self {
        Self {
            room: enlarged(&pipe),
            pipe,
        }
    }

    /// What the pipe has room for now; none when it cannot be asked (a write then blocks
    /// after its pauses).
    fn free(&self) -> usize {
        rustix::io::ioctl_fionread(&self.pipe)
            .ok()
            .and_then(|held| usize::try_from(held).ok())
            .map_or(0, |held| self.room.saturating_sub(held))
    }
}

impl Write for PacedStdin {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room > 0 {
            let enough = buf.len().min(self.room / 4);
            let mut pause = PACE;
            for _ in 0..WRITE_PAUSES {
                let free = self.free();
                if free >= enough {
                    return self.pipe.write(&buf[..buf.len().min(free)]);
                }
                std::thread::sleep(pause);
                pause *= 2;
            }
            return self.pipe.write(&buf[..enough]);
        }
        self.pipe.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.pipe.flush()
    }
}

/// The dump as it streams out of its tool (`pg_dump`, `mariadb-dump`). At the end of the
/// stream it waits for the tool: a nonzero exit or an empty dump unwinds with [`StreamFailed`],
/// which aborts the backup before its index or snapshot is written.
pub(crate) struct DumpReader {
    tool: &'static str,
    child: Child,
    /// Buffered only for [`DumpReader::started`]'s look at the first bytes; once those are
    /// read, reads go straight from the pipe into the caller's buffer.
    stdout: BufReader<ChildStdout>,
    /// A read of the pipe that returns less than this is followed by a pause of [`PACE`]
    /// (zero: never; the pipe could not be enlarged).
    pace_below: usize,
    /// The reads of the pipe so far.
    #[cfg(test)]
    reads: usize,
    stderr: Stderr,
    bytes: u64,
    redact: Option<String>,
    /// Why the dump failed, for the caller: the unwinding payload itself may be replaced by a
    /// thread scope on its way out.
    failure: FailureSlot,
}

/// Where a dump's failure is written, for the caller.
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
            pace_below: enlarged(&stdout) / 4,
            stdout: BufReader::new(stdout),
            #[cfg(test)]
            reads: 0,
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
            let want = buf.len() - n;
            let got = if self.stdout.buffer().is_empty() {
                #[cfg(test)]
                {
                    self.reads += 1;
                }
                self.stdout.get_mut().read(&mut buf[n..])
            } else {
                self.stdout.read(&mut buf[n..])
            };
            match got {
                Ok(0) => break,
                Ok(k) => {
                    n += k;
                    if k < want.min(self.pace_below) {
                        std::thread::sleep(PACE);
                    }
                }
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

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    /// `len` bytes that repeat nowhere near a pipe's room.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4099) as u8).collect()
    }

    /// How a stand-in dump tool writes: 4 KiB at a time, as `pg_dump` does.
    #[derive(Debug, Clone, Copy)]
    enum Writes {
        /// As fast as the pipe takes them (`dd`).
        AtOnce,
        /// After a pause (a tool reading its catalog), one every 10 µs: slower than the reader.
        Steadily,
    }

    /// A dump tool writing `len` bytes of a known pattern; the command and the bytes.
    fn tool(dir: &std::path::Path, len: usize, writes: Writes) -> (Command, Vec<u8>) {
        let data = pattern(len);
        let file = dir.join("dump");
        std::fs::write(&file, &data).expect("the pattern is written");
        let mut cmd;
        match writes {
            Writes::AtOnce => {
                cmd = Command::new("dd");
                cmd.arg(format!("if={}", file.display()))
                    .args(["bs=4096", "status=none"]);
            }
            Writes::Steadily => {
                cmd = Command::new("python3");
                cmd.arg("-c")
                    .arg(
                        "import os, sys, time\n\
                         data = open(sys.argv[1], 'rb').read()\n\
                         time.sleep(0.1)\n\
                         for i in range(0, len(data), 4096):\n\
                        \x20   os.write(1, data[i:i + 4096])\n\
                        \x20   t = time.perf_counter() + 1e-5\n\
                        \x20   while time.perf_counter() < t: pass\n",
                    )
                    .arg(&file);
            }
        }
        (cmd, data)
    }

    /// A restore tool that copies its stdin to `out` 4 KiB at a time, as `pg_restore` reads,
    /// one read every 10 µs: slower than the writer.
    fn steady_reader(out: &std::path::Path) -> Child {
        Command::new("python3")
            .arg("-c")
            .arg(
                "import os, sys, time\n\
                 out = open(sys.argv[1], 'wb')\n\
                 while True:\n\
                \x20   b = os.read(0, 4096)\n\
                \x20   if not b: break\n\
                \x20   out.write(b)\n\
                \x20   t = time.perf_counter() + 1e-5\n\
                \x20   while time.perf_counter() < t: pass\n",
            )
            .arg(out)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3 starts")
    }

    /// This thread's voluntary context switches so far: each time it slept.
    fn switches() -> u64 {
        std::fs::read_to_string("/proc/thread-self/status")
            .expect("the thread's status")
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("a count of switches")
    }

    /// Feeds `data` to `child` in writes of 1 MiB, as a restore does; the feed's result and
    /// this thread's context switches meanwhile.
    fn feed(child: Child, data: &[u8]) -> (crate::Result<()>, ExitStatus, u64) {
        let before = switches();
        let (fed, status, _) = feed_child(child, |stdin| {
            for piece in data.chunks(1 << 20) {
                stdin
                    .write_all(piece)
                    .map_err(crate::Error::io("cannot feed the tool"))?;
            }
            Ok(())
        })
        .expect("the tool is waited for");
        (fed, status, switches() - before)
    }

    #[test]
    fn a_restore_tool_gets_every_byte_in_few_wakeups() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = pattern(8 << 20);
        let out = dir.path().join("out");
        let (fed, status, woken) = feed(steady_reader(&out), &data);
        fed.expect("the feed succeeds");
        assert!(status.success());
        assert!(std::fs::read(&out).expect("the copy") == data);
        // A writer that kept the pipe full was woken by each of the 2048 reads.
        assert!(woken < 2048 / 4, "the writer slept {woken} times");
    }

    /// A tool that stops reading and exits (`pg_restore --exit-on-error`) fails the feed at
    /// once, with the pipe full of what it left.
    #[test]
    fn a_restore_tool_that_exits_early_fails_the_feed() {
        let child = Command::new("head")
            .args(["-c", "100000"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("head starts");
        let (fed, status, _) = feed(child, &pattern(8 << 20));
        assert!(status.success());
        let err = fed.expect_err("the feed fails").to_string();
        assert!(err.contains("Broken pipe"), "{err}");
    }

    /// Starts the tool and reads its dump to the end, as a backup does.
    fn dump(writes: Writes) -> (DumpReader, Vec<u8>, Vec<u8>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (mut cmd, data) = tool(dir.path(), 8 << 20, writes);
        let (mut reader, failure) = DumpReader::spawn("tool", &mut cmd, None)
            .unwrap_or_else(|_| panic!("{writes:?}: the tool starts"));
        reader.started().expect("the tool writes");
        let mut read = Vec::new();
        reader.read_to_end(&mut read).expect("the dump is read");
        assert!(failure.lock().expect("not poisoned").is_none());
        (reader, data, read)
    }

    #[test]
    fn a_dump_arrives_whole_and_in_order_however_the_tool_writes_it() {
        for writes in [Writes::AtOnce, Writes::Steadily] {
            let (_, data, read) = dump(writes);
            assert!(
                read == data,
                "{writes:?}: {} bytes read of {}",
                read.len(),
                data.len()
            );
        }
    }

    /// The reader takes many of a steady tool's writes in each read of the pipe (2048 writes
    /// here), instead of waking for each.
    #[test]
    fn a_steady_dump_is_read_in_few_large_reads() {
        let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if max < PIPE_ROOM {
            eprintln!("skipped: pipes cannot hold {PIPE_ROOM} bytes here (pipe-max-size {max})");
            return;
        }
        let (reader, data, read) = dump(Writes::Steadily);
        assert!(read == data);
        assert_eq!(
            rustix::pipe::fcntl_getpipe_size(reader.stdout.get_ref()).expect("a pipe"),
            PIPE_ROOM
        );
        assert!(
            reader.reads < 2048 / 4,
            "{} reads of the pipe",
            reader.reads
        );
    }
}
