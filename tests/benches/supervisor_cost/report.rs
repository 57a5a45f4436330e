//! Knobs (the bench's environment variables), host facts, and the report: markdown for
//! `bench/results.md`, echoed to the console as it grows, and the table of targets.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use sniffguard_tests::repo_root;

use crate::shared::env_usize;

pub(crate) struct Knobs {
    pub(crate) execs: usize,
    pub(crate) rounds: usize,
    pub(crate) storm: usize,
    pub(crate) starts: usize,
    pub(crate) registrations: usize,
    pub(crate) window: Duration,
    only: Option<Vec<u32>>,
    results: Option<PathBuf>,
}

impl Knobs {
    pub(crate) fn from_env() -> Knobs {
        let only = std::env::var("SNIFFGUARD_BENCH_ONLY").ok().map(|text| {
            text.split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("SNIFFGUARD_BENCH_ONLY={text:?}: numbers 1-5"))
                })
                .collect()
        });
        Knobs {
            execs: env_usize("SNIFFGUARD_BENCH_EXECS", 5000).max(1),
            rounds: env_usize("SNIFFGUARD_BENCH_ROUNDS", 5).max(1),
            storm: env_usize("SNIFFGUARD_BENCH_STORM", 4).max(1),
            starts: env_usize("SNIFFGUARD_BENCH_STARTS", 50).max(1),
            registrations: env_usize("SNIFFGUARD_BENCH_REGISTRATIONS", 500),
            window: Duration::from_secs(env_usize("SNIFFGUARD_BENCH_WINDOW", 5).max(1) as u64),
            only,
            results: std::env::var_os("SNIFFGUARD_BENCH_RESULTS").map(PathBuf::from),
        }
    }

    pub(crate) fn runs(&self, section: u32) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.contains(&section))
    }

    /// `bench/results.md` for a full run, or where `SNIFFGUARD_BENCH_RESULTS` says.
    pub(crate) fn results_path(&self) -> Option<PathBuf> {
        match (&self.results, &self.only) {
            (Some(path), _) if path.is_absolute() => Some(path.clone()),
            (Some(path), _) => Some(repo_root().join(path)),
            (None, None) => Some(repo_root().join("bench").join("results.md")),
            (None, Some(_)) => None,
        }
    }
}

pub(crate) struct Host {
    pub(crate) cores: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) mem_mib: u64,
    pub(crate) load: String,
    pub(crate) date: String,
    pub(crate) runc: String,
    pub(crate) other_supervisors: usize,
    pub(crate) source: String,
}

impl Host {
    pub(crate) fn probe() -> Host {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_else(|| "?".to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let mem_mib = fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let date = Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        let runc = Command::new("runc")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("runc version ")
                    .to_owned()
            })
            .unwrap_or_default();
        Host {
            cores: thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel,
            mem_mib,
            load: load_average(),
            date,
            runc,
            other_supervisors: running_supervisors(),
            source: source_revision(),
        }
    }
}

/// The commit measured, and whether the product's sources differ from it.
fn source_revision() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "? (not a git checkout)".to_owned();
    };
    let changed = git(&[
        "status",
        "--porcelain",
        "--",
        "common",
        "hook",
        "supervisor",
        "supervisor-ebpf",
    ])
    .map_or(0, |text| text.lines().count());
    if changed == 0 {
        format!("commit {commit}")
    } else {
        format!("commit {commit} with {changed} uncommitted change(s) in the product's sources")
    }
}

/// `/proc/loadavg`'s three averages.
pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// How many `sniffguard run` processes are alive (none of them ours when called at start).
fn running_supervisors() -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .filter(|cmdline| {
            let mut args = cmdline.split(|&b| b == 0);
            let exe = args.next().unwrap_or_default();
            exe.ends_with(b"sniffguard") && args.next() == Some(b"run".as_slice())
        })
        .count()
}

/// One target of the issue and what this run measured.
struct Target {
    what: String,
    target: String,
    measured: String,
    verdict: &'static str,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) markdown: String,
    printed: usize,
    targets: Vec<Target>,
}

impl Report {
    pub(crate) fn line(&mut self, text: &str) {
        self.markdown.push_str(text);
        self.markdown.push('\n');
    }

    /// Prints what was added since the last flush.
    pub(crate) fn flush_console(&mut self) {
        print!("{}", &self.markdown[self.printed..]);
        let _ = std::io::stdout().flush();
        self.printed = self.markdown.len();
    }

    pub(crate) fn target(
        &mut self,
        what: &str,
        target: &str,
        measured: String,
        verdict: &'static str,
    ) {
        self.targets.push(Target {
            what: what.to_owned(),
            target: target.to_owned(),
            measured,
            verdict,
        });
    }

    pub(crate) fn targets_table(&self) -> String {
        let mut out = String::from(
            "## Targets of issue 7\n\n| what | target | measured | |\n|---|---|---|---|\n",
        );
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.what, t.target, t.measured, t.verdict
            );
        }
        out
    }
}

pub(crate) fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}
