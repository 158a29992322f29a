//! The expiry of a peer's TLS certificate, read from its DER bytes.

/// The `notAfter` of a DER certificate, as Unix seconds: Certificate → tbsCertificate →
/// (version) serial, signature, issuer, validity → notAfter.
pub(super) fn not_after(der: &[u8]) -> Option<i64> {
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = b.split_first()?;
        let (&len0, rest) = rest.split_first()?;
        let (len, rest) = if len0 < 0x80 {
            (usize::from(len0), rest)
        } else {
            let n = usize::from(len0 & 0x7f);
            if n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, &x| (a << 8) | usize::from(x));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
    }
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r; // explicit version
    }
    for _ in 0..3 {
        rest = tlv(rest)?.2; // serial, signature, issuer
    }
    let (_, validity, _) = tlv(rest)?;
    let (_, _, after) = tlv(validity)?;
    let (tag, time, _) = tlv(after)?;
    let text = std::str::from_utf8(time).ok()?;
    let full = match tag {
        0x17 => {
            // UTCTime YYMMDDHHMMSSZ
            let yy: i32 = text.get(..2)?.parse().ok()?;
            format!(
                "{}{}",
                if yy < 50 { 2000 + yy } else { 1900 + yy },
                text.get(2..)?
            )
        }
        0x18 => text.to_string(),
        _ => return None,
    };
    let f = |a: usize, b: usize| full.get(a..b);
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        f(0, 4)?,
        f(4, 6)?,
        f(6, 8)?,
        f(8, 10)?,
        f(10, 12)?,
        f(12, 14)?
    );
    iso.parse::<jiff::Timestamp>()
        .ok()
        .map(jiff::Timestamp::as_second)
}
