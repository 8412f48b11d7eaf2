//! The chat's wire format.
//!
//! There is no framing: one datagram is one message. A client sends its heartbeat word to say
//! "I am still here", its quit word to leave, and anything else is chat text that the server
//! relays to every other client (with [`DEFAULT_PREFIX`] in front). Because a person may drive a
//! client from `nc -u`, which sends the line terminator too, a control word followed by exactly one
//! `"\n"` or `"\r\n"` still counts as that word.

use std::error::Error;
use std::fmt;
use std::fmt::Write as _;

/// The largest UDP payload that fits in one IPv4 datagram: 65535 - 20 (IP header) - 8 (UDP header).
pub const UDP_MAX_PAYLOAD: usize = 65507;

/// The heartbeat word used when none is configured.
pub const DEFAULT_HEARTBEAT: &[u8] = b"HB";

/// The quit word used when none is configured.
pub const DEFAULT_QUIT: &[u8] = b"quit";

/// The bytes the server puts in front of relayed chat text, matching the Python tutorial.
pub const DEFAULT_PREFIX: &[u8] = b"ACK";

/// The two control words of the chat.
///
/// The fields are public for convenience; [`Message::parse`] never panics whatever they hold, but
/// only words built by [`Words::new`] are guaranteed to classify unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Words {
    /// A datagram holding only this word refreshes the sender's membership.
    pub heartbeat: Vec<u8>,
    /// A datagram holding only this word removes the sender from the chat.
    pub quit: Vec<u8>,
}

impl Default for Words {
    fn default() -> Self {
        Words {
            heartbeat: DEFAULT_HEARTBEAT.to_vec(),
            quit: DEFAULT_QUIT.to_vec(),
        }
    }
}

impl Words {
    /// Checks and builds a pair of control words.
    ///
    /// A word must be non-empty (an empty datagram is its own kind of message), the two words must
    /// differ, and neither may end in `\n` or `\r`: otherwise `word + "\n"` could be read both as
    /// a word and as a longer word, since one trailing line terminator is ignored.
    pub fn new(
        heartbeat: impl Into<Vec<u8>>,
        quit: impl Into<Vec<u8>>,
    ) -> Result<Words, WordsError> {
        let heartbeat = heartbeat.into();
        let quit = quit.into();
        if heartbeat.is_empty() {
            return Err(WordsError::EmptyHeartbeat);
        }
        if quit.is_empty() {
            return Err(WordsError::EmptyQuit);
        }
        if ends_in_line_break(&heartbeat) {
            return Err(WordsError::HeartbeatEndsInLineBreak);
        }
        if ends_in_line_break(&quit) {
            return Err(WordsError::QuitEndsInLineBreak);
        }
        if heartbeat == quit {
            return Err(WordsError::SameWords);
        }
        Ok(Words { heartbeat, quit })
    }
}

fn ends_in_line_break(word: &[u8]) -> bool {
    matches!(word.last(), Some(b'\n' | b'\r'))
}

/// Why [`Words::new`] refused a pair of control words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WordsError {
    /// The heartbeat word was empty.
    EmptyHeartbeat,
    /// The quit word was empty.
    EmptyQuit,
    /// The heartbeat word and the quit word were equal.
    SameWords,
    /// The heartbeat word ended in `\n` or `\r`.
    HeartbeatEndsInLineBreak,
    /// The quit word ended in `\n` or `\r`.
    QuitEndsInLineBreak,
}

impl fmt::Display for WordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordsError::EmptyHeartbeat => "heartbeat word must not be empty",
            WordsError::EmptyQuit => "quit word must not be empty",
            WordsError::SameWords => "heartbeat and quit words must differ",
            WordsError::HeartbeatEndsInLineBreak => "heartbeat word must not end in '\\n' or '\\r'",
            WordsError::QuitEndsInLineBreak => "quit word must not end in '\\n' or '\\r'",
        })
    }
}

impl Error for WordsError {}

/// What one received datagram means to the chat.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Message<'a> {
    /// A zero-length datagram.
    Empty,
    /// The heartbeat word, alone or followed by one line terminator.
    Heartbeat,
    /// The quit word, alone or followed by one line terminator.
    Quit,
    /// Anything else: the whole datagram, byte for byte, to relay.
    Chat(&'a [u8]),
}

