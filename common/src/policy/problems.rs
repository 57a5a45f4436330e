//! How a policy's problems are reported: each mistake located by line and
//! column, the first hundred written out and the rest counted, and the
//! warnings `check-config` gives about rules a workload can satisfy itself.

use super::Policy;

impl Policy {
    /// What `check-config` warns about: every `[[allow]]` rule, and every
    /// `[[rules]]` entry that gives a less strict environment than the default
    /// or lets the annotation choose a looser one, whose selector a workload can
    /// satisfy by annotating itself on some stack. One line per rule.
    pub fn workload_settable_warnings(&self) -> Vec<String> {
        let (_, default) = match self.environment(&self.default_environment) {
            Ok(found) => found,
            Err(_) => return Vec::new(),
        };
        let mut warnings = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let Ok((_, env)) = self.environment(rule.environment.get_ref()) else {
                continue;
            };
            let loosens = env.strictness() < default.strictness()
                || rule.annotation_may_choose.iter().any(|name| {
                    self.environment(name.get_ref())
                        .is_ok_and(|(_, chosen)| chosen.strictness() < env.strictness())
                });
            if let Some(exposure) = loosens.then(|| rule.selector.workload_exposure()).flatten() {
                warnings.push(format!(
                    "rule {} (environment {:?}) loosens enforcement and {exposure}",
                    index + 1,
                    rule.environment.get_ref()
                ));
            }
        }
        for (index, rule) in self.allow.iter().enumerate() {
            let Some(exposure) = rule.selector.workload_exposure() else {
                continue;
            };
            warnings.push(format!(
                "allow rule {} ({:?}) lets sniffers run and {exposure}",
                index + 1,
                rule.reason
            ));
        }
        warnings
    }
}

/// Problems written out in one error; the rest are counted.
const MAX_PROBLEMS: usize = 100;

/// The problems found in a policy: the first [`MAX_PROBLEMS`] written out,
/// the rest only counted.
#[derive(Default)]
pub(super) struct Problems {
    shown: Vec<String>,
    more: usize,
}

impl Problems {
    /// One more problem; `describe` (which may search the text for its place)
    /// runs only if it is among the first [`MAX_PROBLEMS`].
    pub(super) fn add(&mut self, describe: impl FnOnce() -> String) {
        if self.shown.len() < MAX_PROBLEMS {
            self.shown.push(describe());
        } else {
            self.more += 1;
        }
    }

    /// Every problem written out, one per line; `None` without any.
    pub(super) fn message(self) -> Option<String> {
        if self.shown.is_empty() {
            return None;
        }
        let mut message = self.shown.join("\n  ");
        if self.more > 0 {
            message.push_str(&format!("\n  … and {} more", self.more));
        }
        Some(message)
    }
}

/// Where each line of a text starts, so that a byte offset's line and column
/// cost a binary search rather than a scan of the text before it.
pub(super) struct LineIndex {
    /// Byte offset of each line's first byte; the first is 0.
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> LineIndex {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// 1-based line and column (in bytes) of byte `offset`.
    pub(super) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        // The number of lines starting at or before `offset`: at least 1, as the
        // first starts at 0.
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        (line.max(1), offset - start + 1)
    }
}

/// Where `needle` first appears, for errors about values the parser does not
/// give spans for.
pub(super) fn find(text: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    text.find(needle).map(|at| at..at + needle.len())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_located_by_line_and_capped() {
        let index = LineIndex::new("ab\ncd\n\nef");
        assert_eq!(index.line_column(0), (1, 1));
        assert_eq!(index.line_column(2), (1, 3));
        assert_eq!(index.line_column(3), (2, 1));
        assert_eq!(index.line_column(6), (3, 1));
        assert_eq!(index.line_column(8), (4, 2));
        assert_eq!(index.line_column(100), (4, 3));
        assert_eq!(LineIndex::new("").line_column(0), (1, 1));

        // Thousands of bad names: the first MAX_PROBLEMS are written out, each
        // with its place, and the rest counted.
        let names: Vec<String> = (0..5000).map(|i| format!("\"/{i}\"")).collect();
        let text = format!(
            "default_environment = \"ci\"\n[environments.ci]\nmode = \"audit\"\n\
             [catalogue]\nnames = [\n{}\n]\n",
            names.join(",\n")
        );
        let err = Policy::parse(&text, "t").unwrap_err().to_string();
        assert_eq!(err.matches("catalogue name").count(), MAX_PROBLEMS, "{err}");
        assert!(
            err.contains("line 6, column 1: catalogue name \"/0\""),
            "{err}"
        );
        assert!(
            err.contains("line 105, column 1: catalogue name \"/99\""),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("… and {} more", 5000 - MAX_PROBLEMS)),
            "{err}"
        );
    }
}
