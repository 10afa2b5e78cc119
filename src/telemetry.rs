//! Logging set-up: `tracing` with an env filter, as text or JSON lines.

use crate::settings::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.filter`. Calling it
/// again (as tests do) keeps the first subscriber.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // Colours only for a person at a terminal, not in a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        // One event is one line: a value that carries a newline (an error quoting what a
        // client sent, say) cannot start a line of its own that looks like another event.
        LogFormat::Text => builder
            .fmt_fields(
                tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
                    let raw = format!("{value:?}");
                    let value = escape_controls(&raw);
                    match field.name() {
                        "message" => w.write_str(&value),
                        name => write!(w, "{name}={value}"),
                    }
                })
                .delimited(" "),
            )
            .try_init(),
    };
}

/// `text` with every control character written as an escape (`\n`, `\u{1b}`), so that it
/// stays on one line and cannot drive a terminal.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape_controls("plain café ✈"), "plain café ✈");
        assert_eq!(
            escape_controls("a\nINFO forged\r\x1b[31m\u{85}"),
            "a\\nINFO forged\\r\\u{1b}[31m\\u{85}"
        );
    }
}
