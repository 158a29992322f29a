//! Probe conditions, `FIELD OP VALUE`: `status == 200`, `json.status == "ready"`,
//! `json.workerLagMs < 900000`, `response_time < 500ms`, `cert_days > 14`, `body contains "ok"`.

/// One probe condition, `FIELD OP VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// As written (for messages).
    pub text: String,
    /// What is compared.
    pub field: Field,
    /// How.
    pub op: Op,
    /// With what.
    pub value: Value,
}

/// The left side of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The HTTP status code.
    Status,
    /// The response time (compare with a duration: `500ms`).
    ResponseTime,
    /// The response body as text.
    Body,
    /// Days until the server's TLS certificate expires.
    CertDays,
    /// A field of the JSON body: `json.a.b` (array items by index: `json.items.0`).
    Json(Vec<String>),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains` (text)
    Contains,
}

/// The right side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number (durations are held in milliseconds).
    Number(f64),
    /// A quoted string.
    Text(String),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl Condition {
    /// Parses `FIELD OP VALUE`.
    ///
    /// # Errors
    /// One line naming what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<Self, String> {
        const OPS: [(&str, Op); 7] = [
            (" contains ", Op::Contains),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, token, op) = OPS
            .iter()
            .filter_map(|(t, op)| text.find(t).map(|i| (i, *t, *op)))
            .min_by_key(|(i, t, _)| (*i, std::cmp::Reverse(t.len())))
            .ok_or_else(|| {
                format!("condition `{text}`: no comparison; write FIELD OP VALUE with OP one of == != < <= > >= contains")
            })?;
        let left = text[..at].trim();
        let right = text[at + token.len()..].trim();
        let field = match left {
            "status" => Field::Status,
            "response_time" => Field::ResponseTime,
            "body" => Field::Body,
            "cert_days" => Field::CertDays,
            f if f.starts_with("json.") && f.len() > 5 => {
                Field::Json(f[5..].split('.').map(str::to_string).collect())
            }
            "json" => Field::Json(Vec::new()),
            other => {
                return Err(format!(
                    "condition `{text}`: unknown field {other:?}; use status, response_time, body, cert_days or json.PATH"
                ));
            }
        };
        let value = parse_value(right)
            .ok_or_else(|| format!("condition `{text}`: cannot read the value {right:?}; use a number, a duration (500ms), \"text\", true, false or null"))?;
        let value = match (&field, value) {
            (Field::ResponseTime, Value::Text(t)) => {
                return Err(format!(
                    "condition `{text}`: response_time compares with a duration, not {t:?}"
                ));
            }
            (Field::Body, v) if !matches!(v, Value::Text(_)) => {
                return Err(format!("condition `{text}`: body compares with \"text\""));
            }
            (_, v) => v,
        };
        if op == Op::Contains && !matches!(value, Value::Text(_)) {
            return Err(format!(
                "condition `{text}`: contains needs \"text\" on the right"
            ));
        }
        Ok(Self {
            text: text.trim().to_string(),
            field,
            op,
            value,
        })
    }
}

fn parse_value(s: &str) -> Option<Value> {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return Some(Value::Text(s[1..s.len() - 1].to_string()));
    }
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        _ => {}
    }
    if let Ok(n) = s.parse::<f64>() {
        return Some(Value::Number(n));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let d = humantime::parse_duration(s).ok()?;
        return Some(Value::Number(d.as_secs_f64() * 1000.0));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_bad_ones_say_why() {
        let c = Condition::parse("json.workerLagMs < 900000").expect("parses");
        assert_eq!(c.field, Field::Json(vec!["workerLagMs".into()]));
        assert_eq!(c.op, Op::Lt);
        assert_eq!(c.value, Value::Number(900_000.0));
        let c = Condition::parse("response_time < 500ms").expect("parses");
        assert_eq!(c.value, Value::Number(500.0));
        let c = Condition::parse(r#"json.status == "ready""#).expect("parses");
        assert_eq!(c.value, Value::Text("ready".into()));
        let c = Condition::parse("status <= 299").expect("parses");
        assert_eq!(c.op, Op::Le);
        let c = Condition::parse(r#"body contains "ok""#).expect("parses");
        assert_eq!(c.op, Op::Contains);
        for bad in [
            "status 200",
            "latency < 5",
            "status == ready",
            "response_time < \"x\"",
            "body == 3",
        ] {
            let e = Condition::parse(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }
}
