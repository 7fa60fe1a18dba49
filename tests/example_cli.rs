//! SPEC §16 U3: the examples share one command-line convention (`--port N`, `--loops N`,
//! `--help`, from `examples/common/args.rs`). Each example is run as a real process and
//! only what a user sees is checked: `--help` (or `-h`) prints the usage line and a line
//! for every option on stdout and exits 0; every bad command line — a value that does
//! not parse, an unknown option, a missing value, a stray argument — exits with code 2,
//! prints nothing on stdout, and on stderr prints `error: …` naming the argument (and
//! the value, where there is one) followed by the usage line.
//!
//! That a good command line still runs is pinned where each example is exercised:
//! `echo_server --port 0` in `example_echo_server.rs`, `http_server` and `http_client`
//! in `http_external.rs`, `chat --demo` below.
//!
//! The examples are built with `cargo build --example …` (a no-op when `cargo test`
//! already built them), like the other example tests.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use common::example::{ExampleProcess, build_example};

/// A hang guard only: every run here ends by itself.
const GUARD: Duration = Duration::from_secs(30);

/// An example and the usage line it prints.
struct Example {
    name: &'static str,
    features: Option<&'static str>,
    usage: &'static str,
}

const ECHO_SERVER: Example = Example {
    name: "echo_server",
    features: None,
    usage: "usage: echo_server [--port N] [--loops N] [--grace-secs S] [--help]",
};
const CHAT: Example = Example {
    name: "chat",
    features: None,
    usage: "usage: chat [--port N] [--demo] [--help]",
};
const TOUR: Example = Example {
    name: "tour",
    features: None,
    usage: "usage: tour [--help]",
};
#[cfg(feature = "hyper")]
const HTTP_SERVER: Example = Example {
    name: "http_server",
    features: Some("hyper"),
    usage: "usage: http_server [--port N] [--loops N] [--header-timeout-ms MS] [--grace-secs S] \
            [--tls-cert FILE] [--tls-key FILE] [--help]",
};
#[cfg(feature = "hyper")]
const HTTP_CLIENT: Example = Example {
    name: "http_client",
    features: Some("hyper"),
    usage: "usage: http_client [--http2] [--cacert FILE] [--help] [URL...]",
};

/// Every example (the HTTP ones need the `hyper` feature).
fn all() -> Vec<&'static Example> {
    vec![
        &ECHO_SERVER,
        &CHAT,
        &TOUR,
        #[cfg(feature = "hyper")]
        &HTTP_SERVER,
        #[cfg(feature = "hyper")]
        &HTTP_CLIENT,
    ]
}

/// The examples that listen on a port, and so take `--port N`.
fn servers() -> Vec<&'static Example> {
    vec![
        &ECHO_SERVER,
        &CHAT,
        #[cfg(feature = "hyper")]
        &HTTP_SERVER,
    ]
}

/// What a user sees of one run: the exit code and the lines on stdout and stderr.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: Vec<String>,
}

impl Example {
    fn binary(&self) -> PathBuf {
        static BUILT: OnceLock<std::sync::Mutex<Vec<(&str, PathBuf)>>> = OnceLock::new();
        let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
        if let Some((_, path)) = built.iter().find(|(name, _)| *name == self.name) {
            return path.clone();
        }
        let path = build_example(self.name, self.features);
        built.push((self.name, path.clone()));
        path
    }

    fn run(&self, args: &[&str]) -> Run {
        let (status, stdout, stderr) = ExampleProcess::start(&self.binary(), args, GUARD).finish();
        Run {
            code: status.code(),
            stdout,
            stderr,
        }
    }

    /// Runs with `args` and checks the exit-2 path: nothing on stdout, `error` on the
    /// first stderr line, the usage line on the second.
    fn rejects(&self, args: &[&str], error: &str) {
        let run = self.run(args);
        let what = format!("{} {args:?}: {run:?}", self.name);
        assert_eq!(run.code, Some(2), "{what}");
        assert!(run.stdout.is_empty(), "{what}");
        assert_eq!(
            run.stderr,
            [format!("error: {error}"), self.usage.into()],
            "{what}"
        );
    }
}

