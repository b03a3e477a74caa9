//! The stdio a request names, validated once into a [`StdioSpec`]: every combination the shim
//! accepts is a variant, everything else is an error naming the field and the value. Nothing
//! later has to handle a combination it does not expect.
//!
//! containerd's forms: a FIFO path (or `fifo://`), `file:///path`, `binary:///path?k=v` (a
//! logging driver that gets both streams), empty (nothing); plus the terminal flag, with which
//! output comes from the pty (stderr is unused, as in the Go shim).

use std::path::PathBuf;

/// The stdio strings of a Create or Exec request, as containerd sent them (kept for State and
/// the TaskCreate event).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {field} {value:?}: {reason}")]
pub struct SpecError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Null,
    Fifo(PathBuf),
    File(PathBuf),
}

/// A `binary://` logging driver (containerd's protocol: fd 3 stdout, fd 4 stderr, fd 5 ready).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logger {
    pub path: PathBuf,
    /// Query parameters, in order: `k=v` → (`k`, `v`), `flag` → (`flag`, "").
    pub args: Vec<(String, String)>,
}

/// Where the process's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A terminal: the pty master's output goes to this sink.
    Terminal(Sink),
    /// Two pipes (one if both name the same FIFO or file).
    Streams { stdout: Sink, stderr: Sink },
    /// Both streams to a logging driver.
    Logger(Logger),
}

/// A validated stdio request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdioSpec {
    /// The stdin FIFO.
    pub stdin: Option<PathBuf>,
    pub output: Output,
    pub paths: StdioPaths,
}

enum Target {
    Sink(Sink),
    Logger(Logger),
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Work on bytes: slicing the str could split a multi-byte character and panic.
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                out.push((h << 4) | l);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn absolute(field: &'static str, value: &str, path: String) -> Result<PathBuf, SpecError> {
    if !path.starts_with('/') {
        return Err(SpecError { field, value: value.to_string(), reason: "the path must be absolute".into() });
    }
    if path.contains('\0') {
        return Err(SpecError { field, value: value.to_string(), reason: "the path contains a NUL byte".into() });
    }
    Ok(PathBuf::from(path))
}

fn parse_target(field: &'static str, s: &str) -> Result<Target, SpecError> {
    if s.is_empty() {
        return Ok(Target::Sink(Sink::Null));
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(Target::Sink(Sink::Fifo(absolute(field, s, s.to_string())?)));
    };
    if !matches!(scheme, "fifo" | "file" | "binary") {
        return Err(SpecError { field, value: s.to_string(), reason: format!("unsupported scheme {scheme:?} (use fifo, file or binary)") });
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = absolute(field, s, percent_decode(path))?;
    match scheme {
        "fifo" => Ok(Target::Sink(Sink::Fifo(path))),
        "binary" => {
            let args = query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect();
            Ok(Target::Logger(Logger { path, args }))
        }
        _ => Ok(Target::Sink(Sink::File(path))),
    }
}

impl StdioSpec {
    /// Validates the stdio of a Create or Exec request.
    pub fn parse(paths: StdioPaths) -> Result<StdioSpec, SpecError> {
        let stdin = match paths.stdin.as_str() {
            "" => None,
            s => Some(absolute("stdin", s, s.strip_prefix("fifo://").unwrap_or(s).to_string())?),
        };
        let stdout = parse_target("stdout", &paths.stdout)?;
        let output = if paths.terminal {
            // The pty has one output; like the Go shim, a stderr given with a terminal is unused.
            match stdout {
                Target::Sink(s) => Output::Terminal(s),
                Target::Logger(_) => {
                    return Err(SpecError { field: "stdout", value: paths.stdout.clone(), reason: "binary:// logging cannot be combined with a terminal".into() })
                }
            }
        } else {
            match (stdout, parse_target("stderr", &paths.stderr)?) {
                (Target::Sink(stdout), Target::Sink(stderr)) => Output::Streams { stdout, stderr },
                (Target::Logger(l), Target::Sink(Sink::Null)) => Output::Logger(l),
                (Target::Logger(l), Target::Logger(_)) if paths.stderr == paths.stdout => Output::Logger(l),
                (Target::Logger(_), _) => {
                    return Err(SpecError {
                        field: "stderr",
                        value: paths.stderr.clone(),
                        reason: format!("stdout names the logging driver {:?}, which gets both streams: leave stderr empty or give the same URI", paths.stdout),
                    })
                }
                (Target::Sink(_), Target::Logger(_)) => {
                    return Err(SpecError {
                        field: "stderr",
                        value: paths.stderr.clone(),
                        reason: "a binary:// logging driver gets both streams and must be named on stdout (stderr empty or the same URI)".into(),
                    })
                }
            }
        };
        Ok(StdioSpec { stdin, output, paths })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> Result<StdioSpec, SpecError> {
        StdioSpec::parse(StdioPaths { stdin: stdin.into(), stdout: stdout.into(), stderr: stderr.into(), terminal })
    }

    #[test]
    fn uris() {
        let s = p("/run/x/in", "/run/x/out", "file:///var/log/a%20b.log", false).unwrap();
        assert_eq!(s.stdin, Some("/run/x/in".into()));
        assert_eq!(s.output, Output::Streams { stdout: Sink::Fifo("/run/x/out".into()), stderr: Sink::File("/var/log/a b.log".into()) });
        let s = p("", "binary:///usr/bin/logger?id=1&flag", "", false).unwrap();
        assert_eq!(s.output, Output::Logger(Logger { path: "/usr/bin/logger".into(), args: vec![("id".into(), "1".into()), ("flag".into(), "".into())] }));
        assert_eq!(p("", "binary:///l", "binary:///l", false).unwrap().output, Output::Logger(Logger { path: "/l".into(), args: vec![] }));
        assert_eq!(p("", "", "", true).unwrap().output, Output::Terminal(Sink::Null));
        assert_eq!(p("", "fifo:///o", "/ignored", true).unwrap().output, Output::Terminal(Sink::Fifo("/o".into())));
        // Multi-byte characters after '%' and a trailing '%' must not panic.
        assert_eq!(percent_decode("/a%é%"), "/a%é%");
        assert_eq!(percent_decode("/x%4"), "/x%4");
    }

    #[test]
    fn combinations_that_are_refused_name_the_field() {
        // Once an `unreachable!` in the shim (issue 10, item 2).
        for (stdout, stderr) in [("", "binary:///bin/true"), ("/run/fifo", "binary:///bin/true"), ("binary:///a", "binary:///b"), ("binary:///a", "/run/fifo")] {
            let e = p("", stdout, stderr, false).unwrap_err();
            assert_eq!((e.field, e.value.as_str()), ("stderr", stderr), "{e}");
        }
        let e = p("", "binary:///l", "", true).unwrap_err();
        assert_eq!(e.field, "stdout");
        let e = p("", "http://x/y", "", false).unwrap_err().to_string();
        assert!(e.contains("http://x/y") && e.contains("stdout") && e.contains("scheme"), "{e}");
        assert_eq!(p("", "", "file://relative", false).unwrap_err().field, "stderr");
        assert_eq!(p("relative", "", "", false).unwrap_err().field, "stdin");
        assert_eq!(p("", "out", "", false).unwrap_err().field, "stdout");
        assert!(p("", "file:///a%00b", "", false).is_err());
    }
}