impl<'a> Message<'a> {
    /// Classifies one datagram without allocating.
    ///
    /// Only a single trailing `"\n"` or `"\r\n"` is forgiven; any other extra byte (`b"HB "`,
    /// `b"HB\n\n"`, `b"HB\r"`) makes the datagram chat text, returned unchanged.
    #[inline]
    pub fn parse(data: &'a [u8], words: &Words) -> Message<'a> {
        if data.is_empty() {
            return Message::Empty;
        }
        let hb = words.heartbeat.as_slice();
        let quit = words.quit.as_slice();
        // Exact matches first, so that words built without Words::new still match themselves.
        if data == hb {
            return Message::Heartbeat;
        }
        if data == quit {
            return Message::Quit;
        }
        let body = data
            .strip_suffix(b"\r\n")
            .or_else(|| data.strip_suffix(b"\n"));
        match body {
            Some(body) if body == hb => Message::Heartbeat,
            Some(body) if body == quit => Message::Quit,
            _ => Message::Chat(data),
        }
    }
}

/// Displays a payload for a log line the way Python 3's `repr()` would show it, so that a log
/// line can never be forged by a payload (every control character, line break and invalid byte
/// is escaped) while text stays readable:
///
/// - UTF-8 text with characters beyond ASCII shows as `repr()` of the decoded `str`:
///   `'ACK你好'` (non-printable characters escaped as `\n`, `\x1b`, `\u202e`);
/// - anything else shows as `repr()` of the `bytes`, as the Python tutorial's
///   `logging.info(data)` does: `b'ACKhello'`, `b'\xff\xfe'`.
///
/// Nothing is allocated: the text is produced while formatting, so a disabled log level costs
/// nothing. Width, fill and precision flags are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BytesRepr<'a>(pub &'a [u8]);

/// Python's choice of quote: single, unless that needs escaping and double does not.
fn python_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

impl fmt::Display for BytesRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.0;
        if !data.is_ascii() {
            if let Ok(text) = std::str::from_utf8(data) {
                return text_repr(text, f);
            }
        }
        let quote = python_quote(data.contains(&b'\''), data.contains(&b'"'));
        let needs_escape =
            |b: u8| char::from(b) == quote || b == b'\\' || !(0x20..0x7f).contains(&b);

        f.write_str("b")?;
        f.write_char(quote)?;
        let mut rest = data;
        while !rest.is_empty() {
            // Write runs of plain printable ASCII in one call rather than byte by byte.
            let plain = rest
                .iter()
                .position(|&b| needs_escape(b))
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(plain);
            // A run is pure ASCII, so it is one valid UTF-8 chunk.
            for chunk in run.utf8_chunks() {
                f.write_str(chunk.valid())?;
            }
            let Some((&b, tail)) = tail.split_first() else {
                break;
            };
            escape(char::from(b), f)?;
            rest = tail;
        }
        f.write_char(quote)
    }
}

/// `repr()` of a Python `str`.
fn text_repr(text: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let quote = python_quote(text.contains('\''), text.contains('"'));
    f.write_char(quote)?;
    let mut rest = text;
    while let Some(at) = rest.find(|c: char| c == quote || c == '\\' || !printable(c)) {
        f.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or_default();
        escape(c, f)?;
        rest = &rest[at + c.len_utf8()..];
    }
    f.write_str(rest)?;
    f.write_char(quote)
}

/// Writes one character as Python's `repr()` escapes it.
fn escape(c: char, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\t' => f.write_str("\\t"),
        '\n' => f.write_str("\\n"),
        '\r' => f.write_str("\\r"),
        '\'' => f.write_str("\\'"),
        '"' => f.write_str("\\\""),
        c if u32::from(c) < 0x100 => write!(f, "\\x{:02x}", u32::from(c)),
        c if u32::from(c) < 0x10000 => write!(f, "\\u{:04x}", u32::from(c)),
        c => write!(f, "\\U{:08x}", u32::from(c)),
    }
}