/// `--help` and `-h` print the usage line, then a line for each option it names
/// (`  --port N  the port …`) and for `--help`, on stdout; exit code 0, nothing on
/// stderr.
#[test]
fn help_prints_the_usage_and_every_option_and_exits_0() {
    for example in all() {
        for flag in ["--help", "-h"] {
            let run = example.run(&[flag]);
            let what = format!("{} {flag}: {run:?}", example.name);
            assert_eq!(run.code, Some(0), "{what}");
            assert!(run.stderr.is_empty(), "{what}");
            assert!(run.stdout.iter().any(|l| l == example.usage), "{what}");
            // Every `[--name VALUE]` of the usage line has its help line.
            let entries = example.usage.split('[').skip(1);
            for entry in entries.map(|e| e.trim_end().trim_end_matches(']')) {
                let described = run.stdout.iter().any(|line| {
                    line.strip_prefix("  ")
                        .and_then(|l| l.strip_prefix(entry))
                        .is_some_and(|help| help.trim().len() > 3)
                });
                assert!(described, "no help line for {entry:?}: {what}");
            }
        }
    }
}

/// A value that does not parse exits 2 naming the option and the value, in both forms
/// (`--port x`, `--port=x`); so does one out of range, and `--loops 0` (at least one
/// loop is needed).
#[test]
fn a_bad_value_exits_2_naming_the_option_and_the_value() {
    for example in servers() {
        let error = "invalid value 'x' for --port: invalid digit found in string";
        example.rejects(&["--port", "x"], error);
        example.rejects(&["--port=x"], error);
        example.rejects(
            &["--port", "70000"],
            "invalid value '70000' for --port: number too large to fit in target type",
        );
    }
    let loop_servers = [
        &ECHO_SERVER,
        #[cfg(feature = "hyper")]
        &HTTP_SERVER,
    ];
    for example in loop_servers {
        example.rejects(
            &["--loops", "0"],
            "invalid value '0' for --loops: at least 1 is needed",
        );
        example.rejects(
            &["--grace-secs", "-1"],
            "invalid value '-1' for --grace-secs: invalid digit found in string",
        );
    }
    #[cfg(feature = "hyper")]
    {
        HTTP_SERVER.rejects(
            &["--header-timeout-ms=1.5"],
            "invalid value '1.5' for --header-timeout-ms: invalid digit found in string",
        );
        HTTP_CLIENT.rejects(
            &["http://[::1"],
            "invalid value 'http://[::1' for URL: invalid authority",
        );
    }
}

/// An option the example does not have exits 2 naming it — `--port` too, for the
/// examples that listen on no port.
#[test]
fn an_unknown_option_exits_2_naming_it() {
    for example in all() {
        example.rejects(&["--bogus"], "unknown option '--bogus'");
        example.rejects(&["--bogus=1"], "unknown option '--bogus'");
        example.rejects(&["-x"], "unknown option '-x'");
    }
    TOUR.rejects(&["--port", "x"], "unknown option '--port'");
    #[cfg(feature = "hyper")]
    HTTP_CLIENT.rejects(&["--port", "x"], "unknown option '--port'");
}

/// An option whose value is missing — at the end of the line, or followed by another
/// option — exits 2 naming it.
#[test]
fn a_missing_value_exits_2_naming_the_option() {
    for example in servers() {
        example.rejects(&["--port"], "missing value for --port");
    }
    ECHO_SERVER.rejects(&["--port", "--loops", "2"], "missing value for --port");
    ECHO_SERVER.rejects(
        &["--port", "0", "--grace-secs"],
        "missing value for --grace-secs",
    );
    #[cfg(feature = "hyper")]
    HTTP_SERVER.rejects(&["--loops"], "missing value for --loops");
}

/// A positional argument where the example takes none — the old `echo_server 7878` and
/// `chat 7879` — and a value given to a flag exit 2 naming them.
#[test]
fn a_stray_argument_or_a_value_for_a_flag_exits_2() {
    ECHO_SERVER.rejects(&["7878"], "unexpected argument '7878'");
    ECHO_SERVER.rejects(&["--port", "0", "10"], "unexpected argument '10'");
    CHAT.rejects(&["7879"], "unexpected argument '7879'");
    TOUR.rejects(&["extra"], "unexpected argument 'extra'");
    CHAT.rejects(&["--demo=yes"], "--demo takes no value (got 'yes')");
    TOUR.rejects(&["--help=me"], "--help takes no value (got 'me')");
    #[cfg(feature = "hyper")]
    HTTP_CLIENT.rejects(&["--http2=1"], "--http2 takes no value (got '1')");
}

/// `chat --demo --port 0` (the flag and an option together) runs the three bots on a
/// free port and exits 0 with their transcripts.
#[test]
fn chat_demo_runs_with_the_new_options() {
    let run = CHAT.run(&["--demo", "--port", "0"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout[0].starts_with("chat on 127.0.0.1:"), "{run:?}");
    for name in ["ada", "bob", "cyd"] {
        let header = format!("--- what {name} heard");
        assert!(run.stdout.contains(&header), "{run:?}");
    }
}
