//! logrus-style lines on stderr. In the daemon stderr is the bundle's `log` FIFO, which
//! containerd copies into its own log; `start`/`delete` keep stderr quiet (containerd reads
//! `start`'s combined output as the address).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct StderrLogger {
    level: log::LevelFilter,
    id: String,
    namespace: String,
}

pub fn init(debug: bool, id: &str, namespace: &str) {
    let level = if debug { log::LevelFilter::Debug } else { log::LevelFilter::Info };
    let logger = StderrLogger { level, id: id.to_string(), namespace: namespace.to_string() };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

fn rfc3339_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = match r.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        let msg = r.args().to_string().replace('\\', "\\\\").replace('"', "\\\"");
        let line = format!(
            "time=\"{}\" level={level} msg=\"{msg}\" id={} namespace={} runtime=io.containerd.dockerish.v2\n",
            rfc3339_now(),
            self.id,
            self.namespace
        );
        // EPIPE while containerd restarts must not kill the shim: ignore write errors.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}
