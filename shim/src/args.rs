//! Go-style flags, as containerd passes them (`-namespace NS -id ID … start`).

use std::fmt;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    /// `start`, `delete`, `dry-run`, or empty (the daemon itself).
    pub action: String,
    /// Positional arguments after the action (used by `dry-run`).
    pub rest: Vec<String>,
}

#[derive(Debug, PartialEq)]
pub struct FlagError(pub String);

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses flags the way Go's `flag` package does: one or two dashes, `-k v` or `-k=v`,
/// booleans without a value; parsing stops at the first non-flag argument.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Flags, FlagError> {
    let mut f = Flags::default();
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(stripped) = arg.strip_prefix('-') else {
            f.action = arg;
            f.rest = it.collect();
            break;
        };
        if stripped == "-" {
            // "--" ends flags.
            if let Some(a) = it.next() {
                f.action = a;
                f.rest = it.collect();
            }
            break;
        }
        let stripped = stripped.strip_prefix('-').unwrap_or(stripped);
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (stripped, None),
        };
        let boolean = |v: Option<String>| -> Result<bool, FlagError> {
            match v.as_deref() {
                None | Some("true") | Some("1") | Some("t") | Some("T") | Some("TRUE") | Some("True") => Ok(true),
                Some("false") | Some("0") | Some("f") | Some("F") | Some("FALSE") | Some("False") => Ok(false),
                Some(o) => Err(FlagError(format!("invalid boolean value {o:?} for -{name}"))),
            }
        };
        match name {
            "debug" => f.debug = boolean(inline)?,
            "v" | "version" => f.version = boolean(inline)?,
            "info" => f.info = boolean(inline)?,
            "namespace" | "id" | "address" | "publish-binary" | "bundle" | "socket" => {
                let v = match inline {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| FlagError(format!("flag needs an argument: -{name}")))?,
                };
                match name {
                    "namespace" => f.namespace = v,
                    "id" => f.id = v,
                    "address" => f.address = v,
                    "publish-binary" => f.publish_binary = v,
                    "bundle" => f.bundle = v,
                    _ => f.socket = v,
                }
            }
            other => return Err(FlagError(format!("flag provided but not defined: -{other}"))),
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Flags, FlagError> {
        parse(s.split_whitespace().map(String::from))
    }

    #[test]
    fn containerd_start_command_line() {
        let f = p("-namespace default -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id c1 -debug start").unwrap();
        assert_eq!(f.namespace, "default");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action, "start");
    }

    #[test]
    fn delete_with_bundle_and_equals_forms() {
        let f = p("--namespace=k8s.io -id=x -bundle /b delete").unwrap();
        assert_eq!((f.namespace.as_str(), f.id.as_str(), f.bundle.as_str(), f.action.as_str()), ("k8s.io", "x", "/b", "delete"));
    }

    #[test]
    fn version_and_info() {
        assert!(p("-v").unwrap().version);
        assert!(p("-info").unwrap().info);
    }

    #[test]
    fn unknown_flag_and_missing_value_are_errors() {
        assert_eq!(p("-bogus").unwrap_err().0, "flag provided but not defined: -bogus");
        assert_eq!(p("-id").unwrap_err().0, "flag needs an argument: -id");
        assert!(p("-debug=maybe").is_err());
    }

    #[test]
    fn positional_after_action() {
        let f = p("dry-run /some/bundle").unwrap();
        assert_eq!(f.action, "dry-run");
        assert_eq!(f.rest, vec!["/some/bundle".to_string()]);
    }
}
