//! Text analysis at query time: the words of a query (plain form, stem, typo allowance,
//! prefix) and the highlighting of titles and descriptions with the same matching rules.

use std::collections::HashMap;

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

use crate::schema;

/// Words of a query beyond this many are ignored (each word costs several term lookups).
const MAX_WORDS: usize = 10;

/// One word of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryWord {
    /// Lower-cased and accent-folded.
    pub plain: String,
    /// The English stem.
    pub stem: String,
    /// Edits allowed for a typo match: 0 below 4 characters, 1 up to 7, 2 from 8.
    pub distance: u8,
    /// Whether the word also matches as the start of a word (the last word of a query).
    pub prefix: bool,
}

/// The analyzers of the schema, for query words and highlighting.
pub(crate) struct Analyzers {
    stemmed: TextAnalyzer,
    plain: TextAnalyzer,
}

impl Analyzers {
    pub(crate) fn new() -> Self {
        Self {
            stemmed: schema::stemmed_analyzer(),
            plain: schema::plain_analyzer(),
        }
    }

    /// The words of `q`, stop words left out; the last one is a prefix when it has at least
    /// `prefix_min_chars` characters.
    pub(crate) fn words(&mut self, q: &str, prefix_min_chars: usize) -> Vec<QueryWord> {
        let mut plain_words = Vec::new();
        self.plain
            .token_stream(q)
            .process(&mut |t| plain_words.push(t.text.clone()));
        let mut words: Vec<QueryWord> = plain_words
            .into_iter()
            .filter_map(|plain| {
                let stem = self.stem(&plain)?;
                let chars = plain.chars().count();
                let distance = match chars {
                    0..=3 => 0,
                    4..=7 => 1,
                    _ => 2,
                };
                Some(QueryWord {
                    plain,
                    stem,
                    distance,
                    prefix: false,
                })
            })
            .take(MAX_WORDS)
            .collect();
        if let Some(last) = words.last_mut() {
            last.prefix = last.plain.chars().count() >= prefix_min_chars;
        }
        words
    }

    /// The stem of one plain word; `None` for a stop word.
    fn stem(&mut self, word: &str) -> Option<String> {
        let mut stream = self.stemmed.token_stream(word);
        stream.advance().then(|| stream.token().text.clone())
    }

    /// `text` HTML-escaped with every word matching one of `words` in `<em>`…`</em>`. With a
    /// `window`, only about that many characters around the first match are kept, cut at word
    /// boundaries and marked with `…`.
    pub(crate) fn highlight(
        &mut self,
        text: &str,
        words: &[QueryWord],
        window: Option<usize>,
    ) -> String {
        let mut stems: HashMap<usize, String> = HashMap::new();
        self.stemmed.token_stream(text).process(&mut |t| {
            stems.insert(t.offset_from, t.text.clone());
        });
        let mut matches: Vec<(usize, usize)> = Vec::new();
        self.plain.token_stream(text).process(&mut |t| {
            let stem = stems.get(&t.offset_from).map(String::as_str);
            if words.iter().any(|w| word_matches(w, &t.text, stem)) {
                matches.push((t.offset_from, t.offset_to));
            }
        });

        let (start, end) = match window {
            Some(chars) => cut(text, matches.first().map_or(0, |m| m.0), chars),
            None => (0, text.len()),
        };
        let mut out = String::with_capacity(end - start + 16);
        if start > 0 {
            out.push('…');
        }
        let mut at = start;
        for (from, to) in matches {
            if from < at || to > end {
                continue;
            }
            escape_into(&mut out, &text[at..from]);
            out.push_str("<em>");
            escape_into(&mut out, &text[from..to]);
            out.push_str("</em>");
            at = to;
        }
        escape_into(&mut out, &text[at..end]);
        if end < text.len() {
            out.push('…');
        }
        out
    }
}

