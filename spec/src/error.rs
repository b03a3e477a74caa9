//! Error types. Every user-caused error names where the bad value came from (annotation key,
//! config key or spec field) and quotes Docker's own message verbatim after the colon, so that
//! tests and users can match moby's text as a substring (DOCKER-RULES §0.3, §5 "Texts").

/// An error from `fill` or from parsing the daemon configuration.
#[derive(thiserror::Error, Debug)]
pub enum SpecError {
    /// A `io.containerd.dockerish/<key>` annotation is malformed, not allowed, or cannot be honoured.
    #[error("annotation \"{key}\": {msg}")]
    Annotation { key: String, msg: String },
    /// A daemon configuration key (dockerish.toml / daemon.json) is malformed.
    #[error("config \"{key}\": {msg}")]
    Config { key: String, msg: String },
    /// A runtime option the client sent (runc `Options`) cannot be honoured.
    #[error("runc option \"{key}\": {msg}")]
    RuntimeOption { key: String, msg: String },
    /// The incoming config.json itself is malformed (wrong JSON type for an OCI field).
    #[error("config.json field \"{field}\": {msg}")]
    Spec { field: String, msg: String },
    /// A rule failed on producer-written content (e.g. MT-7 on a ctr bind mount); `msg` is Docker's text.
    #[error("{msg}")]
    Rule { rule: &'static str, msg: String },
    /// The host could not answer a question a rule needed.
    #[error("{rule}: {source}")]
    Host {
        rule: &'static str,
        #[source]
        source: HostError,
    },
}

impl SpecError {
    pub(crate) fn annotation(key: impl Into<String>, msg: impl Into<String>) -> Self {
        SpecError::Annotation { key: key.into(), msg: msg.into() }
    }
    pub(crate) fn config(key: impl Into<String>, msg: impl Into<String>) -> Self {
        SpecError::Config { key: key.into(), msg: msg.into() }
    }
    pub(crate) fn spec(field: impl Into<String>, msg: impl Into<String>) -> Self {
        SpecError::Spec { field: field.into(), msg: msg.into() }
    }
}

/// An error from the system side (the `Host` implementation, file writes, config loading).
#[derive(thiserror::Error, Debug)]
pub enum HostError {
    /// A system call on `path` failed; the display carries the path and the errno text, in Go's
    /// form (`lstat /dev/x: no such file or directory`) so Docker's messages stay verbatim.
    #[error("{op} {path}: {}", errno_text(.source))]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Content read from the system could not be understood.
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
    /// A file or request was refused on purpose (escape from the rootfs, path outside the namespace dir).
    #[error("{path}: refused: {msg}")]
    Refused { path: String, msg: String },
    /// Another container holds what this one claims (NAME-1: Docker's text).
    #[error("{0}")]
    Conflict(String),
    /// `container:<prefix>` matched several sibling tasks (Docker's text).
    #[error("multiple IDs found with provided prefix: {0}")]
    AmbiguousPrefix(String),
    /// Reading a configuration file failed (the file is named).
    #[error("config file {path}: {source}")]
    ConfigFile {
        path: String,
        #[source]
        source: Box<SpecError>,
    },
    /// `fill` failed while preparing a bundle.
    #[error(transparent)]
    Spec(Box<SpecError>),
}

impl From<SpecError> for HostError {
    fn from(e: SpecError) -> Self {
        HostError::Spec(Box::new(e))
    }
}

impl HostError {
    /// Helper for `std::io::Error` with the failing operation and path.
    pub fn io(op: &'static str, path: impl Into<String>, source: std::io::Error) -> Self {
        HostError::Io { op, path: path.into(), source }
    }
}

/// Go-style error text for an I/O error: the lower-case strerror without Rust's "(os error N)".
pub fn errno_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match (e.raw_os_error(), s.rfind(" (os error ")) {
        (Some(_), Some(i)) => s[..i].to_string(),
        _ => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => s,
    }
}
