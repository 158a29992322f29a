//! Prometheus probes: scrape an application's `/metrics` (the text format), sum the series each
//! condition selects, and judge the conditions against the sums kept over the window they look
//! back over (`increase(…[5m])`).

use std::collections::VecDeque;

use runbook_config::{
    monitor::Op,
    promql::{PromCondition, Selector, Term},
};

/// One series of an exposition.
#[derive(Debug, PartialEq)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the Prometheus text format (and OpenMetrics text): comments skipped, an unreadable
/// line is an error naming it.
pub(crate) fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: cannot read {line:?}", n + 1);
        let (name, labels, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => {
                let (labels, after) = labels(&line[i + 1..]).ok_or_else(bad)?;
                (&line[..i], labels, after)
            }
            Some(i) => (&line[..i], Vec::new(), &line[i..]),
            None => return Err(bad()),
        };
        let value = rest.split_whitespace().next().ok_or_else(bad)?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad())?,
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// `a="x",b="y\"z"}` → the pairs and what follows the closing brace.
fn labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut out = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((out, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_string();
        let mut chars = rest[eq + 1..].trim_start().char_indices();
        if chars.next()?.1 != '"' {
            return None;
        }
        let body = &rest[eq + 1..].trim_start()[1..];
        let mut value = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in body.char_indices() {
            match (escaped, c) {
                (true, 'n') => {
                    value.push('\n');
                    escaped = false;
                }
                (true, c) => {
                    value.push(c);
                    escaped = false;
                }
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, c) => value.push(c),
            }
        }
        out.push((key, value));
        rest = body[end? + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// The sum of the series `sel` selects.
fn sum(samples: &[Sample], sel: &Selector) -> f64 {
    samples
        .iter()
        .filter(|s| sel.matches(&s.name, &s.labels))
        .map(|s| s.value)
        .sum()
}

/// The sums every condition's terms need, in order (numerator, then denominator).
pub(crate) fn sums(samples: &[Sample], conditions: &[PromCondition]) -> Vec<f64> {
    conditions
        .iter()
        .flat_map(|c| c.selectors())
        .map(|t| sum(samples, &t.selector))
        .collect()
}

/// Judges the conditions with the newest sums and the history before them (oldest first, the
/// newest last); Err says which condition failed and its value.
pub(crate) fn judge(
    conditions: &[PromCondition],
    history: &VecDeque<(i64, Vec<f64>)>,
) -> Result<(), String> {
    let Some((now, current)) = history.back() else {
        return Ok(());
    };
    let mut slot = 0;
    for c in conditions {
        let mut value = |t: &Term| {
            let i = slot;
            slot += 1;
            let v = current.get(i).copied().unwrap_or(0.0);
            let Some(window) = t.increase else { return v };
            let from = now - super::probe::ms(window);
            // The last sample at or before the window's start, else the oldest there is.
            let base = history
                .iter()
                .rev()
                .find(|(at, _)| *at <= from)
                .or_else(|| history.front())
                .and_then(|(_, s)| s.get(i).copied())
                .unwrap_or(v);
            if v < base { v } else { v - base } // a drop is a counter reset
        };
        let num = value(&c.num);
        let got = match &c.den {
            None => num,
            Some(d) => {
                let den = value(d);
                if den == 0.0 { 0.0 } else { num / den }
            }
        };
        let holds = match c.op {
            Op::Lt => got < c.value,
            Op::Le => got <= c.value,
            Op::Gt => got > c.value,
            Op::Ge => got >= c.value,
            Op::Eq => (got - c.value).abs() < f64::EPSILON,
            Op::Ne | Op::Contains => (got - c.value).abs() >= f64::EPSILON,
        };
        if !holds {
            return Err(format!(
                "{} failed: got {}",
                c.text,
                (got * 10_000.0).round() / 10_000.0
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{route="/api",status="200"} 980
http_requests_total{route="/api",status="503"} 20
http_requests_total{route="/a\"b",status="500"} 0 1700000000000
queue_depth 3
"#;

    #[test]
    fn the_5xx_ratio_over_a_window_from_scrapes() {
        let samples = parse(TEXT).expect("parses");
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[2].labels[0], ("route".into(), "/a\"b".into()));
        let c = vec![
            PromCondition::parse(
                r#"increase(http_requests_total{status=~"5.."}[5m]) / increase(http_requests_total[5m]) < 0.02"#,
            )
            .expect("c"),
        ];
        assert_eq!(sums(&samples, &c), vec![20.0, 1000.0]);
        let mut h = VecDeque::new();
        h.push_back((0, vec![20.0, 1000.0]));
        judge(&c, &h).expect("no traffic yet is no error rate");
        // 5 minutes later: 50 more 5xx out of 1000 more requests (5%).
        h.push_back((300_000, vec![70.0, 2000.0]));
        let e = judge(&c, &h).expect_err("5% > 2%");
        assert!(e.contains("got 0.05"), "{e}");
        // Another 5 minutes: 10 of 1000 (1%), judged against the sample 5 minutes back.
        h.push_back((600_000, vec![80.0, 3000.0]));
        judge(&c, &h).expect("1%");
        // A restart resets the counters: the new values are the increase.
        h.push_back((900_000, vec![1.0, 100.0]));
        judge(&c, &h).expect("1% after a reset");
        assert!(parse("garbage line here").is_err());
    }
}