/// Whether a word of the text (plain form and stem) matches a query word: same stem, same
/// word, within the typo allowance, or starting with a prefix word.
fn word_matches(w: &QueryWord, plain: &str, stem: Option<&str>) -> bool {
    stem == Some(w.stem.as_str())
        || plain == w.plain
        || (w.distance > 0 && edit_distance_within(plain, &w.plain, usize::from(w.distance)))
        || (w.prefix && plain.starts_with(&w.plain))
}

/// Whether the edit distance between `a` and `b` is at most `max`, counting an insertion, a
/// deletion, a substitution or a transposition of two neighbours as one edit (optimal string
/// alignment), as the index's typo matching does.
pub(crate) fn edit_distance_within(a: &str, b: &str, max: usize) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return false;
    }
    // Three rows of the dynamic-programming table: two back, one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()] <= max
}

/// Byte range of about `chars` characters of `text` around byte `anchor`, starting a little
/// before it, both ends moved to word boundaries when there is one nearby.
fn cut(text: &str, anchor: usize, chars: usize) -> (usize, usize) {
    if text.chars().count() <= chars {
        return (0, text.len());
    }
    let lead = chars / 4;
    let anchor_char = text[..anchor].chars().count();
    let start_char = anchor_char.saturating_sub(lead);
    let byte_of = |n: usize| text.char_indices().nth(n).map_or(text.len(), |(b, _)| b);
    let mut start = byte_of(start_char);
    let mut end = byte_of(start_char + chars);
    if start > 0 {
        // Begin at the first word that starts before the anchor.
        if let Some(space) = text[start..anchor].find(char::is_whitespace) {
            start += space;
            start += text[start..]
                .find(|c: char| !c.is_whitespace())
                .unwrap_or(0);
        }
    }
    if end < text.len() {
        // End after the last whole word.
        if let Some(space) = text[anchor.max(start)..end].rfind(char::is_whitespace) {
            end = anchor.max(start) + space;
        }
    }
    (start, end)
}

/// Appends `text` with `& < > " '` escaped.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_are_folded_stemmed_and_the_last_is_a_prefix() {
        let mut a = Analyzers::new();
        let words = a.words("Linen SHIRTS for the Café", 2);
        let plain: Vec<_> = words.iter().map(|w| w.plain.as_str()).collect();
        assert_eq!(plain, ["linen", "shirts", "cafe"]);
        assert_eq!(words[1].stem, "shirt");
        assert_eq!(words[0].distance, 1);
        assert!(!words[0].prefix);
        assert!(words[2].prefix);
    }

    #[test]
    fn typo_allowance_grows_with_word_length() {
        let mut a = Analyzers::new();
        let words = a.words("cap linen waterproof", 2);
        let distances: Vec<_> = words.iter().map(|w| w.distance).collect();
        assert_eq!(distances, [0, 1, 2]);
    }

    #[test]
    fn edit_distance_counts_a_transposition_as_one() {
        assert!(edit_distance_within("shrit", "shirt", 1));
        assert!(edit_distance_within("linnen", "linen", 1));
        assert!(!edit_distance_within("linnnen", "linen", 1));
        assert!(edit_distance_within("waterprof", "waterproof", 2));
        assert!(!edit_distance_within("abcd", "wxyz", 2));
    }

    #[test]
    fn highlighting_escapes_the_text_and_marks_matches() {
        let mut a = Analyzers::new();
        let words = a.words("shrit", 2);
        let html = a.highlight("<script>alert('x')</script> Shirt & tie", &words, None);
        assert_eq!(
            html,
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; <em>Shirt</em> &amp; tie"
        );
    }

    #[test]
    fn a_long_text_is_cut_around_the_first_match() {
        let mut a = Analyzers::new();
        let words = a.words("linen", 2);
        let text = format!(
            "{} made of linen {}",
            "word ".repeat(100),
            "more ".repeat(100)
        );
        let html = a.highlight(&text, &words, Some(80));
        assert!(html.starts_with('…') && html.ends_with('…'), "{html}");
        assert!(html.contains("<em>linen</em>"), "{html}");
        assert!(html.chars().count() <= 100, "{html}");
    }
}
