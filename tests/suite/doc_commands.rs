//! Every command in README and docs/ runs as written: each `provision …`
//! line of a `sh` block (continuations joined, `$(provision …)` included)
//! is parsed by the real binary (with `--help` appended, so clap checks
//! every subcommand and flag before it, and nothing touches a cloud), the
//! ones that need no cluster (`templates`, `completions`, `--help`) are run
//! whole, and every `scripts/…` and `examples/…` a block names exists.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A command line of a `sh` block, and where it is.
struct DocLine {
    at: String,
    line: String,
}

fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of every `sh` block, continuations joined, comments cut.
fn sh_lines(file: &Path) -> Vec<DocLine> {
    let text = std::fs::read_to_string(file).unwrap();
    let shown = file
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(file)
        .display()
        .to_string();
    let mut lines = Vec::new();
    let mut in_sh = None;
    let mut pending = String::new();
    for (number, raw) in text.lines().enumerate() {
        if let Some(fence) = raw.trim_start().strip_prefix("```") {
            in_sh = match in_sh {
                None => Some(matches!(fence.trim(), "sh" | "bash")),
                Some(_) => None,
            };
            continue;
        }
        if in_sh != Some(true) {
            continue;
        }
        let line = without_comment(raw).trim().to_string();
        match line.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start);
                pending.push(' ');
            }
            None => {
                pending.push_str(&line);
                let whole = std::mem::take(&mut pending).trim().to_string();
                if !whole.is_empty() {
                    lines.push(DocLine {
                        at: format!("{shown}:{}", number + 1),
                        line: whole,
                    });
                }
            }
        }
    }
    lines
}

/// The line up to a ` #` comment outside quotes.
fn without_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// The `provision …` commands of a line: the line itself, or inside
/// `$(…)`, up to a shell operator.
fn provision_commands(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("provision ") {
        let starts_command = at == 0 || rest[..at].ends_with("$(") || rest[..at].ends_with(' ');
        let tail = &rest[at..];
        let end = tail.find([')', '|', ';', '&', '>']).unwrap_or(tail.len());
        // A path such as /var/tmp/provision-target is not a command.
        if starts_command && !rest[..at].ends_with('/') {
            found.push(tail[..end].trim().to_string());
        }
        rest = &tail[end.max(1)..];
    }
    found
}

/// Words as the shell splits them (quotes removed; no expansions used).
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in command.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (_, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn provision(args: &[String], state: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_provision"))
        .args(args)
        .env("PROVISION_STATE", state)
        .env_remove("PROVISION_SCRIPTS_DIR")
        .output()
        .expect("run provision")
}

#[test]
fn every_command_in_the_docs_runs_as_written() {
    let state = tempfile::tempdir().unwrap();
    let state = state.path().join("state.db");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        for DocLine { at, line } in sh_lines(&file) {
            for file in line
                .split_whitespace()
                .filter(|w| w.starts_with("scripts/") || w.starts_with("examples/"))
            {
                if !root.join(file).exists() {
                    failures.push(format!("{at}: {file} does not exist"));
                }
            }
            for command in provision_commands(&line) {
                checked += 1;
                if command.contains(['[', '<', '…']) {
                    failures.push(format!(
                        "{at}: `{command}` has a placeholder: write a command that runs as written"
                    ));
                    continue;
                }
                let args: Vec<String> = words(&command).into_iter().skip(1).collect();
                let runs_whole = matches!(
                    args.first().map(String::as_str),
                    Some("templates" | "completions" | "--help" | "--version")
                ) && !args.iter().any(|a| a == "render");
                let mut parse = args.clone();
                if !runs_whole {
                    // Before a `--`: what follows it is the remote command's.
                    let at = parse.iter().position(|a| a == "--").unwrap_or(parse.len());
                    parse.insert(at, "--help".into());
                }
                let out = provision(&parse, &state);
                if !out.status.success() {
                    failures.push(format!(
                        "{at}: `{command}` failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} commands found in the docs");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        !state.exists(),
        "checking the docs' commands wrote a state store"
    );
}

#[test]
fn the_command_finder_takes_what_a_shell_would_run() {
    assert_eq!(
        provision_commands(r#"eval "$(provision env k1)" && kubectl get nodes"#),
        ["provision env k1"]
    );
    assert_eq!(
        provision_commands("export PATH=/var/tmp/provision-target/debug:$PATH"),
        Vec::<String>::new()
    );
    assert_eq!(
        words(r#"provision ssh demo demo-manager-1 -- "docker node ls""#),
        [
            "provision",
            "ssh",
            "demo",
            "demo-manager-1",
            "--",
            "docker node ls"
        ]
    );
    assert_eq!(
        without_comment("provision list   # every cluster"),
        "provision list   "
    );
    assert_eq!(
        without_comment("echo '#not' a comment"),
        "echo '#not' a comment"
    );
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let Some(end) = target.find(')') else {
                continue;
            };
            let target = &target[..end];
            if target.starts_with("http") || target.starts_with('#') || target.contains(' ') {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !dir.join(path).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
}
