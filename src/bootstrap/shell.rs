//! Running bootstrap scripts on a node.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use minijinja::value::Value;
use provision_provider::Addresses;
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::debug;

use super::scripts::{ScriptError, Scripts};
use super::ssh::SshError;
use super::transport::Transport;
use crate::secret::Secret;

/// Where a script's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// To the node's log file, and returned.
    Log,
    /// Only returned (probes that run every pass would flood the log).
    Quiet,
    /// Only returned: it holds secrets (join tokens), so it is never logged
    /// and a failure reports no output lines.
    Secret,
    /// A backup's archive (base64): secret, as [`Output::Secret`], and
    /// allowed to be large.
    Archive,
}

impl Output {
    /// How much of a script's output is read before it is cut off: what a
    /// node prints is untrusted, and a node that streams without end must
    /// not run the daemon out of memory (every cluster's healing with it).
    pub fn limit(self) -> usize {
        match self {
            Output::Log | Output::Quiet => SCRIPT_OUTPUT_LIMIT,
            Output::Secret => SECRET_OUTPUT_LIMIT,
            Output::Archive => ARCHIVE_OUTPUT_LIMIT,
        }
    }
}

/// Output read of a script run for its effect (installs print a lot).
pub const SCRIPT_OUTPUT_LIMIT: usize = 16 << 20;
/// Output read of a query: a probe, a membership listing (a thousand
/// members print about 100 KiB).
pub const QUERY_OUTPUT_LIMIT: usize = 1 << 20;
/// Output read of a script that prints secrets (tokens, a kubeconfig).
pub const SECRET_OUTPUT_LIMIT: usize = 1 << 20;
/// Output read of a backup script: the archive, base64.
pub const ARCHIVE_OUTPUT_LIMIT: usize = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error(transparent)]
    Script(#[from] ScriptError),
    #[error("node {node}: script {script} exited with status {code}; {}", tail_text(.tail))]
    Failed {
        node: String,
        script: String,
        code: u32,
        /// Last lines of output; empty when the output may hold secrets.
        tail: Vec<String>,
    },
    #[error("node {node}: script {script} did not finish within {}", humantime::format_duration(*after))]
    Timeout {
        node: String,
        script: String,
        after: Duration,
    },
    #[error("node {node}: script {script} printed more than {limit} bytes, so it was cut off there and its output not used (what a node prints is untrusted: look at the node)")]
    OutputLimit {
        node: String,
        script: String,
        limit: usize,
    },
    #[error("node {node}: cannot write log {}: {source}", path.display())]
    Log {
        node: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ShellError {
    /// A script that succeeded but printed what cannot be read.
    pub fn unreadable(node: &str, script: &str, message: String) -> ShellError {
        ShellError::Failed {
            node: node.to_string(),
            script: script.to_string(),
            code: 0,
            tail: vec![message],
        }
    }
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        "its output is not shown (it may hold secrets)".to_string()
    } else {
        format!(
            "last {} lines of output:\n  {}",
            tail.len(),
            tail.join("\n  ")
        )
    }
}

/// A script's output, read up to a limit: past it, reading stops (the
/// command's channel is closed) and the script fails as cut off.
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    over: bool,
}

impl Capture {
    fn new(limit: usize) -> Capture {
        Capture {
            bytes: Vec::new(),
            limit,
            over: false,
        }
    }

    fn take(&mut self, chunk: &[u8]) -> std::ops::ControlFlow<()> {
        if self.bytes.len() + chunk.len() > self.limit {
            self.over = true;
            return std::ops::ControlFlow::Break(());
        }
        self.bytes.extend_from_slice(chunk);
        std::ops::ControlFlow::Continue(())
    }

    fn text(self, node: &str, script: &str) -> Result<String, ShellError> {
        if self.over {
            return Err(ShellError::OutputLimit {
                node: node.to_string(),
                script: script.to_string(),
                limit: self.limit,
            });
        }
        Ok(String::from_utf8_lossy(&self.bytes).into_owned())
    }
}

const TAIL_LINES: usize = 20;
const REMOTE_DIR: &str = "/var/lib/provision/scripts";

