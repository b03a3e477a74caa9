//! Pure parsers for the value grammars Docker's CLI and daemon accept (DOCKER-RULES §2.2 and the
//! "C" rules). Every function takes a `&str` and returns a typed value or Docker's error text, so
//! each one can be a fuzz target. Nothing here panics on any input.
//!
//! This file holds the shared grammars (§2.2: bool, int, size, list, map, paths, CPU counts:
//! CPU-1's `cpus`);
//! the per-flag ones are in the submodules, re-exported here.

pub(crate) mod devices;
pub(crate) mod limits;
pub(crate) mod mounts;
pub(crate) mod network;
pub(crate) mod security;

pub use devices::*;
pub use limits::*;
pub use mounts::*;
pub use network::*;
pub use security::*;

/// Rule ids implemented here (docs/RULES.md is checked against them).
pub(crate) const IDS: &[&str] = &["CPU-1"];

/// Go `strconv.ParseBool` (§2.2 "bool").
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {}: invalid syntax", go_quote(s))),
    }
}

/// Go `strconv.ParseInt(s, 10, 64)` with Go's error texts.
pub fn parse_i64(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s)));
    }
    s.parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing {}: value out of range", go_quote(s)))
}

/// Go's `%q` for the strings we echo back (enough for error messages: escapes `"` and `\`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// go-units `RAMInBytes` (§2.2 "size"): binary multiples, optional `b`/`ib`, case-insensitive.
/// Returns Docker's `invalid size: '%s'` / `invalid suffix: '%s'` texts.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let sep = match s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') {
        Some(i) => i,
        None => return Err(format!("invalid size: '{s}'")),
    };
    let (num, sfx) = if s.as_bytes()[sep] != b' ' {
        (&s[..sep + 1], &s[sep + 1..])
    } else {
        (&s[..sep], &s[sep + 1..])
    };
    let size = parse_go_float(num)?;
    if size < 0.0 {
        return Err(format!("invalid size: '{s}'"));
    }
    if sfx.is_empty() {
        return Ok(float_to_i64(size));
    }
    let bad = || format!("invalid suffix: '{}'", sfx.to_ascii_lowercase());
    if sfx.len() > 3 {
        return Err(format!("invalid suffix: '{sfx}'"));
    }
    let l = sfx.to_ascii_lowercase();
    let b = l.as_bytes();
    if b[0] == b'b' {
        if b.len() > 1 {
            return Err(bad());
        }
        return Ok(float_to_i64(size));
    }
    let mul: f64 = match b[0] {
        b'k' => 1024.0,
        b'm' => 1024f64.powi(2),
        b'g' => 1024f64.powi(3),
        b't' => 1024f64.powi(4),
        b'p' => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &l[1..] != "ib") {
        return Err(bad());
    }
    Ok(float_to_i64(size * mul))
}

fn parse_go_float(s: &str) -> Result<f64, String> {
    // Go ParseFloat accepts more (hex, inf); the size grammar only ever reaches here with digits
    // and dots, so Rust's parser is equivalent for every input that can arrive.
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(s)))
}

fn float_to_i64(f: f64) -> i64 {
    // Go's int64(float) truncates; out-of-range values are clamped instead of being undefined.
    if f >= i64::MAX as f64 {
        i64::MAX
    } else {
        f as i64
    }
}

/// Go `path.Clean` (lexical; keeps a relative path relative).
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|c| *c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go `filepath.Join(a, b)`.
pub fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean_path(b),
        (false, true) => clean_path(a),
        (false, false) => clean_path(&format!("{a}/{b}")),
    }
}

/// Number of separators in the cleaned path (MT-3 sort key).
pub fn path_depth(p: &str) -> usize {
    clean_path(p).matches('/').count()
}

/// cli `ParseCPUs` (CPU-1): a rational number of CPUs → nano-CPUs.
pub fn parse_cpus(value: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {value} as a rational number");
    let (num, den) = parse_rational(value).ok_or_else(bad)?;
    let nano = num.checked_mul(1_000_000_000).ok_or_else(bad)?;
    if den == 0 {
        return Err(bad());
    }
    if nano % den != 0 {
        return Err("value is too precise".to_string());
    }
    i64::try_from(nano / den).map_err(|_| bad())
}

