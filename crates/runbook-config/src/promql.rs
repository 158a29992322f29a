//! Conditions of a `prometheus` probe: a small PromQL subset over an application's own
//! `/metrics`, enough for "5xx responses above 2% of all responses over 5 minutes":
//!
//! ```text
//! increase(http_requests_total{status=~"5.."}[5m]) / increase(http_requests_total[5m]) < 0.02
//! queue_depth{queue="mail"} <= 100
//! ```
//!
//! A term is a selector (the sum of the matching series' current values) or
//! `increase(SELECTOR[DUR])` (how much that sum grew over the window; a drop counts as a counter
//! reset). An optional `/ TERM` divides (by zero: 0, no traffic is no error rate).

use std::time::Duration;

use crate::{monitor::Op, parse_duration};

/// One prometheus condition, `EXPR OP NUMBER`.
#[derive(Debug, Clone)]
pub struct PromCondition {
    /// As written.
    pub text: String,
    /// The numerator.
    pub num: Term,
    /// The denominator, if any.
    pub den: Option<Term>,
    /// The comparison.
    pub op: Op,
    /// The threshold.
    pub value: f64,
}

/// A selector, or its increase over a window.
#[derive(Debug, Clone)]
pub struct Term {
    /// The series summed.
    pub selector: Selector,
    /// `increase(…[window])`.
    pub increase: Option<Duration>,
}

/// `name{label="v", label!="v", label=~"re", label!~"re"}`.
#[derive(Debug, Clone)]
pub struct Selector {
    /// The metric name.
    pub name: String,
    /// Label matchers, all of which must hold.
    pub matchers: Vec<Matcher>,
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub label: String,
    /// `=`, `!=`, `=~`, `!~`.
    pub negate: bool,
    /// Exact value, or an anchored regular expression.
    pub pattern: Pattern,
}

/// What a label is matched against.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `=` / `!=`.
    Exact(String),
    /// `=~` / `!~` (anchored, as in PromQL).
    Regex(regex::Regex),
}

impl Selector {
    /// Whether a series `name` with `labels` matches.
    #[must_use]
    pub fn matches(&self, name: &str, labels: &[(String, String)]) -> bool {
        name == self.name
            && self.matchers.iter().all(|m| {
                let v = labels
                    .iter()
                    .find(|(k, _)| *k == m.label)
                    .map_or("", |(_, v)| v.as_str());
                let hit = match &m.pattern {
                    Pattern::Exact(want) => v == want,
                    Pattern::Regex(re) => re.is_match(v),
                };
                hit != m.negate
            })
    }
}

impl PromCondition {
    /// Parses a prometheus condition.
    ///
    /// # Errors
    /// One line naming what could not be read.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "condition `{text}`: {why}; write e.g. increase(http_requests_total{{status=~\"5..\"}}[5m]) / increase(http_requests_total[5m]) < 0.02"
            )
        };
        // The comparison is the last operator outside braces and quotes.
        let mut depth = 0i32;
        let mut quoted = false;
        let mut at = None;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b'"' => quoted = !quoted,
                b'{' | b'(' | b'[' if !quoted => depth += 1,
                b'}' | b')' | b']' if !quoted => depth -= 1,
                b'<' | b'>' | b'=' | b'!' if !quoted && depth == 0 => {
                    let two = text.get(i..i + 2).unwrap_or("");
                    let (op, len) = match two {
                        "<=" => (Op::Le, 2),
                        ">=" => (Op::Ge, 2),
                        "==" => (Op::Eq, 2),
                        "!=" => (Op::Ne, 2),
                        _ if c == b'<' => (Op::Lt, 1),
                        _ if c == b'>' => (Op::Gt, 1),
                        _ => return Err(bad(format!("unexpected {:?}", c as char))),
                    };
                    at = Some((i, op, len));
                    i += len;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        let (i, op, len) = at.ok_or_else(|| bad("no comparison (< <= > >= == !=)".into()))?;
        let value: f64 = text[i + len..]
            .trim()
            .parse()
            .map_err(|_| bad(format!("{:?} is not a number", text[i + len..].trim())))?;
        let expr = text[..i].trim();
        let (num, den) = match split_top(expr, '/') {
            Some((a, b)) => (a, Some(b)),
            None => (expr, None),
        };
        Ok(Self {
            text: text.trim().to_string(),
            num: term(num).map_err(&bad)?,
            den: den.map(term).transpose().map_err(&bad)?,
            op,
            value,
        })
    }

    /// Every selector the condition reads.
    pub fn selectors(&self) -> impl Iterator<Item = &Term> {
        std::iter::once(&self.num).chain(self.den.as_ref())
    }
}