/// The command that stores a script and runs it, in one round trip. Its
/// standard input is the script's text, a NUL byte, then the script's own
/// input: bash's `read` takes a pipe one byte at a time, so it stops at the
/// NUL and the script reads the rest (a join token never touches the
/// disk). The text goes into a file of its own for this run, so two runs
/// of one script at once (two drains through one manager) never run each
/// other's text; it is then renamed to the script's own name (one rename:
/// a reader sees a whole file), so the last run is there to read.
fn run_command(sudo: &str, dir: &str, name: &str, wait: Duration) -> String {
    let wait = wait.as_secs().max(1);
    // Stored, then run under the node's lock (one changing script at a time
    // on a node, whoever started it: two passes' scripts never interleave),
    // in a session of its own, with a watchdog that kills that session's
    // processes once the SSH connection that started it is gone (a pass
    // dropped, a daemon killed: sshd does not end a command without a
    // terminal when its client goes). The script and the watchdog do not
    // inherit the lock's descriptor, so nothing the script leaves running
    // holds the lock.
    let program = format!(
        "mkdir -p {dir} && chmod 0700 {dir} && f=$(mktemp {dir}/{name}.XXXXXX) \
         && IFS= read -r -d '' text && printf '%s' \"$text\" > \"$f\" \
         || {{ echo 'provision: cannot store the script in {dir}' >&2; exit 125; }}; \
         unset text; exec 9>>{dir}/.lock; \
         if ! flock -w {wait} 9; then \
           echo 'provision: another provision script kept running on this node for {wait}s (it holds {dir}/.lock); this one did not run' >&2; \
           rm -f \"$f\"; exit 124; \
         fi; \
         conn=$PPID; \
         while [ \"$conn\" -gt 1 ]; do \
           case $(cat /proc/$conn/comm 2>/dev/null) in sshd*) break ;; esac; \
           conn=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$conn/status 2>/dev/null); conn=${{conn:-1}}; \
         done; \
         setsid bash \"$f\" <&0 9>&- & child=$!; \
         if [ \"$conn\" -gt 1 ]; then \
           ( while kill -0 \"$child\" 2>/dev/null; do \
               if ! kill -0 \"$conn\" 2>/dev/null; then \
                 kill -TERM -- -\"$child\" 2>/dev/null; sleep 5; kill -KILL -- -\"$child\" 2>/dev/null; exit 0; \
               fi; sleep 1; done ) </dev/null >/dev/null 2>&1 9>&- & watchdog=$!; \
         fi; \
         wait \"$child\"; rc=$?; [ -n \"${{watchdog:-}}\" ] && kill \"$watchdog\" 2>/dev/null; \
         mv -f \"$f\" {dir}/{name}; exit $rc"
    );
    format!("{sudo}bash -c {}", super::scripts::shell_quote(&program))
}

/// What [`run_command`] reads: the text, a NUL, then the script's input.
fn run_input(text: &str, input: Option<&Secret>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    if let Some(secret) = input {
        bytes.extend_from_slice(secret.expose().as_bytes());
        bytes.push(b'\n');
    }
    bytes
}

/// The command that runs a read-only script's text as one argument of
/// `bash -c` (the remote shell unquotes it; nothing touches the disk).
fn query_command(sudo: &str, text: &str) -> String {
    format!("{sudo}bash -c {}", super::scripts::shell_quote(text))
}

/// A node reached over SSH, with what its scripts are rendered from.
pub struct NodeShell {
    session: Box<dyn Transport>,
    scripts: Arc<Scripts>,
    /// `cluster` and `node` values every script sees.
    context: BTreeMap<String, Value>,
    addresses: Addresses,
    log_path: PathBuf,
    timeout: Duration,
}

impl NodeShell {
    pub fn new(
        session: Box<dyn Transport>,
        scripts: Arc<Scripts>,
        context: BTreeMap<String, Value>,
        addresses: Addresses,
        log_path: PathBuf,
        timeout: Duration,
    ) -> NodeShell {
        NodeShell {
            session,
            scripts,
            context,
            addresses,
            log_path,
            timeout,
        }
    }

    pub fn node(&self) -> &str {
        self.session.node()
    }

