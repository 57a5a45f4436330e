//! Reading what a script or a loader command line asks to run: the `#!`
//! line as the kernel splits it, the program argument of `ld.so [OPTIONS]
//! PROGRAM`, and the file names the dynamic loader goes by.
//!
//! Pure parsing of bytes the workload controls, with no file access: the
//! classifier resolves and judges what these functions name. Kept apart so
//! each rule of `fs/binfmt_script.c` and `ld.so --help` reads, and is tested,
//! on its own.

/// A `#!` line, split as the kernel splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shebang {
    /// The program the kernel runs.
    pub(super) interpreter: Vec<u8>,
    /// The one optional argument, as a C string (so never empty here).
    pub(super) argument: Option<Vec<u8>>,
}

/// Is `name` one of the dynamic loader's file names?
pub(super) fn is_loader_name(name: &[u8]) -> bool {
    name.starts_with(b"ld-linux")
        || name.starts_with(b"ld.so")
        || name.starts_with(b"ld64.so")
        || name.starts_with(b"ld-musl-")
        || (name.starts_with(b"ld-") && name.windows(3).any(|w| w == b".so"))
}

/// The program argument of a dynamic loader command line.
pub(super) fn loader_program(argv: &[Vec<u8>]) -> Option<&[u8]> {
    const WITH_VALUE: [&[u8]; 7] = [
        b"--library-path",
        b"--inhibit-rpath",
        b"--audit",
        b"--preload",
        b"--argv0",
        b"--glibc-hwcaps-prepend",
        b"--glibc-hwcaps-mask",
    ];
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg.as_slice() == b"--" {
            return args.next().map(Vec::as_slice);
        }
        if arg.starts_with(b"--") {
            if WITH_VALUE.contains(&arg.as_slice()) {
                args.next();
            }
            continue;
        }
        return Some(arg);
    }
    None
}

