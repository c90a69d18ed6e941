//! The one way this program colours text for a terminal (anstyle): the
//! plan, the run's live view and the CLI's messages all paint through it,
//! and paint nothing when colour is off.

use anstyle::{AnsiColor, Style};

/// Colours text, or leaves it plain when `color` is false.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    pub color: bool,
}

impl Paint {
    pub fn new(color: bool) -> Self {
        Self { color }
    }

    pub fn paint(&self, style: Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint(Style::new().dimmed(), text)
    }

    pub fn fg(&self, color: AnsiColor, text: &str) -> String {
        self.paint(Style::new().fg_color(Some(color.into())), text)
    }

    pub fn bold_fg(&self, color: AnsiColor, text: &str) -> String {
        self.paint(Style::new().bold().fg_color(Some(color.into())), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paints_only_with_colour() {
        assert_eq!(Paint::new(false).bold_fg(AnsiColor::Red, "x"), "x");
        assert_eq!(Paint::new(true).fg(AnsiColor::Green, "ok"), "\x1b[32mok\x1b[0m");
        assert_eq!(
            Paint::new(true).bold_fg(AnsiColor::Red, "no"),
            "\x1b[1m\x1b[31mno\x1b[0m"
        );
    }
}
