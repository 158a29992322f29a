//! `[smoke.NAME]` suites for release promotion: requests against a base URL, each with the
//! probe conditions of `monitor` and values captured from one response for the next
//! (`capture = { token = "json.token" }`, used as `${token}`; `${env.NAME}` reads the
//! environment when the suite runs).

use crate::monitor::Condition;

/// One suite.
#[derive(Debug, Clone)]
pub struct SmokeSuite {
    /// Its name.
    pub name: String,
    /// Its checks, run in order.
    pub checks: Vec<SmokeCheck>,
}

/// One request and what its answer must be.
#[derive(Debug, Clone)]
pub struct SmokeCheck {
    /// Shown in the table and the JUnit report.
    pub name: String,
    /// `GET` unless given.
    pub method: String,
    /// Joined to the base URL (may hold `${…}`).
    pub path: String,
    /// Request headers (values may hold `${…}`).
    pub headers: Vec<(String, String)>,
    /// Request body (may hold `${…}`).
    pub body: Option<String>,
    /// Conditions, as for an http probe; none: a 2xx answer.
    pub expect: Vec<Condition>,
    /// Values to keep for later checks: name → `json.PATH` (or `header.NAME`).
    pub capture: Vec<(String, String)>,
}
