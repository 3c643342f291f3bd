//! Showing progress: a live line per node on a terminal, plain log lines
//! otherwise.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::info;

use crate::state::NodePhase;

/// Receives node phase changes and notes from the controller.
pub trait Reporter: Send + Sync {
    fn phase(&self, node: &str, phase: NodePhase);
    fn note(&self, message: &str);
    /// Ends live output so the summary prints cleanly.
    fn finish(&self);
}

/// Picks the live display when stderr is a terminal, log lines otherwise.
pub fn for_stderr() -> Arc<dyn Reporter> {
    if std::io::stderr().is_terminal() {
        Arc::new(LiveReporter::new())
    } else {
        Arc::new(LogReporter)
    }
}

/// One `tracing` line per change: for CI logs, pipes and the daemon.
pub struct LogReporter;

impl Reporter for LogReporter {
    fn phase(&self, node: &str, phase: NodePhase) {
        info!(node, phase = phase.as_str(), "node phase");
    }

    fn note(&self, message: &str) {
        info!("{message}");
    }

    fn finish(&self) {}
}

/// A spinner line per node with its phase and elapsed time.
pub struct LiveReporter {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl LiveReporter {
    pub fn new() -> LiveReporter {
        LiveReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn style(done: bool) -> ProgressStyle {
        let template = if done {
            "  {prefix:28} {msg:12} {elapsed:>5}"
        } else {
            "{spinner} {prefix:28} {msg:12} {elapsed:>5}"
        };
        ProgressStyle::with_template(template).expect("the template is valid")
    }
}

impl Default for LiveReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl Reporter for LiveReporter {
    fn phase(&self, node: &str, phase: NodePhase) {
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        let bar = bars.entry(node.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(Self::style(false));
            bar.set_prefix(node.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if matches!(phase, NodePhase::Ready | NodePhase::Failed) {
            // Freezes the elapsed time at the moment the node got there.
            bar.set_style(Self::style(true));
            bar.disable_steady_tick();
            bar.finish_with_message(phase.as_str());
        } else {
            if bar.is_finished() {
                // Back to work (a retry): a fresh line and clock.
                bar.reset();
                bar.set_style(Self::style(false));
                bar.enable_steady_tick(Duration::from_millis(120));
            }
            bar.set_message(phase.as_str());
        }
    }

    fn note(&self, message: &str) {
        let _ = self.multi.println(message);
    }

    fn finish(&self) {
        let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        for bar in bars.values() {
            bar.disable_steady_tick();
            bar.abandon();
        }
    }
}
