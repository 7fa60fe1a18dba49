//! The examples' one command-line convention (SPEC §16 U3): options `--name VALUE` or
//! `--name=VALUE`, boolean flags `--name`, `-h` / `--help`, and positional arguments
//! only where an example declares them. It owns the help text and the one way a bad
//! command line ends: `error: …` on stderr naming the argument (and its value), then the
//! usage line, and exit code 2 — before the example does anything else.
//!
//! Each example includes it with `#[path = "common/args.rs"] mod args;` (a few lines
//! here rather than a dependency: the examples show evloop, not a parser crate).

// Every example uses part of this file, none uses all of it.
#![allow(dead_code)]

use std::fmt::Display;
use std::str::FromStr;

/// What a command-line entry is.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Value(&'static str), // `--name VALUE`; the placeholder shown for the value (`N`)
    Flag,                // `--name`, no value
    Positional,          // the positional arguments, shown as `name...` (`URL...`)
}

/// One entry an example accepts, with its line of help.
pub struct Opt {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

/// Every example's `--help` (`-h` is the same flag).
const HELP: Opt = Opt::flag("--help", "print this help and exit (also -h)");

impl Opt {
    /// An option with a value: `Opt::value("--port", "N", "the port …")`.
    pub const fn value(name: &'static str, value: &'static str, help: &'static str) -> Opt {
        let kind = Kind::Value(value);
        Opt { name, kind, help }
    }

    /// A boolean flag.
    pub const fn flag(name: &'static str, help: &'static str) -> Opt {
        let kind = Kind::Flag;
        Opt { name, kind, help }
    }

    /// Any number of positional arguments, shown as `name...` (`URL...`).
    pub const fn positional(name: &'static str, help: &'static str) -> Opt {
        let kind = Kind::Positional;
        Opt { name, kind, help }
    }

    /// How the entry is written in the usage line and the help (`--port N`, `URL...`).
    fn synopsis(&self) -> String {
        match self.kind {
            Kind::Value(value) => format!("{} {value}", self.name),
            Kind::Flag => self.name.to_string(),
            Kind::Positional => format!("{}...", self.name),
        }
    }
}

/// A checked command line: every name known, every option's value present.
pub struct Args {
    /// The options (named first, then `--help`, then any positional entry).
    entries: Vec<&'static Opt>,
    program: &'static str,
    /// (option, value) in the order given; `""` for a flag.
    given: Vec<(&'static str, String)>,
    positionals: Vec<String>,
}

impl Args {
    /// Reads the process's arguments. `--help` prints the help and exits 0; an unknown
    /// option, a missing value or an undeclared positional argument exits 2.
    pub fn parse(program: &'static str, about: &str, options: &'static [Opt]) -> Args {
        let (positional, named): (Vec<_>, Vec<_>) =
            options.iter().partition(|o| o.kind == Kind::Positional);
        let entries = named.into_iter().chain([&HELP]).chain(positional).collect();
        let mut args = Args {
            entries,
            program,
            given: Vec::new(),
            positionals: Vec::new(),
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            if !word.starts_with('-') {
                if args.positional().is_none() {
                    args.fail(format_args!("unexpected argument '{word}'"));
                }
                args.positionals.push(word);
                continue;
            }
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (word.as_str(), None),
            };
            let name = if name == "-h" { HELP.name } else { name };
            let mut named = args.entries.iter().filter(|o| o.kind != Kind::Positional);
            let Some(opt) = named.find(|o| o.name == name).copied() else {
                args.fail(format_args!("unknown option '{name}'"));
            };
            let value = match (opt.kind, inline) {
                (Kind::Flag, Some(v)) => {
                    args.fail(format_args!("{name} takes no value (got '{v}')"))
                }
                (Kind::Flag, None) => String::new(),
                (_, Some(value)) => value.to_string(),
                (_, None) => match words.next() {
                    Some(value) if !value.starts_with("--") => value,
                    _ => args.fail(format_args!("missing value for {name}")),
                },
            };
            if opt.name == HELP.name {
                args.print_help(about);
                std::process::exit(0);
            }
            args.given.push((opt.name, value));
        }
        args
    }

    /// Whether the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.given.iter().any(|(given, _)| *given == name)
    }

    /// The value of option `name` (the last one given) as a `T`, or `default`. A value
    /// that does not parse exits 2.
    pub fn get<T: FromStr<Err: Display>>(&self, name: &str, default: T) -> T {
        match self.given.iter().rev().find(|(given, _)| *given == name) {
            Some((_, value)) => self.parse_value(name, value),
            None => default,
        }
    }

    /// The value of option `name` (the last one given), if it was given.
    #[allow(dead_code)] // not every example has an option without a default
    pub fn value_of(&self, name: &str) -> Option<&str> {
        let given = self.given.iter().rev().find(|(given, _)| *given == name);
        given.map(|(_, value)| value.as_str())
    }

    /// Like [`get`](Args::get), and the value must be at least `min` (else exit 2).
    pub fn get_at_least<T>(&self, name: &str, default: T, min: T) -> T
    where
        T: FromStr<Err: Display> + PartialOrd + Display,
    {
        let value = self.get(name, default);
        if value < min {
            self.fail(format_args!(
                "invalid value '{value}' for {name}: at least {min} is needed"
            ));
        }
        value
    }

    /// The positional arguments, each parsed as a `T` (one that does not parse exits 2).
    pub fn positionals<T: FromStr<Err: Display>>(&self) -> Vec<T> {
        let name = self.positional().map_or("argument", |o| o.name);
        let parse = |value: &String| self.parse_value(name, value);
        self.positionals.iter().map(parse).collect()
    }

    fn positional(&self) -> Option<&'static Opt> {
        self.entries
            .last()
            .filter(|o| o.kind == Kind::Positional)
            .copied()
    }

    fn parse_value<T: FromStr<Err: Display>>(&self, name: &str, value: &str) -> T {
        value
            .parse()
            .unwrap_or_else(|e| self.fail(format_args!("invalid value '{value}' for {name}: {e}")))
    }

    /// `usage: program [--port N] … [--help] [URL...]`.
    pub fn usage(&self) -> String {
        let mut usage = format!("usage: {}", self.program);
        for opt in &self.entries {
            usage += &format!(" [{}]", opt.synopsis());
        }
        usage
    }

    /// Ends the process the way every bad command line does: `error: {message}` and the
    /// usage line on stderr, exit code 2.
    pub fn fail(&self, message: impl Display) -> ! {
        eprintln!("error: {message}");
        eprintln!("{}", self.usage());
        std::process::exit(2)
    }

    fn print_help(&self, about: &str) {
        println!("{about}\n\n{}\n", self.usage());
        let width = self.entries.iter().map(|o| o.synopsis().len()).max();
        for opt in &self.entries {
            println!(
                "  {:w$}  {}",
                opt.synopsis(),
                opt.help,
                w = width.unwrap_or(0)
            );
        }
    }
}
