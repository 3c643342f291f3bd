//! A value that must never reach a log, an error or the terminal.

use std::fmt;

/// Join tokens, passwords and other secrets. `Debug` and `Display` print a
/// placeholder; only [`Secret::expose`] gives the value, to the one place
/// that sends it on.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("SWMTKN-1-abc");
        assert!(!format!("{s:?} {s}").contains("SWMTKN"));
        assert_eq!(s.expose(), "SWMTKN-1-abc");
    }
}
