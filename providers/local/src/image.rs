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

/// Builds `image` from Debian `suite` unless the engine already has it.
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    suite: &str,
    progress: ProgressFn<'_>,
) -> Result<(), ProviderError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
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
