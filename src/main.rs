//! The `provision` binary: parses the command line, sets up logging, and
//! reports errors with their whole chain of context.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use provision::cli::{self, Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(global: &cli::Global, daemon: bool) {
    // On a terminal the live node display is the output; logs are for -v.
    // The daemon's log is its output.
    let default = match (global.verbose, std::io::stderr().is_terminal() && !daemon) {
        (0, true) => "warn",
        (0, false) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("PROVISION_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default},russh=warn,hyper=warn,bollard=warn,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_ec2=warn,osauth=warn,openstack=warn,reqwest=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false);
    match global.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Colour codes only for a person at a terminal: a file, a pipe or journald
/// gets plain text, and `NO_COLOR` (any non-empty value, no-color.org) turns
/// colour off everywhere.
fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`provision list | head`), as CLI tools do.
    // SAFETY: restoring the default disposition of a signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logging(
        &cli.global,
        matches!(cli.command, cli::Command::Daemon { .. }),
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