/// Splits at the first `sep` outside braces, brackets, parentheses and quotes.
fn split_top(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '{' | '(' | '[' if !quoted => depth += 1,
            '}' | ')' | ']' if !quoted => depth -= 1,
            c if c == sep && !quoted && depth == 0 => {
                return Some((s[..i].trim(), s[i + 1..].trim()));
            }
            _ => {}
        }
    }
    None
}

fn term(s: &str) -> Result<Term, String> {
    if let Some(inner) = s
        .strip_prefix("increase(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (sel, window) = inner
            .trim()
            .strip_suffix(']')
            .and_then(|r| r.rsplit_once('['))
            .ok_or_else(|| format!("{s:?}: increase needs a window, increase(NAME[5m])"))?;
        return Ok(Term {
            selector: selector(sel.trim())?,
            increase: Some(parse_duration(window)?),
        });
    }
    Ok(Term {
        selector: selector(s)?,
        increase: None,
    })
}

fn selector(s: &str) -> Result<Selector, String> {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let name = name.trim();
    let ok_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok_name {
        return Err(format!("{name:?} is not a metric name"));
    }
    let mut matchers = Vec::new();
    if let Some(rest) = rest {
        let body = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("{rest:?}: unbalanced braces"))?;
        let mut left = body.trim();
        while !left.is_empty() {
            let (item, after) = match split_top(left, ',') {
                Some((a, b)) => (a, b),
                None => (left, ""),
            };
            matchers.push(matcher(item.trim())?);
            left = after.trim();
        }
    }
    Ok(Selector {
        name: name.to_string(),
        matchers,
    })
}

fn matcher(s: &str) -> Result<Matcher, String> {
    for (op, negate, regex) in [
        ("=~", false, true),
        ("!~", true, true),
        ("!=", true, false),
        ("=", false, false),
    ] {
        if let Some((label, value)) = s.split_once(op) {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("{s:?}: quote the label value"))?;
            let pattern = if regex {
                Pattern::Regex(
                    regex::Regex::new(&format!("^(?:{value})$"))
                        .map_err(|e| format!("{value:?}: {e}"))?,
                )
            } else {
                Pattern::Exact(value.to_string())
            };
            return Ok(Matcher {
                label: label.trim().to_string(),
                negate,
                pattern,
            });
        }
    }
    Err(format!("{s:?}: write label=\"value\" (or != =~ !~)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_5xx_rate_of_the_seeds_parses_and_matches() {
        let c = PromCondition::parse(
            r#"increase(http_requests_total{status=~"5..", route!="/healthz"}[5m]) / increase(http_requests_total[5m]) < 0.02"#,
        )
        .expect("parses");
        assert_eq!(c.op, Op::Lt);
        assert!((c.value - 0.02).abs() < f64::EPSILON);
        assert_eq!(c.num.increase, Some(Duration::from_secs(300)));
        let den = c.den.as_ref().expect("ratio");
        assert!(den.selector.matchers.is_empty());
        let l = |s: &str, r: &str| {
            vec![
                ("status".to_string(), s.to_string()),
                ("route".to_string(), r.to_string()),
            ]
        };
        assert!(
            c.num
                .selector
                .matches("http_requests_total", &l("503", "/api"))
        );
        assert!(
            !c.num
                .selector
                .matches("http_requests_total", &l("200", "/api"))
        );
        assert!(
            !c.num
                .selector
                .matches("http_requests_total", &l("503", "/healthz"))
        );
        assert!(!c.num.selector.matches("other_total", &l("503", "/api")));
        let g = PromCondition::parse(r#"queue_depth{queue="mail"} <= 100"#).expect("gauge");
        assert!(g.num.increase.is_none() && g.den.is_none());
        for bad in ["increase(x) < 1", "x{a=b} < 1", "x < many", "9x < 1", "x"] {
            let e = PromCondition::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }
}
