//! Errors at the repository boundary: every rustic error (and every panic of its worker
//! threads) becomes one line naming the target and the cause.

use rustic_core::RusticError;

use crate::{Error, Result};

/// How many [`guard`]ed operations are running in this process.
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// True while repository work runs whose panics (from the repository library's worker
/// threads) are caught and reported as one error line: a panic hook stays quiet for them.
pub fn panics_are_reported() -> bool {
    GUARDED.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Runs rustic work that may panic (its restore unwraps read and write errors in worker
/// threads) and turns a panic into an [`Error`] naming the target and the cause.
pub(super) fn guard<T>(
    target: &str,
    action: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    GUARDED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    GUARDED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    caught.unwrap_or_else(|payload| {
        if let Some(failed) = payload.downcast_ref::<crate::dump::StreamFailed>() {
            return Err(Error::Repository {
                target: target.to_string(),
                action,
                message: format!("{} (no snapshot was written)", failed.0),
            });
        }
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        Err(Error::Repository {
            target: target.to_string(),
            action,
            message: panic_cause(text),
        })
    })
}

/// Words in an error that mean the repository's data did not read back intact.
pub(crate) const DAMAGED: &str = "repository data is damaged";

/// The readable part of a panic message: the `guidance` of a `RusticError` it wraps (with its
/// `{placeholders}` filled from the error's context), without the `unwrap` boilerplate or a
/// backtrace.
fn panic_cause(text: &str) -> String {
    let text = text
        .strip_prefix("called `Result::unwrap()` on an `Err` value: ")
        .unwrap_or(text);
    let mut cause = text
        .split_once("guidance: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or(text, |(g, _)| g)
        .to_string();
    for (key, value) in debug_context(text) {
        cause = cause.replace(&format!("{{{key}}}"), &value);
    }
    let hint = if cause.contains("MAC check failed") || cause.contains("decrypt") {
        " (repository data is damaged; the next backup stores it again; `runbook check --read-data 100` shows where)"
    } else {
        ""
    };
    let cause = without_backtrace(&cause);
    let cause: String = cause.split_whitespace().collect::<Vec<_>>().join(" ");
    format!("{}{hint}", cause.chars().take(300).collect::<String>())
}

/// The `("key", "value")` pairs of a `RusticError`'s Debug output.
fn debug_context(text: &str) -> Vec<(String, String)> {
    let Some((_, rest)) = text.split_once("context: [") else {
        return Vec::new();
    };
    let rest = rest.split_once(']').map_or(rest, |(c, _)| c);
    let mut out = Vec::new();
    for pair in rest.split("), (") {
        let pair = pair.trim_matches(['(', ')', ' ']);
        if let Some((k, v)) = pair.split_once("\", \"") {
            out.push((
                k.trim_matches('"').to_string(),
                v.trim_matches('"').to_string(),
            ));
        }
    }
    out
}

/// Everything before a `Backtrace:` section: error lines are one line.
pub(super) fn without_backtrace(text: &str) -> &str {
    text.split_once("Backtrace:").map_or(text, |(head, _)| head)
}

/// Maps a rustic error to ours, naming the target and what was being done.
pub(super) fn rerr(
    target: &str,
    action: &'static str,
) -> impl FnOnce(Box<RusticError>) -> Error + use<> {
    let target = target.to_string();
    move |e| Error::Repository {
        target,
        action,
        message: one_line(&e),
    }
}

/// The error on one line, in words where the storage said why.
pub(super) fn one_line(e: &RusticError) -> String {
    let line = raw_line(e);
    storage_cause(&line).unwrap_or(line)
}

/// The library's own text on one line.
pub(super) fn raw_line(e: &RusticError) -> String {
    let log = e.display_log();
    let log = log.strip_prefix("Error: ").unwrap_or(&log);
    without_backtrace(log)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cause of an object-storage failure in words, when the storage said which it was: the
/// backend's own text holds request and response dumps nobody should have to read.
pub(super) fn storage_cause(line: &str) -> Option<String> {
    let url = line
        .split_once("uri: ")
        .or_else(|| line.split_once("url: "))
        .and_then(|(_, rest)| rest.split([',', ' ']).next())
        .unwrap_or("the storage");
    let code = line
        .split_once("S3Error { code: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(code, _)| code);
    let cause = match code {
        Some("NoSuchBucket") => format!(
            "the bucket does not exist ({url}); create it first, runbook does not create buckets"
        ),
        Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "Forbidden") => {
            format!(
                "the storage refused the credentials ({}: check the access key id and secret, and that the key may use this bucket) at {url}",
                code.unwrap_or_default()
            )
        }
        Some("RequestTimeTooSkewed") => format!(
            "this machine's clock differs too much from the storage's (RequestTimeTooSkewed); fix the clock (NTP) and retry, at {url}"
        ),
        Some("SlowDown" | "ServiceUnavailable") => format!(
            "the storage kept throttling requests ({}) after retries with backoff, at {url}",
            code.unwrap_or_default()
        ),
        Some(other) => format!("the storage answered {other} at {url}"),
        // A HEAD request's refusal has no body, so no code: its status says it.
        None if line.contains("PermissionDenied") || line.contains("status: 403") => format!(
            "the storage refused the credentials (403: check the access key id and secret, and that the key may use this bucket) at {url}"
        ),
        None if line.contains("error sending request") => {
            format!("cannot reach the storage at {url} (connection failed after retries)")
        }
        None => return None,
    };
    Some(cause)
}

pub(super) fn unreachable_none(target: &str) -> Error {
    Error::NoSnapshot {
        target: target.to_string(),
        wanted: "(internal: empty match)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_are_named() {
        let missing = r#"Creating directory `keys/` failed. caused by: ConfigInvalid (persistent) at write, context: { uri: http://127.0.0.1:9333/nope/prod/db/keys/, response: Parts { status: 404 } } => S3Error { code: "NoSuchBucket", message: "The specified bucket does not exist" }"#;
        let cause = storage_cause(missing).expect("named");
        assert!(
            cause.starts_with(
                "the bucket does not exist (http://127.0.0.1:9333/nope/prod/db/keys/)"
            ),
            "{cause}"
        );
        let refused = r#"at stat, context: { url: http://h/b/config } => S3Error { code: "SignatureDoesNotMatch", message: "x" }"#;
        assert!(
            storage_cause(refused)
                .expect("named")
                .contains("refused the credentials")
        );
        let down = "Unexpected (persistent) at stat, context: { url: http://127.0.0.1:9334/x/config, called: reqwest::send } => send http request, source: error sending request for url (http://127.0.0.1:9334/x/config)";
        assert_eq!(
            storage_cause(down).expect("named"),
            "cannot reach the storage at http://127.0.0.1:9334/x/config (connection failed after retries)"
        );
        assert_eq!(storage_cause("Pack abc is damaged"), None);
    }

    #[test]
    fn panic_text_becomes_one_filled_line() {
        let text = "called `Result::unwrap()` on an `Err` value: RusticError { kind: InputOutput, guidance: \"Failed to open the file `{path}`. Please make sure the file exists.\", context: [(\"path\", \"/srv/x.db\")], source: None }\nBacktrace: 0: std::x";
        let line = panic_cause(text);
        assert_eq!(
            line,
            "Failed to open the file `/srv/x.db`. Please make sure the file exists."
        );
        assert_eq!(
            panic_cause("called `Result::unwrap()` on an `Err` value: disk on fire"),
            "disk on fire"
        );
    }
}
