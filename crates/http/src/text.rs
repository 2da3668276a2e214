//! Text fields: one [`Rule`] per kind of text, which the services check and their OpenAPI
//! documents declare from the same constants, so that what a client may send is exactly
//! what the document says (schemathesis proves it in CI).
//!
//! A rule counts characters as sent (JSON Schema's `minLength` and `maxLength` count code
//! points, as Rust's `chars` does), refuses control characters (PostgreSQL cannot store
//! NUL; a line of text has no line breaks), and, when text is required, asks for one
//! character that is not white space. Services then store the text trimmed.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// What characters a kind of text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One line: no control characters at all.
    Line,
    /// Paragraphs: tabs and line breaks, no other control characters.
    Paragraphs,
}

/// The rule of one kind of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub min: usize,
    pub max: usize,
    pub shape: Shape,
}

/// White space as Rust's `char::is_whitespace` knows it (Unicode `White_Space`), less the
/// control characters, which no text may hold anyway.
const SPACE: &str = r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

impl Rule {
    /// One line of `min` to `max` characters.
    pub const fn line(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            shape: Shape::Line,
        }
    }

    /// Paragraphs of `min` to `max` characters.
    pub const fn paragraphs(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            shape: Shape::Paragraphs,
        }
    }

    fn allowed(self, c: char) -> bool {
        match self.shape {
            Shape::Line => !c.is_control(),
            Shape::Paragraphs => !c.is_control() || matches!(c, '\t' | '\n' | '\r'),
        }
    }

    /// Checks `text`; the error says what a person should change.
    pub fn check(self, text: &str) -> Result<(), String> {
        let length = text.chars().count();
        if length > self.max || length < self.min {
            return Err(match (self.min, self.max) {
                (0, max) => format!("must be at most {max} characters"),
                (min, max) => format!("must be {min} to {max} characters"),
            });
        }
        if !text.chars().all(|c| self.allowed(c)) {
            return Err(match self.shape {
                Shape::Line => "must be one line, without control characters".to_owned(),
                Shape::Paragraphs => "must not contain control characters".to_owned(),
            });
        }
        if self.min > 0 && text.trim().is_empty() {
            return Err("must not be blank".to_owned());
        }
        Ok(())
    }

    /// The ECMA-262 pattern of [`Rule::check`]'s character rules.
    pub fn pattern(self) -> String {
        let allowed = match self.shape {
            Shape::Line => r"[^\u0000-\u001f\u007f-\u009f]".to_owned(),
            Shape::Paragraphs => {
                r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]".to_owned()
            }
        };
        if self.min == 0 {
            format!("^{allowed}*$")
        } else {
            let visible = format!(r"[^\u0000-\u001f\u007f-\u009f{SPACE}]");
            format!("^{allowed}*{visible}{allowed}*$")
        }
    }

    /// The rule as a JSON Schema.
    pub fn schema(self, description: &str) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(self.min))
            .max_length(Some(self.max))
            .pattern(Some(self.pattern()))
            .description(Some(description))
            .into()
    }
}

/// Declares a kind of text: a type whose OpenAPI schema is `rule` (for `#[schema(value_type
/// = Name)]` on a field) and whose `RULE` checks it.
#[macro_export]
macro_rules! text_kind {
    ($(#[$doc:meta])* $name:ident = $rule:expr, $description:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl $name {
            pub const RULE: $crate::text::Rule = $rule;

            /// Checks `text` against the rule.
            pub fn check(text: &str) -> Result<(), String> {
                Self::RULE.check(text)
            }
        }

        impl $crate::utoipa::PartialSchema for $name {
            fn schema() -> $crate::utoipa::openapi::RefOr<$crate::utoipa::openapi::schema::Schema> {
                Self::RULE.schema($description)
            }
        }

        impl $crate::utoipa::ToSchema for $name {}
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pattern, compiled by another regex engine (Rust's `regex`, which reads the same
    /// `\uXXXX` escapes), says what `check` says.
    fn agrees(rule: Rule, samples: &[&str]) {
        let pattern = rule.pattern();
        let regex = regex::Regex::new(&pattern).expect("the pattern compiles");
        for sample in samples {
            let length = sample.chars().count();
            let by_schema = regex.is_match(sample) && (rule.min..=rule.max).contains(&length);
            assert_eq!(
                by_schema,
                rule.check(sample).is_ok(),
                "{rule:?} on {sample:?} ({pattern})"
            );
        }
    }

    const SAMPLES: &[&str] = &[
        "",
        " ",
        "   ",
        "\u{3000}",
        "\u{a0}",
        "Ada",
        " Ada ",
        "Zoë O'Brien-Łukasz",
        "a\nb",
        "a\tb",
        "a\u{0}b",
        "\u{85}",
        "a\u{7f}",
        "\u{feff}",
        "\u{200b}",
        "日本語",
        "x",
    ];

    #[test]
    fn the_pattern_and_the_check_agree_on_every_kind_of_text() {
        for rule in [
            Rule::line(1, 5),
            Rule::line(0, 5),
            Rule::paragraphs(1, 5),
            Rule::paragraphs(0, 5),
        ] {
            agrees(rule, SAMPLES);
        }
    }

    #[test]
    fn a_required_text_needs_something_visible_and_lengths_count_characters() {
        let rule = Rule::line(1, 3);
        assert!(rule.check("  ").is_err());
        assert!(rule.check("日本語").is_ok());
        assert!(rule.check("日本語!").is_err());
        assert!(Rule::paragraphs(1, 10).check("a\nb").is_ok());
        assert!(rule.check("a\nb").is_err());
    }
}