    /// The node's address inside the cluster (`node.private_address` in
    /// scripts): what it binds to, advertises, and is joined through.
    pub fn private_address(&self) -> &str {
        &self.addresses.private
    }

    /// Where provision (and the user's clients) reach the node.
    pub fn ssh_address(&self) -> &str {
        &self.addresses.ssh
    }

    /// The addresses its scripts are rendered with.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    pub fn host_key(&self) -> &str {
        self.session.host_key()
    }

    /// Renders `script` with the node's context plus `extra`, copies it to
    /// the node and runs it there; `input` is its standard input.
    pub async fn run(
        &self,
        script: &str,
        extra: &[(&str, Value)],
        input: Option<&Secret>,
        output: Output,
    ) -> Result<String, ShellError> {
        let text = self.render(script, extra)?;
        let stdin = run_input(&text, input);
        self.run_capturing(script, &mut stdin.as_slice(), output)
            .await
    }

    /// [`run`](Self::run) with the file at `input` as the script's standard
    /// input, then a newline: a backup's archive (base64, one line), read
    /// from the disk as it is sent, never held whole.
    pub async fn run_with_file(
        &self,
        script: &str,
        extra: &[(&str, Value)],
        input: &std::path::Path,
        output: Output,
    ) -> Result<String, ShellError> {
        let text = self.render(script, extra)?;
        let file = tokio::fs::File::open(input).await.map_err(|e| {
            ShellError::unreadable(
                self.node(),
                script,
                format!("cannot read its input {}: {e}", input.display()),
            )
        })?;
        let head = run_input(&text, None);
        let mut stdin = head.as_slice().chain(file).chain(&b"\n"[..]);
        self.run_capturing(script, &mut stdin, output).await
    }

    /// Runs backup script `script` and decodes the archive it prints into
    /// `to` as it arrives (see [`ArchiveOutput`](super::archive_output::ArchiveOutput)).
    pub async fn run_archive(
        &self,
        script: &str,
        to: &mut (dyn std::io::Write + Send),
    ) -> Result<super::ArchiveInfo, ShellError> {
        let text = self.render(script, &[])?;
        let stdin = run_input(&text, None);
        let mut archive =
            super::archive_output::ArchiveOutput::new(to, Output::Archive.limit() as u64);
        let code = self
            .run_text(script, &mut stdin.as_slice(), &mut |chunk| {
                archive.take(chunk)
            })
            .await?;
        if archive.stopped() {
            return archive.finish(self.node(), script);
        }
        // A failed script's archive is not read: its exit status says more.
        self.succeeded(script, code, String::new(), Output::Archive)?;
        archive.finish(self.node(), script)
    }

    /// Runs the script whose stored text and input `stdin` reads, its
    /// output kept (up to `output`'s limit) and, for [`Output::Log`], logged.
    async fn run_capturing(
        &self,
        script: &str,
        stdin: &mut (dyn AsyncRead + Send + Unpin),
        output: Output,
    ) -> Result<String, ShellError> {
        let mut log = match output {
            Output::Log => Some(self.open_log(script)?),
            Output::Quiet | Output::Secret | Output::Archive => None,
        };
        let mut capture = Capture::new(output.limit());
        let mut pending = Vec::new();
        let code = self
            .run_text(script, stdin, &mut |chunk| {
                let flow = capture.take(chunk);
                if let Some(f) = log.as_mut() {
                    // Whole lines only, so a token split across chunks is still seen.
                    pending.extend_from_slice(chunk);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let _ = f.write_all(redact(&String::from_utf8_lossy(&line)).as_bytes());
                    }
                }
                flow
            })
            .await?;
        if let (Some(f), false) = (log.as_mut(), pending.is_empty()) {
            let _ = writeln!(f, "{}", redact(&String::from_utf8_lossy(&pending)));
        }
        let out = capture.text(self.node(), script)?;
        if let Some(f) = log.as_mut() {
            let _ = writeln!(f, "=== {script}: exit {code}");
        }
        self.succeeded(script, code, out, output)
    }

    /// Stores and runs a script on the node ([`run_command`]): `stdin` reads
    /// its text, a NUL, then its input; its output goes to `on_output`.
    /// Returns its exit status, within the node's deadline.
    async fn run_text(
        &self,
        script: &str,
        stdin: &mut (dyn AsyncRead + Send + Unpin),
        on_output: &mut (dyn for<'c> FnMut(&'c [u8]) -> std::ops::ControlFlow<()> + Send),
    ) -> Result<u32, ShellError> {
        let name = script.replace('/', "-");
        debug!(node = %self.node(), script, "running script");
        let command = run_command(self.sudo(), REMOTE_DIR, &name, self.timeout);
        let run = self.session.exec(&command, Some(stdin), on_output);
        self.within_timeout(script, run).await
    }

    /// Runs a script that only reads (a probe, a membership listing) as
    /// `bash -c TEXT`: one round trip, and nothing stored on the node, so
    /// an observation (a dry run's too) leaves the node as it was.
    pub async fn query(&self, script: &str) -> Result<String, ShellError> {
        let text = self.render(script, &[])?;
        debug!(node = %self.node(), script, "running query");
        let command = query_command(self.sudo(), &text);
        let mut capture = Capture::new(QUERY_OUTPUT_LIMIT);
        let run = async {
            let code = self
                .session
                .exec(&command, None, &mut |chunk: &[u8]| capture.take(chunk))
                .await?;
            Ok::<_, SshError>(code)
        };
        let started = std::time::Instant::now();
        let code = self.within_timeout(script, run).await?;
        let out = capture.text(self.node(), script)?;
        // With "running query", a timeline shows how long a node took to answer.
        debug!(node = %self.node(), script, code, took = ?started.elapsed(), "query answered");
        self.succeeded(script, code, out, Output::Quiet)
    }

    /// The script's text for this node, with `extra` beside the node's context.
    fn render(&self, script: &str, extra: &[(&str, Value)]) -> Result<String, ShellError> {
        let mut context = self.context.clone();
        for (k, v) in extra {
            context.insert(k.to_string(), v.clone());
        }
        Ok(self.scripts.render(script, &Value::from(context))?)
    }

    /// Scripts run as root; a cloud image's user gets there by sudo.
    fn sudo(&self) -> &'static str {
        if self.session.user() == "root" {
            ""
        } else {
            "sudo -n "
        }
    }

    async fn within_timeout(
        &self,
        script: &str,
        run: impl std::future::Future<Output = Result<u32, SshError>>,
    ) -> Result<u32, ShellError> {
        Ok(tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| ShellError::Timeout {
                node: self.node().to_string(),
                script: script.to_string(),
                after: self.timeout,
            })??)
    }

    /// The output of a script that exited with `code`, or the error naming
    /// it with its last lines (none for output that may hold secrets).
    fn succeeded(
        &self,
        script: &str,
        code: u32,
        out: String,
        output: Output,
    ) -> Result<String, ShellError> {
        if code == 0 {
            return Ok(out);
        }
        let tail = match output {
            Output::Log | Output::Quiet => last_lines(&redact(&out), TAIL_LINES),
            Output::Secret | Output::Archive => Vec::new(),
        };
        Err(ShellError::Failed {
            node: self.node().to_string(),
            script: script.to_string(),
            code,
            tail,
        })
    }

    /// Runs `script` with its output in the node's log, for its effect.
    pub async fn run_logged(
        &self,
        script: &str,
        extra: &[(&str, Value)],
    ) -> Result<(), ShellError> {
        self.run(script, extra, None, Output::Log).await.map(|_| ())
    }

    fn open_log(&self, script: &str) -> Result<std::fs::File, ShellError> {
        let err = |source| ShellError::Log {
            node: self.node().to_string(),
            path: self.log_path.clone(),
            source,
        };
        if let Some(dir) = self.log_path.parent() {
            crate::state::create_private_dir(dir).map_err(err)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.log_path)
            .map_err(err)?;
        writeln!(
            f,
            "=== {script} at {}",
            humantime::format_rfc3339_seconds(SystemTime::now())
        )
        .map_err(err)?;
        Ok(f)
    }

    pub async fn close(self) {
        self.session.close().await
    }
}