/// Whether Python's `str.isprintable()` holds for `c`, for the characters that matter in a log
/// line: controls (Cc, which include every line break but two), format characters such as the
/// bidirectional overrides and zero-width spaces (Cf), the line and paragraph separators (Zl,
/// Zp), spaces other than ' ' (Zs), private use (Co) and noncharacters are not printable.
/// (Python also escapes unassigned code points; they are shown as they are here.)
fn printable(c: char) -> bool {
    let u = u32::from(c);
    let format = matches!(
        u,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let separator = matches!(
        u,
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x2028 | 0x2029 | 0x202F | 0x205F | 0x3000
    );
    let private_or_nonchar = matches!(
        u,
        0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD | 0xFDD0..=0xFDEF
    ) || u & 0xFFFE == 0xFFFE;
    !(c.is_control() || format || separator || private_or_nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(hb: &[u8], quit: &[u8]) -> Words {
        Words::new(hb, quit).expect("valid words")
    }

    #[test]
    fn default_words() {
        let w = Words::default();
        assert_eq!(w.heartbeat, DEFAULT_HEARTBEAT);
        assert_eq!(w.quit, DEFAULT_QUIT);
        assert_eq!(Words::new(DEFAULT_HEARTBEAT, DEFAULT_QUIT), Ok(w));
    }

    #[test]
    fn words_validation() {
        let cases: &[(&[u8], &[u8], Option<WordsError>)] = &[
            (b"HB", b"quit", None),
            (b"ping", b"bye", None),
            (b"HB", b"HBx", None),
            (b"a b", b"\rx", None),
            (b"", b"quit", Some(WordsError::EmptyHeartbeat)),
            (b"HB", b"", Some(WordsError::EmptyQuit)),
            (b"", b"", Some(WordsError::EmptyHeartbeat)),
            (b"same", b"same", Some(WordsError::SameWords)),
            (b"HB\n", b"quit", Some(WordsError::HeartbeatEndsInLineBreak)),
            (b"HB\r", b"quit", Some(WordsError::HeartbeatEndsInLineBreak)),
            (b"HB", b"quit\r\n", Some(WordsError::QuitEndsInLineBreak)),
            (b"\n", b"\n", Some(WordsError::HeartbeatEndsInLineBreak)),
        ];
        for &(hb, quit, expected) in cases {
            let got = Words::new(hb, quit).err();
            assert_eq!(
                got,
                expected,
                "hb={:?} quit={:?}",
                BytesRepr(hb),
                BytesRepr(quit)
            );
        }
    }

    #[test]
    fn words_error_messages() {
        assert_eq!(
            WordsError::EmptyHeartbeat.to_string(),
            "heartbeat word must not be empty"
        );
        assert_eq!(
            WordsError::EmptyQuit.to_string(),
            "quit word must not be empty"
        );
        assert_eq!(
            WordsError::SameWords.to_string(),
            "heartbeat and quit words must differ"
        );
        assert_eq!(
            WordsError::HeartbeatEndsInLineBreak.to_string(),
            r"heartbeat word must not end in '\n' or '\r'"
        );
        assert_eq!(
            WordsError::QuitEndsInLineBreak.to_string(),
            r"quit word must not end in '\n' or '\r'"
        );
        let boxed: Box<dyn Error> = Box::new(WordsError::EmptyQuit);
        assert!(boxed.source().is_none());
    }

    #[test]
    fn classification_default_words() {
        use Message::*;
        let w = Words::default();
        let cases: &[(&[u8], Message<'_>)] = &[
            (b"", Empty),
            (b"HB", Heartbeat),
            (b"HB\n", Heartbeat),
            (b"HB\r\n", Heartbeat),
            (b"quit", Quit),
            (b"quit\n", Quit),
            (b"quit\r\n", Quit),
            (b"HB ", Chat(b"HB ")),
            (b" HB", Chat(b" HB")),
            (b"HB\r", Chat(b"HB\r")),
            (b"HB\n\n", Chat(b"HB\n\n")),
            (b"HB\r\n\n", Chat(b"HB\r\n\n")),
            (b"HB\n\r\n", Chat(b"HB\n\r\n")),
            (b"HB\n\r", Chat(b"HB\n\r")),
            (b"hb", Chat(b"hb")),
            (b"H", Chat(b"H")),
            (b"quitx", Chat(b"quitx")),
            (b"QUIT", Chat(b"QUIT")),
            (b"quit\r", Chat(b"quit\r")),
            (b"\n", Chat(b"\n")),
            (b"\r\n", Chat(b"\r\n")),
            (b"hello", Chat(b"hello")),
            (b"hello\n", Chat(b"hello\n")),
            (b"\x00\xff", Chat(b"\x00\xff")),
        ];
        for &(data, expected) in cases {
            assert_eq!(Message::parse(data, &w), expected, "{}", BytesRepr(data));
        }
    }

    #[test]
    fn classification_custom_words() {
        use Message::*;
        let w = words(b"ping", b"bye bye");
        let cases: &[(&[u8], Message<'_>)] = &[
            (b"", Empty),
            (b"ping", Heartbeat),
            (b"ping\n", Heartbeat),
            (b"ping\r\n", Heartbeat),
            (b"bye bye", Quit),
            (b"bye bye\r\n", Quit),
            (b"HB", Chat(b"HB")),
            (b"quit", Chat(b"quit")),
            (b"bye", Chat(b"bye")),
            (b"pingping", Chat(b"pingping")),
        ];
        for &(data, expected) in cases {
            assert_eq!(Message::parse(data, &w), expected, "{}", BytesRepr(data));
        }

        // One word may be a prefix of the other: only exact matches count.
        let w = words(b"a", b"ab");
        assert_eq!(Message::parse(b"a", &w), Heartbeat);
        assert_eq!(Message::parse(b"ab\n", &w), Quit);
        assert_eq!(Message::parse(b"abc", &w), Chat(b"abc"));
    }

    #[test]
    fn chat_borrows_the_datagram() {
        let data = b"hello there".to_vec();
        match Message::parse(&data, &Words::default()) {
            Message::Chat(p) => assert!(std::ptr::eq(p, data.as_slice())),
            other => panic!("expected chat, got {other:?}"),
        }
    }

    #[test]
    fn parse_unvalidated_words_does_not_panic() {
        // Public fields allow words that Words::new would refuse; parsing must still be total.
        let w = Words {
            heartbeat: Vec::new(),
            quit: b"x\n".to_vec(),
        };
        assert_eq!(Message::parse(b"", &w), Message::Empty);
        assert_eq!(Message::parse(b"\n", &w), Message::Heartbeat);
        assert_eq!(Message::parse(b"x\n", &w), Message::Quit);
        assert_eq!(Message::parse(b"x", &w), Message::Chat(b"x"));
    }

    #[test]
    fn bytes_repr_table() {
        // Every expected string was produced by `python3 -c 'print(repr(b"..."))'`.
        let cases: &[(&[u8], &str)] = &[
            (b"", "b''"),
            (b"ACKhello", "b'ACKhello'"),
            (b"HB", "b'HB'"),
            (b"hello world\n", r"b'hello world\n'"),
            (b"a\tb\rc\nd", r"b'a\tb\rc\nd'"),
            (b"back\\slash", r"b'back\\slash'"),
            (b"it's", r#"b"it's""#),
            (b"say \"hi\"", r#"b'say "hi"'"#),
            (b"it's \"both\"", r#"b'it\'s "both"'"#),
            (b"'", r#"b"'""#),
            (b"\"", r#"b'"'"#),
            (b"'\"", r#"b'\'"'"#),
            (b"'\\", r#"b"'\\""#),
            (b"\x00\x01\x1f\x7f\x80\xff", r"b'\x00\x01\x1f\x7f\x80\xff'"),
            (b"\x0b\x0c\x07\x08\x1b", r"b'\x0b\x0c\x07\x08\x1b'"),
            (b" ~", "b' ~'"),
            (b"\xabcd", r"b'\xabcd'"),
            // Not UTF-8: bytes, whatever else they hold.
            (b"caf\xe9", r"b'caf\xe9'"),
            (b"\xe4\xbd\xa0\xe5\xa5", r"b'\xe4\xbd\xa0\xe5\xa5'"),
            (b"\xed\xa0\x80", r"b'\xed\xa0\x80'"),
        ];
        for &(data, expected) in cases {
            assert_eq!(BytesRepr(data).to_string(), expected);
        }
    }

    #[test]
    fn utf8_text_shows_as_text_and_cannot_forge_a_line() {
        // Every expected string was produced by `python3 -c 'print(repr(b"...".decode()))'`.
        let cases: &[(&str, &str)] = &[
            ("caf\u{e9}", "'caf\u{e9}'"),
            ("ACK你好", "'ACK你好'"),
            ("你好\n", r"'你好\n'"),
            (
                "你好\r\nchat 1.2.3.4:5 joined",
                r"'你好\r\nchat 1.2.3.4:5 joined'",
            ),
            ("它's", r#""它's""#),
            ("它'\"", r#"'它\'"'"#),
            ("\\你", r"'\\你'"),
            ("é\x1b[31m", r"'é\x1b[31m'"),
            ("é\u{85}\u{2028}\u{2029}", r"'é\x85\u2028\u2029'"),
            ("abc\u{202e}cba", r"'abc\u202ecba'"),
            ("a\u{200b}b\u{feff}", r"'a\u200bb\ufeff'"),
            ("全角\u{3000}空格\u{a0}", r"'全角\u3000空格\xa0'"),
            ("\u{e000}\u{10fffd}\u{fffe}", r"'\ue000\U0010fffd\ufffe'"),
            ("emoji 🎉 e\u{301}", "'emoji 🎉 e\u{301}'"),
            ("é\x00\x7f", r"'é\x00\x7f'"),
        ];
        for &(text, expected) in cases {
            let shown = BytesRepr(text.as_bytes()).to_string();
            assert_eq!(shown, expected, "{text:?}");
            assert!(!shown.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{1b}']));
        }
    }

    fn word() -> impl Strategy<Value = Vec<u8>> {
        // A tiny alphabet makes words collide with data and with each other often.
        proptest::collection::vec(
            prop_oneof![
                Just(b'a'),
                Just(b'b'),
                Just(b'\n'),
                Just(b'\r'),
                any::<u8>()
            ],
            0..6,
        )
    }

    fn valid_words() -> impl Strategy<Value = Words> {
        (word(), word()).prop_filter_map("invalid words", |(hb, quit)| Words::new(hb, quit).ok())
    }

    fn datagram(w: &Words) -> BoxedStrategy<Vec<u8>> {
        let near_word = (
            prop_oneof![Just(w.heartbeat.clone()), Just(w.quit.clone())],
            proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'a')],
                0..4,
            ),
        )
            .prop_map(|(mut word, suffix)| {
                word.extend_from_slice(&suffix);
                word
            });
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..70_000),
            proptest::collection::vec(any::<u8>(), 0..8),
            near_word,
        ]
        .boxed()
    }

    fn is_word_line(data: &[u8], word: &[u8]) -> bool {
        [&b""[..], b"\n", b"\r\n"].iter().any(|end| {
            data.len() == word.len() + end.len() && data.starts_with(word) && data.ends_with(end)
        })
    }

    proptest! {
        #[test]
        fn parse_is_total_and_exact(
            (w, data) in valid_words().prop_flat_map(|w| {
                let d = datagram(&w);
                (Just(w), d)
            })
        ) {
            let got = Message::parse(&data, &w);
            let expected = if data.is_empty() {
                Message::Empty
            } else if is_word_line(&data, &w.heartbeat) {
                Message::Heartbeat
            } else if is_word_line(&data, &w.quit) {
                Message::Quit
            } else {
                Message::Chat(&data)
            };
            prop_assert_eq!(got, expected);
            if let Message::Chat(p) = got {
                prop_assert!(std::ptr::eq(p, data.as_slice()));
            }
        }

        #[test]
        fn one_newline_is_forgiven(w in valid_words()) {
            for word in [&w.heartbeat, &w.quit] {
                let mut line = word.clone();
                line.push(b'\n');
                prop_assert_eq!(Message::parse(&line, &w), Message::parse(word, &w));
                line.insert(line.len() - 1, b'\r');
                prop_assert_eq!(Message::parse(&line, &w), Message::parse(word, &w));
            }
            prop_assert_eq!(Message::parse(&w.heartbeat, &w), Message::Heartbeat);
            prop_assert_eq!(Message::parse(&w.quit, &w), Message::Quit);
        }

        #[test]
        fn words_new_matches_rules(hb in word(), quit in word()) {
            let ok = !hb.is_empty()
                && !quit.is_empty()
                && hb != quit
                && !matches!(hb.last(), Some(b'\n' | b'\r'))
                && !matches!(quit.last(), Some(b'\n' | b'\r'));
            prop_assert_eq!(Words::new(hb, quit).is_ok(), ok);
        }
    }
}
