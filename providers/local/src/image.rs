//! The node image: built on first use with the same script users can run by
//! hand (`scripts/node-image/build.sh`).

use std::process::Stdio;

use bollard::Docker;
use provision_provider::ProviderError;

/// Receives progress lines of the image build.
pub type ProgressFn<'a> = &'a (dyn Fn(&str) + Send + Sync);
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::engine::{call_error, is_not_found, CLOUD};

/// The build script, shipped inside the binary.
pub const NODE_IMAGE_SCRIPT: &str = include_str!("../../../scripts/node-image/build.sh");

/// The label the build script puts on the image, with its format.
const FORMAT_LABEL: &str = "org.provision.node-image";

/// The format the shipped build script makes (its `version=`; a test keeps
/// the two equal).
pub const NODE_IMAGE_VERSION: u32 = 2;

/// Builds `image` from Debian `suite` unless the engine already has it. An
/// image an older build script made still works: it is used, with a note
/// saying how to rebuild it (that takes minutes, so not unasked).
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    suite: &str,
    progress: ProgressFn<'_>,
) -> Result<(), ProviderError> {
    match docker.inspect_image(image).await {
        Ok(found) => {
            let label = found
                .config
                .and_then(|c| c.labels)
                .and_then(|mut l| l.remove(FORMAT_LABEL));
            if let Some(note) = older_format_note(image, label.as_deref()) {
                progress(&note);
            }
            return Ok(());
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(call_error(format!("inspect image {image}"), e)),
    }
    check_build_tools()?;
    progress(&format!(
        "node image {image} not found: building it from Debian {suite} (takes a few minutes, once)"
    ));
    let mut child = Command::new("bash")
        .arg("-s")
        .arg("--")
        .arg(image)
        .arg(suite)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| build_failed(format!("cannot run bash: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(NODE_IMAGE_SCRIPT.as_bytes())
        .await
        .map_err(|e| build_failed(format!("cannot pass the build script to bash: {e}")))?;
    drop(stdin);

    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let err_task = tokio::spawn(async move {
        let mut tail: Vec<String> = Vec::new();
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
        tail
    });
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        // debootstrap prints a line per package; pass on only our steps and its main stages.
        if let Some(step) = line.strip_prefix("step: ") {
            progress(&format!("node image: {step}"));
        } else if line.starts_with("I: Installing core")
            || line.starts_with("I: Base system installed")
        {
            progress(&format!("node image: {}", line.trim_start_matches("I: ")));
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| build_failed(format!("waiting for the build: {e}")))?;
    let tail = err_task.await.unwrap_or_default();
    if !status.success() {
        return Err(build_failed(format!(
            "the build script exited with {status}; last lines:\n{}",
            tail.join("\n")
        )));
    }
    Ok(())
}

/// What to tell a user whose image an older build script made; `None` for
/// a current one and for an image not built by it (no numeric label).
fn older_format_note(image: &str, label: Option<&str>) -> Option<String> {
    let format: u32 = label?.trim().parse().ok()?;
    (format < NODE_IMAGE_VERSION).then(|| {
        format!(
            "node image {image} was built by an older build script (format {format}, now \
             {NODE_IMAGE_VERSION}: Ed25519 host key only, nodes boot faster); using it. To \
             rebuild it: docker rmi {image}, then scripts/node-image/build.sh {image} (or let \
             the next create build it)"
        )
    })
}

fn check_build_tools() -> Result<(), ProviderError> {
    for (tool, package) in [("debootstrap", "debootstrap"), ("docker", "docker.io")] {
        if !on_path(tool) {
            return Err(ProviderError::Unavailable {
                cloud: CLOUD,
                message: format!("building the node image needs `{tool}`, which is not installed"),
                hint: format!(
                    "install it (`apt-get install {package}`), or build the image elsewhere with \
                     scripts/node-image/build.sh and load it"
                ),
            });
        }
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn build_failed(message: String) -> ProviderError {
    ProviderError::Call {
        cloud: CLOUD,
        call: "build node image".into(),
        message,
        retryable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_one_the_build_script_writes() {
        let line = NODE_IMAGE_SCRIPT
            .lines()
            .find_map(|l| l.strip_prefix("version="))
            .expect("build.sh sets version=");
        assert_eq!(line.parse::<u32>().unwrap(), NODE_IMAGE_VERSION);
        assert!(NODE_IMAGE_SCRIPT.contains(&format!("LABEL {FORMAT_LABEL}=$version")));
    }

    #[test]
    fn an_image_from_an_older_script_gets_a_note_others_do_not() {
        let note = older_format_note("provision/node:bookworm", Some("1")).unwrap();
        assert!(note.contains("format 1"), "{note}");
        assert!(note.contains("scripts/node-image/build.sh provision/node:bookworm"));
        let current = NODE_IMAGE_VERSION.to_string();
        assert_eq!(older_format_note("i", Some(&current)), None);
        assert_eq!(older_format_note("i", Some("99")), None);
        // Not ours: a user's own image, or a label that is not a format.
        assert_eq!(older_format_note("i", None), None);
        assert_eq!(older_format_note("i", Some("yes")), None);
    }
}