/// The value of `key` in a script's `key=value` output lines, trimmed;
/// `None` when the key is absent or its value empty.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Masks join tokens that a tool printed on its own (Swarm `SWMTKN-…`,
/// kubeadm `abcdef.0123456789abcdef`), a second line of defence behind
/// scripts that keep them off their output.
pub fn redact(text: &str) -> String {
    static PATTERN: std::sync::OnceLock<regex_lite::Regex> = std::sync::OnceLock::new();
    let re = PATTERN.get_or_init(|| {
        // Swarm join tokens, kubeadm bootstrap tokens, and 64-hex values
        // (kubeadm certificate keys, CA hashes).
        regex_lite::Regex::new(
            r"SWMTKN-[0-9A-Za-z-]+|\b[a-z0-9]{6}\.[a-z0-9]{16}\b|\b[0-9a-f]{64}\b",
        )
        .expect("valid pattern")
    });
    re.replace_all(text, "<redacted>").into_owned()
}

fn last_lines(text: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_its_limit_stops_the_reading_and_fails_named() {
        let mut capture = Capture::new(10);
        assert!(capture.take(b"12345").is_continue());
        assert!(capture.take(b"67890").is_continue());
        assert!(capture.take(b"x").is_break());
        let err = capture.text("web-worker-1", "swarm/probe.sh").unwrap_err();
        assert!(matches!(err, ShellError::OutputLimit { limit: 10, .. }));
        let text = err.to_string();
        assert!(
            text.contains("web-worker-1") && text.contains("more than 10 bytes"),
            "{text}"
        );
        let mut within = Capture::new(10);
        assert!(within.take(b"0123456789").is_continue());
        assert_eq!(within.text("n", "s").unwrap(), "0123456789");
        // A probe's limit is far below a backup's.
        assert!(QUERY_OUTPUT_LIMIT * 1000 < Output::Archive.limit());
    }

    #[test]
    fn a_query_reaches_bash_as_written() {
        // The remote end runs the command through a shell, as sshd does.
        let text = "#!/bin/bash\nx='it'\"s\"\necho \"$x $((1 + 1))\" 'single'\n";
        let out = std::process::Command::new("sh")
            .args(["-c", &query_command("", text)])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "its 2 single\n");
    }

    #[test]
    fn tokens_are_redacted() {
        let line = "docker swarm join --token SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx 10.0.0.2:2377\n";
        assert_eq!(
            redact(line),
            "docker swarm join --token <redacted> 10.0.0.2:2377\n"
        );
        assert_eq!(
            redact("kubeadm join --token abcdef.0123456789abcdef"),
            "kubeadm join --token <redacted>"
        );
        assert_eq!(redact("nothing secret here"), "nothing secret here");
    }

    /// Runs a command the way the SSH server's shell would, here.
    fn sh_bytes(command: &str, stdin: &[u8]) -> (i32, String) {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .args(["-c", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    const WAIT: Duration = Duration::from_secs(30);

    #[test]
    fn two_runs_on_one_node_never_overlap_and_each_runs_its_own_text() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let dir = dir.path().join("scripts");
        let dir = dir.to_str().unwrap().to_string();
        let script = |who: &str, code: u8| {
            format!(
                "echo start {who} >> {log}\nsleep 0.5\necho end {who} >> {log}\necho {who}\nexit {code}\n",
                log = log.display()
            )
        };
        // Started together: two drains through one manager can be.
        let first = {
            let (dir, text) = (dir.clone(), script("a", 3));
            std::thread::spawn(move || {
                sh_bytes(
                    &run_command("", &dir, "swarm-drain.sh", WAIT),
                    &run_input(&text, None),
                )
            })
        };
        let second = sh_bytes(
            &run_command("", &dir, "swarm-drain.sh", WAIT),
            &run_input(&script("b", 0), None),
        );
        assert_eq!(second, (0, "b\n".into()));
        assert_eq!(first.join().unwrap(), (3, "a\n".into()));
        let order = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = order.lines().collect();
        assert!(
            lines == ["start a", "end a", "start b", "end b"]
                || lines == ["start b", "end b", "start a", "end a"],
            "{order}"
        );
        // The last run is kept under the script's name, beside the lock.
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".lock", "swarm-drain.sh"]);
    }

    #[test]
    fn a_run_that_waits_past_its_deadline_for_the_node_s_lock_does_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("scripts");
        std::fs::create_dir_all(&dir).unwrap();
        let lock = dir.join(".lock");
        let mut holder = std::process::Command::new("flock")
            .arg(&lock)
            .args(["sleep", "5"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let (code, _) = sh_bytes(
            &run_command("", dir.to_str().unwrap(), "a.sh", Duration::from_secs(1)),
            &run_input("echo ran\n", None),
        );
        assert_eq!(code, 124);
        holder.kill().unwrap();
        holder.wait().unwrap();
    }

    /// The processes whose command line holds `marker`.
    fn processes_with(marker: &str) -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmd| String::from_utf8_lossy(cmd).contains(marker))
            .count()
    }

    /// A script whose SSH connection goes (here: the process named sshd
    /// that started it, killed) is stopped, with what it started.
    #[test]
    fn a_script_whose_connection_is_gone_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let fake_sshd = dir.path().join("sshd");
        std::fs::copy("/bin/bash", &fake_sshd).unwrap();
        let scripts = dir.path().join("scripts");
        let marker = format!("31.{}", std::process::id());
        let command = run_command("", scripts.to_str().unwrap(), "long.sh", WAIT);
        let mut sshd = std::process::Command::new(&fake_sshd)
            // `; true`: bash must not exec the command in its own place.
            .args(["-c", &format!("{command}; true")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let text = format!("sleep {marker} & sleep {marker}\n");
        use std::io::Write;
        let mut stdin = sshd.stdin.take().unwrap();
        stdin.write_all(&run_input(&text, None)).unwrap();
        drop(stdin);
        let started = std::time::Instant::now();
        while processes_with(&marker) < 2 {
            assert!(started.elapsed() < Duration::from_secs(10), "never started");
            std::thread::sleep(Duration::from_millis(100));
        }
        sshd.kill().unwrap();
        sshd.wait().unwrap();
        let killed = std::time::Instant::now();
        while processes_with(&marker) > 0 {
            assert!(
                killed.elapsed() < Duration::from_secs(10),
                "the script outlived its connection"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn a_script_reads_its_input_and_only_its_text_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("scripts");
        let dir = dir.to_str().unwrap();
        // Quotes, backslashes, a line with no end and trailing blank lines
        // are stored as they are.
        let text = "IFS= read -r token\necho \"got ${#token} chars: \\$x 'q'\"\n\n\nprintf end";
        let secret = Secret::new("SWMTKN-1-abc def".to_string());
        let (code, out) = sh_bytes(
            &run_command("", dir, "swarm-join.sh", WAIT),
            &run_input(text, Some(&secret)),
        );
        // bash's own reading of `\\$x` in double quotes: the stored text is exact.
        assert_eq!((code, out.as_str()), (0, "got 16 chars: $x 'q'\nend"));
        let stored = std::fs::read_to_string(format!("{dir}/swarm-join.sh")).unwrap();
        assert_eq!(stored, text);
        assert!(!stored.contains("SWMTKN"));
    }

    #[test]
    fn a_script_the_node_cannot_store_fails_saying_so() {
        let (code, _) = sh_bytes(
            &run_command("", "/proc/provision-cannot-be-made", "a.sh", WAIT),
            &run_input("echo ran\n", None),
        );
        assert_eq!(code, 125);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = last_lines(&text, 20);
        assert_eq!(tail.len(), 20);
        assert_eq!(tail[0], "line 11");
        assert_eq!(tail[19], "line 30");
    }

    #[test]
    fn failure_names_node_script_code_and_tail() {
        let e = ShellError::Failed {
            node: "web-worker-1".into(),
            script: "swarm/join.sh".into(),
            code: 1,
            tail: vec!["Error response from daemon".into()],
        };
        let text = e.to_string();
        assert!(
            text.contains("web-worker-1")
                && text.contains("swarm/join.sh")
                && text.contains("status 1")
        );
        assert!(text.contains("Error response from daemon"));
    }
}