fn spacetab(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `#!interpreter [argument]`, split exactly as fs/binfmt_script.c does: the
/// line ends at a newline (or the end of the 256-byte header); trailing and
/// leading spaces and tabs are skipped, and only those; the interpreter ends at
/// a space, a tab or a NUL; the argument is the rest of the line as a C string.
/// Anything else (a '\r', say) is part of the name, as it is for the kernel.
pub(super) fn parse_shebang(line: &[u8]) -> Option<Shebang> {
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let mut line = &line[..end];
    while let [rest @ .., last] = line {
        if !spacetab(*last) {
            break;
        }
        line = rest;
    }
    let start = line
        .iter()
        .position(|&b| !spacetab(b))
        .unwrap_or(line.len());
    let line = &line[start..];
    let name_end = line
        .iter()
        .position(|&b| spacetab(b) || b == 0)
        .unwrap_or(line.len());
    let interpreter = &line[..name_end];
    if interpreter.is_empty() {
        return None;
    }
    let argument = match line.get(name_end) {
        Some(&sep) if sep != 0 => {
            let rest = &line[name_end..];
            let from = rest
                .iter()
                .position(|&b| !spacetab(b))
                .unwrap_or(rest.len());
            let rest = &rest[from..];
            let to = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Some(rest[..to].to_vec()).filter(|a| !a.is_empty())
        }
        _ => None,
    };
    Some(Shebang {
        interpreter: interpreter.to_vec(),
        argument,
    })
}

#[cfg(test)]
mod tests {
    //! Scripts and loader command lines through the whole classifier (what the
    //! kernel runs is what is judged), and the parsers on their own.

    use std::path::{Path, PathBuf};

    use sniffguard_common::policy::Policy;

    use super::*;
    use crate::classify::testutil::*;
    use crate::classify::{Classifier, Evidence};

    #[test]
    fn shebang_lines_split_as_the_kernel_splits_them() {
        let split = |line: &[u8]| parse_shebang(line).map(|s| (s.interpreter, s.argument));
        assert_eq!(split(b"/bin/sh\n"), Some((b"/bin/sh".to_vec(), None)));
        assert_eq!(
            split(b" \t/bin/sh  -e -x \t\nrest"),
            Some((b"/bin/sh".to_vec(), Some(b"-e -x".to_vec())))
        );
        assert_eq!(split(b"/d/x\0junk -n\n"), Some((b"/d/x".to_vec(), None)));
        assert_eq!(split(b"/d/x\r\n"), Some((b"/d/x\r".to_vec(), None)));
        assert_eq!(split(b" \t\n/bin/sh"), None);
        assert_eq!(split(b""), None);
    }

    #[test]
    fn loader_program_skips_options_and_their_values() {
        let argv = |args: &[&[u8]]| args.iter().map(|a| a.to_vec()).collect::<Vec<_>>();
        let ld: &[u8] = b"ld.so";
        assert_eq!(
            loader_program(&argv(&[ld, b"--library-path", b"/x", b"/p", b"-D"])),
            Some(&b"/p"[..])
        );
        assert_eq!(
            loader_program(&argv(&[ld, b"--list", b"--", b"--p"])),
            Some(&b"--p"[..])
        );
        assert_eq!(loader_program(&argv(&[ld, b"--preload"])), None);
        assert_eq!(loader_program(&argv(&[ld])), None);
        assert_eq!(loader_program(&[]), None);
    }

    #[test]
    fn loader_names() {
        for name in [
            &b"ld-linux-x86-64.so.2"[..],
            b"ld.so",
            b"ld64.so.2",
            b"ld-musl-x86_64.so.1",
            b"ld-2.36.so",
        ] {
            assert!(is_loader_name(name), "{name:?}");
        }
        for name in [&b"ldd"[..], b"ld", b"ld-wrapper", b"libld.so"] {
            assert!(!is_loader_name(name), "{name:?}");
        }
    }

    // -----------------------------------------------------------------------------
    // Scripts
    // -----------------------------------------------------------------------------

    #[test]
    fn script_whose_interpreter_is_a_tcpdump_copy() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let script = scratch.write(
            "run.sh",
            format!("#!{} -i any\necho hi\n", copy.display()).as_bytes(),
        );
        match classify(&script).as_slice() {
            [Evidence::Interpreter {
                interpreter,
                because,
            }] => {
                assert_eq!(interpreter.as_bytes(), bytes(&copy));
                assert_links_libpcap(std::slice::from_ref(because));
            }
            other => panic!("expected Interpreter, got {other:?}"),
        }
    }

    #[test]
    fn script_whose_interpreter_has_a_catalogued_name() {
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let script = scratch.write("run.sh", format!("#!{}\n", named.display()).as_bytes());
        assert_eq!(
            classify(&script),
            [Evidence::Interpreter {
                interpreter: named.display().to_string(),
                because: Box::new(catalogue_name("tcpdump")),
            }]
        );
    }

    #[test]
    fn env_shebang_names_the_tool() {
        let scratch = Scratch::new();
        let expected = [Evidence::Interpreter {
            interpreter: "/usr/bin/env".into(),
            because: Box::new(name_given("tcpdump")),
        }];
        for line in [
            "#!/usr/bin/env tcpdump\n",
            "#!/usr/bin/env -S tcpdump -i any\n",
            "#!/usr/bin/env\ttcpdump\n",
            "#!  /usr/bin/env   tcpdump  \n",
        ] {
            let script = scratch.write("run.sh", line.as_bytes());
            assert_eq!(classify(&script), expected, "{line:?}");
        }
        for line in [
            "#!/usr/bin/env sh\n",
            "#!/usr/bin/env\n",
            "#!/usr/bin/env -i\n",
        ] {
            let script = scratch.write("run.sh", line.as_bytes());
            assert_eq!(classify(&script), [], "{line:?}");
        }
    }

    #[test]
    fn script_chains_and_loops_are_bounded() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let inner = scratch.write("inner", format!("#!{}\n", copy.display()).as_bytes());
        let outer = scratch.write("outer", format!("#!{}\n", inner.display()).as_bytes());
        match classify(&outer).as_slice() {
            [Evidence::Interpreter { because, .. }] => match because.as_ref() {
                Evidence::Interpreter { because, .. } => {
                    assert_links_libpcap(std::slice::from_ref(because));
                }
                other => panic!("expected a nested Interpreter, got {other:?}"),
            },
            other => panic!("expected Interpreter, got {other:?}"),
        }
        // A script that names itself, and two that name each other: the kernel stops
        // with ELOOP; the classifier must stop too.
        let own = scratch.path("own");
        scratch.write("own", format!("#!{}\n", own.display()).as_bytes());
        assert_eq!(classify(&own), []);
        let a = scratch.path("a");
        let b = scratch.path("b");
        scratch.write("a", format!("#!{}\n", b.display()).as_bytes());
        scratch.write("b", format!("#!{}\n", a.display()).as_bytes());
        assert_eq!(classify(&a), []);
    }

    #[test]
    fn shebang_without_interpreter_gives_nothing() {
        let scratch = Scratch::new();
        for content in [
            &b"#!"[..],
            b"#!\n",
            b"#!   \t \n/usr/bin/tcpdump\n",
            b"#! \r\n",
        ] {
            let script = scratch.write("run.sh", content);
            assert_eq!(classify(&script), [], "{content:?}");
        }
    }

    #[test]
    fn shebang_with_tabs_and_no_final_newline() {
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let expected = [Evidence::Interpreter {
            interpreter: named.display().to_string(),
            because: Box::new(catalogue_name("tcpdump")),
        }];
        for content in [
            format!("#!\t{}\t-n\n", named.display()),
            format!("#!{}\t \t-i\tany\n", named.display()),
            format!("#!{}", named.display()),
            format!("#! {} ", named.display()),
        ] {
            let script = scratch.write("run.sh", content.as_bytes());
            assert_eq!(classify(&script), expected, "{content:?}");
        }
    }

    #[test]
    fn very_long_shebang_lines() {
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        // A long argument is truncated by the kernel (BINPRM_BUF_SIZE, 256 bytes) and
        // the interpreter still runs: it must still be judged.
        let long_argument = format!("#!{} {}\n", named.display(), "a".repeat(1000));
        let script = scratch.write("run.sh", long_argument.as_bytes());
        assert_eq!(
            classify(&script),
            [Evidence::Interpreter {
                interpreter: named.display().to_string(),
                because: Box::new(catalogue_name("tcpdump")),
            }]
        );
        // An interpreter path longer than the buffer: the kernel refuses (ENOEXEC);
        // the classifier sees a truncated path that resolves to nothing.
        let long_path = format!("#!/{}/tcpdump\n", "d".repeat(1000));
        let script = scratch.write("run.sh", long_path.as_bytes());
        assert_eq!(classify(&script), []);
        // No newline at all within a large file.
        let script = scratch.write("run.sh", &[b"#!/".as_slice(), &[b'x'; 100_000]].concat());
        assert_eq!(classify(&script), []);
    }

    #[test]
    fn crlf_shebang_names_a_file_ending_in_cr() {
        // The kernel keeps the '\r' ("bad interpreter: /bin/sh^M"): the script runs
        // a file called "tcpdump\r", which does not exist here, so nothing runs and
        // nothing is reported (see `interpreter_name_ending_in_cr_is_judged` for a
        // file that does carry the '\r').
        let scratch = Scratch::new();
        let named = scratch.copy(Path::new("/bin/ls"), "tcpdump");
        let script = scratch.write("run.sh", format!("#!{}\r\n", named.display()).as_bytes());
        assert_eq!(classify(&script), []);
    }

    // -----------------------------------------------------------------------------
    // The dynamic loader
    // -----------------------------------------------------------------------------

    /// A file called `ld-linux-x86-64.so.2` in `scratch`: a copy of the real loader
    /// when there is one (the classifier goes by the name either way).
    fn loader_copy(scratch: &Scratch) -> PathBuf {
        if Path::new(LOADER).is_file() {
            scratch.copy(Path::new(LOADER), LOADER_NAME)
        } else {
            scratch.write(LOADER_NAME, b"\x7fELF not really a loader")
        }
    }

    #[test]
    fn loader_running_a_tcpdump_copy() {
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let copy = scratch.copy(tcpdump, "innocent");
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        for argv in [
            vec![bytes(&ld), b"--library-path", b"/x", bytes(&copy), b"-D"],
            vec![bytes(&ld), bytes(&copy)],
            vec![bytes(&ld), b"--list", b"--preload", b"/y.so", bytes(&copy)],
            vec![bytes(&ld), b"--argv0", b"bash", b"--", bytes(&copy), b"-D"],
        ] {
            let evidence = classify_with(&classifier, &policy, bytes(&ld), &argv);
            match evidence.as_slice() {
                [Evidence::Loader { program, because }] => {
                    assert_eq!(program.as_bytes(), bytes(&copy));
                    assert_links_libpcap(std::slice::from_ref(because));
                }
                other => panic!("{argv:?}: expected Loader, got {other:?}"),
            }
        }
    }

    #[test]
    fn loader_running_something_benign_or_nothing() {
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let classifier = Classifier::new();
        let policy = Policy::builtin().unwrap();
        for argv in [
            vec![bytes(&ld), &b"/bin/ls"[..]],
            vec![bytes(&ld), b"--library-path", b"/x", b"/bin/ls", b"tcpdump"],
            vec![bytes(&ld)],
            vec![bytes(&ld), b"--library-path"],
            vec![bytes(&ld), b"--help"],
            vec![],
        ] {
            let evidence = classify_with(&classifier, &policy, bytes(&ld), &argv);
            assert_eq!(evidence, [], "{argv:?}");
        }
    }

    #[test]
    fn loader_given_a_catalogued_name_that_does_not_resolve() {
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let missing = scratch.path("tcpdump");
        let argv = [bytes(&ld), bytes(&missing)];
        let evidence = classify_with(
            &Classifier::new(),
            &Policy::builtin().unwrap(),
            bytes(&ld),
            &argv,
        );
        assert_eq!(
            evidence,
            [Evidence::Loader {
                program: missing.display().to_string(),
                because: Box::new(name_given("tcpdump")),
            }]
        );
    }

    // -----------------------------------------------------------------------------
    // Known evasions, now handled: each pins down how the kernel really treats the case.
    // -----------------------------------------------------------------------------

    #[test]
    fn interpreter_name_ending_at_a_nul_is_judged() {
        // `#!/d/innocent\0junk\n` runs /d/innocent (fs/binfmt_script.c:
        // next_terminator() stops at ' ', '\t' and '\0'). The classifier looks for a
        // file called "innocent\0junk", finds none, and lets the script run.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "innocent");
        let script = scratch.write("run.sh", &[b"#!", bytes(&copy), b"\0junk\n"].concat());
        assert!(
            matches!(classify(&script).as_slice(), [Evidence::Interpreter { .. }]),
            "{:?}",
            classify(&script)
        );
    }

    #[test]
    fn interpreter_name_ending_in_cr_is_judged() {
        // The kernel only skips spaces and tabs: `#!/d/x\r\n` runs the file "/d/x\r".
        // The classifier trims the '\r', resolves "/d/x", which does not exist, and
        // lets a renamed tcpdump called "x\r" run.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let copy = scratch.copy(tcpdump, "x\r");
        let script = scratch.write("run.sh", format!("#!{}\n", copy.display()).as_bytes());
        assert!(
            matches!(classify(&script).as_slice(), [Evidence::Interpreter { .. }]),
            "{:?}",
            classify(&script)
        );
    }

    #[test]
    fn loader_as_interpreter_with_a_program_argument() {
        // `#!/lib64/ld-linux-x86-64.so.2 /d/innocent` makes the kernel run
        // [ld.so, "/d/innocent", script, args...]: the loader maps the sniffer and no
        // further execve happens. classify_loader_target reads the *script's* argv
        // ([script]), finds no program, and nothing is reported.
        let Some(tcpdump) = tcpdump() else { return };
        let scratch = Scratch::new();
        let ld = loader_copy(&scratch);
        let copy = scratch.copy(tcpdump, "innocent");
        let script = scratch.write(
            "run.sh",
            format!("#!{} {}\n", ld.display(), copy.display()).as_bytes(),
        );
        let evidence = classify(&script);
        assert!(!evidence.is_empty(), "{evidence:?}");
    }

    #[test]
    fn renamed_loader_running_a_tcpdump_copy() {
        // `cp /lib64/ld-linux-x86-64.so.2 /d/helper; /d/helper /d/innocent` runs the
        // sniffer with a single execve of an unremarkable ELF.
        let Some(tcpdump) = tcpdump() else { return };
        if !Path::new(LOADER).is_file() {
            eprintln!("SKIPPED: {LOADER} missing");
            return;
        }
        let scratch = Scratch::new();
        let helper = scratch.copy(Path::new(LOADER), "helper");
        let copy = scratch.copy(tcpdump, "innocent");
        let argv = [bytes(&helper), bytes(&copy), b"-D"];
        let evidence = classify_with(
            &Classifier::new(),
            &Policy::builtin().unwrap(),
            bytes(&helper),
            &argv,
        );
        assert!(!evidence.is_empty(), "{evidence:?}");
    }
}
