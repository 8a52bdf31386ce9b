//! Build-time tool, not installed: writes the man page and the shell
//! completions of `icap-check`, generated from its clap definition, into a
//! directory. `cargo run --release --bin icap-check-assets -- OUTDIR`
//! (packaging/build-deb does this before cargo-deb).
//!
//! Writes `OUTDIR/icap-check.1`, `OUTDIR/icap-check.bash`, `OUTDIR/_icap-check`
//! (zsh) and `OUTDIR/icap-check.fish`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Roff};
use icap_check::assets::{Cli, ExitStatus, SCHEMES};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: icap-check-assets OUTDIR");
        return ExitCode::from(2);
    };
    match write_all(&PathBuf::from(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("icap-check-assets: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut man = BufWriter::new(File::create(dir.join("icap-check.1"))?);
    write_man(&mut man)?;
    man.flush()?;
    for (shell, name) in [
        (Shell::Bash, "icap-check.bash"),
        (Shell::Zsh, "_icap-check"),
        (Shell::Fish, "icap-check.fish"),
    ] {
        let mut file = BufWriter::new(File::create(dir.join(name))?);
        clap_complete::generate(shell, &mut Cli::command(), "icap-check", &mut file);
        file.flush()?;
    }
    println!("{}", dir.display());
    Ok(())
}

/// clap_mangen's sections, minus its EXTRA (the `--help` epilogue, which this
/// page says better in TARGETS and EXIT STATUS), plus the sections an
/// operator looks for in a check's man page.
fn write_man(w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(Cli::command());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    extra_sections().to_writer(w)?;
    man.render_options_section(w)?;
    exit_status_section().to_writer(w)?;
    files_section().to_writer(w)?;
    example_section().to_writer(w)?;
    man.render_version_section(w)?;
    Ok(())
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

fn tagged(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([bold(tag)]).text([roman(text)]);
}

/// TARGETS, from the same scheme table as `--help`.
fn extra_sections() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["TARGETS"]);
    for scheme in SCHEMES {
        tagged(&mut roff, scheme.form, &format!("{}.", scheme.about));
    }
    paragraph(
        &mut roff,
        "By hand, one or more URLs: one line per target on stdout, OK ... or FAIL ... \
         (see --format for others). With --haproxy-cfg, the targets are the servers of \
         haproxy.cfg's pools; with --haproxy-socket, those of the running HAProxy, each shown \
         beside HAProxy's own state for it.",
    );
    tagged(
        &mut roff,
        "PROXY_ADDR PROXY_PORT SERVER_ADDR SERVER_PORT",
        "As HAProxy's external-check command runs it. SERVER_ADDR may be a bare IPv6 address or \
         the path of a UNIX socket (port NOT_USED). The backend and server names come from \
         HAPROXY_PROXY_NAME and HAPROXY_SERVER_NAME. Silent when healthy; one line on stderr \
         when not, which HAProxy's log does not show: only the exit status reaches it.",
    );
    roff
}

fn exit_status_section() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    paragraph(
        &mut roff,
        "HAProxy logs the exit status of a failed check as \
         \"reason: External check error, code: N\"; each class of failure has its own:",
    );
    for (status, meaning) in ExitStatus::TABLE {
        tagged(&mut roff, &status.code().to_string(), meaning);
    }
    paragraph(
        &mut roff,
        &format!(
            "With several targets, the worst code, from worst: {}. With --format \
             nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage errors).",
            ExitStatus::severity_text()
        ),
    );
    paragraph(
        &mut roff,
        "HAProxy logs a check it had to kill (External check timeout) as code -1: keep --timeout \
         below the server's inter. It logs 255 when it could not execute the command.",
    );
    roff
}

fn files_section() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    paragraph(
        &mut roff,
        "HAProxy passes no options, so settings come from a configuration file, the first found of:",
    );
    tagged(&mut roff, "--config PATH", "given on the command line;");
    tagged(
        &mut roff,
        "$ICAP_CHECK_CONFIG",
        "the environment (HAProxy clears it);",
    );
    roff.control("TP", [])
        .text([italic("COMMAND"), bold(".conf")])
        .text([roman(
            "the command's path as HAProxy names it, plus .conf: /usr/local/bin/icap-check \
             reads /usr/local/bin/icap-check.conf, also inside HAProxy's chroot;",
        )]);
    tagged(&mut roff, "/etc/icap-check.conf", "the system-wide file.");
    paragraph(
        &mut roff,
        "Sections: defaults, then \"backend NAME\", then \"server BACKEND/SERVER\" (selected by \
         HAProxy's HAPROXY_PROXY_NAME and HAPROXY_SERVER_NAME); the more specific wins, and \
         command-line options override all. Keys are the long options without their dashes; \
         a flag stands alone. An example is in /usr/share/doc/icap-check/.",
    );
    roff
}

fn example_section() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    paragraph(&mut roff, "By hand:");
    roff.control("nf", [])
        .text([roman("icap-check icap://127.0.0.1:1344/echo")])
        .text([roman(
            "icap-check --method respmod icap://127.0.0.1:1344/echo",
        )])
        .control("fi", []);
    paragraph(&mut roff, "In haproxy.cfg:");
    roff.control("nf", []);
    for line in [
        "global",
        "    external-check",
        "    insecure-fork-wanted",
        "backend icap_pool",
        "    mode tcp",
        "    option external-check",
        "    external-check command /usr/bin/icap-check",
        "    server icap01 10.0.0.5:1344 check inter 2s fall 3 rise 2",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    paragraph(
        &mut roff,
        "with \"service\" (and any other setting) in /etc/icap-check.conf, and the check's \
         timeout (1500ms by default) below inter.",
    );
    roff
}