/// `big.Rat.SetString` subset: `a/b`, or a decimal with optional fraction and exponent.
fn parse_rational(s: &str) -> Option<(i128, i128)> {
    if let Some((a, b)) = s.split_once('/') {
        let a: i128 = a.parse().ok()?;
        let b: i128 = b.parse().ok()?;
        if b <= 0 {
            return None;
        }
        return Some((a, b));
    }
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant.strip_prefix('+').unwrap_or(mant)),
    };
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    if (ip.is_empty() && fp.is_empty())
        || !ip.bytes().all(|b| b.is_ascii_digit())
        || !fp.bytes().all(|b| b.is_ascii_digit())
        || ip.len() + fp.len() > 30
        || !(-30..=30).contains(&exp)
    {
        return None;
    }
    let digits = format!("{ip}{fp}");
    let mut num: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let mut den: i128 = 10i128.checked_pow(fp.len() as u32)?;
    if exp >= 0 {
        num = num.checked_mul(10i128.checked_pow(exp as u32)?)?;
    } else {
        den = den.checked_mul(10i128.checked_pow((-exp) as u32)?)?;
    }
    Some((if neg { -num } else { num }, den))
}

/// `parsers.ParseUintList` for cpuset strings (CG-5): `0-3,5`.
pub fn parse_cpuset(val: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("invalid format: {val}");
    let mut out = Vec::new();
    if val.is_empty() {
        return Ok(out);
    }
    for part in val.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.parse().map_err(|_| bad())?;
                let b: u32 = b.parse().map_err(|_| bad())?;
                if b < a || b - a > 65536 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// §2.2 "list": a JSON array of strings, or a single element.
pub fn parse_list(val: &str) -> Result<Vec<String>, String> {
    if val.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<String>>(val)
            .map_err(|e| format!("invalid list (expected a JSON array of strings): {e}"))
    } else {
        Ok(vec![val.to_string()])
    }
}

/// §2.2 "map": a JSON object string→string, or a list of `k=v`.
pub fn parse_map(val: &str) -> Result<Vec<(String, String)>, String> {
    if val.trim_start().starts_with('{') {
        let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(val)
            .map_err(|e| format!("invalid map (expected a JSON object): {e}"))?;
        m.into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!("invalid map value for {}: {other} (expected a string)", go_quote(&k))),
            })
            .collect()
    } else {
        parse_list(val)?
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok((k.to_string(), v.to_string())),
                None => Err(format!("invalid map entry {} (expected k=v)", go_quote(&kv))),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parses_like_go_units() {
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("64m", Ok(67108864)),
            ("64M", Ok(67108864)),
            ("1g", Ok(1 << 30)),
            ("1.5k", Ok(1536)),
            ("10", Ok(10)),
            ("10b", Ok(10)),
            ("2 KiB", Ok(2048)),
            ("2kb", Ok(2048)),
            ("abc", Err("invalid size: 'abc'")),
            ("10x", Err("invalid suffix: 'x'")),
            ("10kx", Err("invalid suffix: 'kx'")),
            ("", Err("invalid size: ''")),
        ];
        for (inp, want) in cases {
            assert_eq!(parse_size(inp), want.map_err(|e| e.to_string()), "{inp}");
        }
    }
    #[test]
    fn cpu_1_parse_cpus() {
        assert_eq!(parse_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("0.0000000001"), Err("value is too precise".to_string()));
        assert_eq!(parse_cpus("abc"), Err("failed to parse abc as a rational number".to_string()));
    }
    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("/a/../b/"), "/b");
        assert_eq!(clean_path("a/../../b"), "../b");
        assert_eq!(join_path("/docker", "abc"), "/docker/abc");
        assert_eq!(join_path("rel/", "x"), "rel/x");
        assert_eq!(path_depth("/a/b/"), 2);
    }
    #[test]
    fn lists_and_maps() {
        assert_eq!(parse_list("[\"a\",\"b,c\"]").unwrap(), vec!["a", "b,c"]);
        assert_eq!(parse_list("one,two").unwrap(), vec!["one,two"]);
        assert!(parse_list("[1]").is_err());
        assert_eq!(parse_map("{\"a\":\"1\"}").unwrap(), vec![("a".to_string(), "1".to_string())]);
        assert_eq!(parse_map("[\"a=1\",\"b=2=3\"]").unwrap()[1], ("b".to_string(), "2=3".to_string()));
        assert!(parse_map("{\"a\":1}").is_err());
        assert_eq!(parse_cpuset("0-2,4").unwrap(), vec![0, 1, 2, 4]);
        assert!(parse_cpuset("2-1").is_err());
    }
}
