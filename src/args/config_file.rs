//! The config file: checks configured without arguments.
//!
//! HAProxy passes an external check no arguments of our choosing and clears
//! its environment, so a check finds its settings from its own command path
//! (`<argv0>.conf`), in sections that HAProxy's variables select. A key is a
//! long option without its dashes; its value is checked by the same clap
//! definition as the command line, so the two cannot drift apart.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};

use super::cli;
use crate::outcome::Failure;
use crate::text::{describe_io, escape};

/// The system-wide file, looked at last.
pub const SYSTEM_CONFIG: &str = "/etc/icap-check.conf";
/// The environment variable naming a file (reaches a check only under
/// HAProxy's `external-check preserve-env`).
pub const CONFIG_ENV: &str = "ICAP_CHECK_CONFIG";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SectionKind {
    Defaults,
    Backend(String),
    /// `server BACKEND/SERVER`
    Server(String),
}

impl SectionKind {
    /// The backend and server names the section is selected by.
    pub fn names(&self) -> (Option<&str>, Option<&str>) {
        match self {
            SectionKind::Defaults => (None, None),
            SectionKind::Backend(b) => (Some(b), None),
            SectionKind::Server(name) => match name.split_once('/') {
                Some((b, s)) => (Some(b), Some(s)),
                None => (None, None),
            },
        }
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SectionKind::Defaults => f.write_str("defaults"),
            SectionKind::Backend(name) => write!(f, "backend {name}"),
            SectionKind::Server(name) => write!(f, "server {name}"),
        }
    }
}

/// One `key [value]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: String,
    pub value: Option<String>,
}

impl Entry {
    /// The entry as a command-line argument. `--key=value` keeps a value
    /// that starts with a dash from being read as an option.
    pub fn arg(&self) -> OsString {
        match &self.value {
            Some(v) => format!("--{}={v}", self.key).into(),
            None => format!("--{}", self.key).into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub line: usize,
    pub entries: Vec<Entry>,
}

/// How the file was found, for `--explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    CommandPath,
    System,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "--config",
            Source::Env => CONFIG_ENV,
            Source::CommandPath => "the command's path + .conf",
            Source::System => "the system file",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub source: Source,
    /// The sections kept (see [`Wanted`]), in the order of the file.
    pub sections: Vec<Section>,
    /// Where each kept section is in `sections`.
    index: HashMap<SectionKind, usize>,
}

/// Which sections a run keeps. Every line of the file is read and its
/// structure checked, but only the sections a run can use are kept: a check
/// costs memory for its own sections, not the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    All,
    /// `defaults`, and these backends and `BACKEND/SERVER` servers.
    Only {
        backends: HashSet<String>,
        servers: HashSet<String>,
    },
}

impl Wanted {
    /// The sections of one check.
    pub fn one(backend: Option<&str>, server: Option<&str>) -> Wanted {
        let mut w = Wanted::Only {
            backends: HashSet::new(),
            servers: HashSet::new(),
        };
        w.add(backend, server);
        w
    }

    pub fn add(&mut self, backend: Option<&str>, server: Option<&str>) {
        if let Wanted::Only { backends, servers } = self {
            if let Some(b) = backend {
                backends.insert(b.to_string());
                if let Some(s) = server {
                    servers.insert(format!("{b}/{s}"));
                }
            }
        }
    }

    fn keeps(&self, kind: &SectionKind) -> bool {
        match (self, kind) {
            (Wanted::All, _) | (_, SectionKind::Defaults) => true,
            (Wanted::Only { backends, .. }, SectionKind::Backend(b)) => backends.contains(b),
            (Wanted::Only { servers, .. }, SectionKind::Server(s)) => servers.contains(s),
        }
    }
}

impl ConfigFile {
    /// The sections that apply to a check, in increasing precedence:
    /// defaults, the backend's, the server's.
    pub fn layers(&self, backend: Option<&str>, server: Option<&str>) -> Vec<&Section> {
        let mut kinds = vec![SectionKind::Defaults];
        if let Some(b) = backend {
            kinds.push(SectionKind::Backend(b.to_string()));
            if let Some(s) = server {
                kinds.push(SectionKind::Server(format!("{b}/{s}")));
            }
        }
        kinds
            .iter()
            .filter_map(|k| self.index.get(k).and_then(|&i| self.sections.get(i)))
            .collect()
    }

    /// `FILE:LINE: why`, the form of every error about the file.
    pub fn error_at(&self, line: usize, why: impl fmt::Display) -> Failure {
        located(&self.path, line, why)
    }
}

fn located(path: &Path, line: usize, why: impl fmt::Display) -> Failure {
    Failure::Usage(format!("{}:{line}: {why}", path.display()))
}

/// Finds the file: `--config`, then the environment variable, then
/// `<argv0>.conf`, then the system file. A file named explicitly must exist;
/// the others are looked for. `Ok(None)`: no file, built-in defaults apply.
pub fn locate(
    flag: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    argv0: &OsStr,
) -> Result<Option<(PathBuf, Source)>, Failure> {
    if let Some(path) = flag {
        return Ok(Some((path.to_path_buf(), Source::Flag)));
    }
    if let Some(path) = env(CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(Some((PathBuf::from(path), Source::Env)));
    }
    for (candidate, source) in candidates(argv0) {
        match std::fs::metadata(&candidate) {
            Ok(_) => return Ok(Some((candidate, source))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Failure::Usage(format!(
                    "cannot read config {}: {}",
                    candidate.display(),
                    describe_io(&e)
                )))
            }
        }
    }
    Ok(None)
}

/// The files looked for without being named, in order.
pub fn candidates(argv0: &OsStr) -> Vec<(PathBuf, Source)> {
    let mut found = Vec::with_capacity(2);
    // Only a command named by its path: `icap-check` found through PATH
    // would otherwise read `icap-check.conf` from whatever directory it runs in.
    if Path::new(argv0).components().count() > 1 {
        let mut path = argv0.to_os_string();
        path.push(".conf");
        found.push((PathBuf::from(path), Source::CommandPath));
    }
    found.push((PathBuf::from(SYSTEM_CONFIG), Source::System));
    found
}

/// Reads and parses the file at `path`, keeping the `wanted` sections.
pub fn load(path: &Path, source: Source, wanted: &Wanted) -> Result<ConfigFile, Failure> {
    let text = read_text_file(path, "config")?;
    parse(&text, path, source, wanted)
}

/// Reads a configuration file: a regular file of at most 4 MiB of UTF-8
/// (see [`crate::file`]).
pub fn read_text_file(path: &Path, what: &str) -> Result<String, Failure> {
    crate::file::read_text(path, what, crate::file::MAX_FILE)
}

/// Longer than any option's name.
const MAX_KEY: usize = 64;

/// An over-long key as kept for messages: its start.
fn cut(key: &str) -> String {
    let end = (0..=MAX_KEY)
        .rev()
        .find(|&i| key.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}...", &key[..end])
}

/// How many times one key may appear in one section. Only `header` is
/// repeatable (and HTTP servers refuse more headers than this); for other
/// keys the last one counts.
pub const MAX_REPEATS: usize = 100;

/// Parses the structure of the file: sections and `key [value]` lines. The
/// keys' values are checked later, by clap, for the sections in use. Linear
/// in the file's size: sections are found by hash, and a section keeps one
/// entry per key (the last), or up to [`MAX_REPEATS`] of a repeatable key.
pub fn parse(
    text: &str,
    path: &Path,
    source: Source,
    wanted: &Wanted,
) -> Result<ConfigFile, Failure> {
    let mut sections: Vec<Section> = Vec::new();
    let mut index: HashMap<SectionKind, usize> = HashMap::new();
    // Every section met, kept or not, to name a duplicate: by the hash of
    // its kind, to the line where it starts (a few bytes a section however
    // many there are; a hash shared by two kinds is told apart by reading
    // the earlier line again).
    let mut seen = Seen::default();
    // The section the lines belong to, and whether it is kept.
    let mut current: Option<(usize, Option<usize>)> = None;
    // What the definition says of each key met: (allowed in a file, repeatable).
    let mut keys: HashMap<String, Option<(bool, bool)>> = HashMap::new();
    let mut offset = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let at = offset;
        // Where the next line starts: past this one and its line end.
        offset += raw.len();
        let rest_of_text = text.get(offset..).unwrap_or_default();
        offset += usize::from(rest_of_text.starts_with("\r\n")) * 2
            + usize::from(rest_of_text.starts_with('\n'));
        let words = split_words(raw).map_err(|why| located(path, line, why))?;
        let Some((first, rest)) = words.split_first() else {
            continue;
        };
        let kind = section_header(&words).map_err(|why| located(path, line, why))?;
        if let Some(kind) = kind {
            if let Some(first) = seen.insert(&kind, line, at, text) {
                return Err(located(
                    path,
                    line,
                    format!(
                        "section '{}' already defined at line {first}",
                        escape(&kind.to_string())
                    ),
                ));
            }
            let kept = wanted.keeps(&kind).then(|| {
                index.insert(kind.clone(), sections.len());
                sections.push(Section {
                    kind: kind.clone(),
                    line,
                    entries: Vec::new(),
                });
                sections.len() - 1
            });
            current = Some((line, kept));
            continue;
        }
        let key = first;
        if key.starts_with('-') {
            return Err(located(
                path,
                line,
                format!(
                    "'{}': write keys without dashes ('{}')",
                    escape(key),
                    escape(key.trim_start_matches('-'))
                ),
            ));
        }
        // No option has a name this long: an unknown key, kept short.
        let (key, known) = if key.len() > MAX_KEY {
            (&cut(key), None)
        } else {
            let known = *keys.entry(key.clone()).or_insert_with(|| {
                cli::in_file(key).map(|in_file| (in_file, cli::repeatable(key)))
            });
            (key, known)
        };
        if known.is_some_and(|(in_file, _)| !in_file) {
            return Err(located(
                path,
                line,
                format!("'{}' cannot be set in the config file", escape(key)),
            ));
        }
        let Some((_, kept)) = current else {
            return Err(located(
                path,
                line,
                format!("'{}' outside a section: start with 'defaults', 'backend NAME' or 'server BACKEND/SERVER'", escape(key)),
            ));
        };
        let Some(section) = kept.and_then(|k| sections.get_mut(k)) else {
            continue;
        };
        let entry = Entry {
            line,
            key: key.clone(),
            value: (!rest.is_empty()).then(|| rest.join(" ")),
        };
        let repeatable = known.is_some_and(|(_, r)| r);
        let same = section
            .entries
            .iter()
            .filter(|e| e.key == entry.key)
            .count();
        if repeatable && same >= MAX_REPEATS {
            return Err(located(
                path,
                line,
                format!(
                    "more than {MAX_REPEATS} '{}' lines in one section",
                    escape(key)
                ),
            ));
        }
        if !repeatable {
            // The last one counts: the earlier one is dropped, not kept.
            section.entries.retain(|e| e.key != entry.key);
        }
        section.entries.push(entry);
    }
    Ok(ConfigFile {
        path: path.to_path_buf(),
        source,
        sections,
        index,
    })
}

/// A section header line: `defaults`, `backend NAME`, `server BACKEND/SERVER`;
/// `Ok(None)` for any other line.
fn section_header(words: &[String]) -> Result<Option<SectionKind>, &'static str> {
    let Some((first, rest)) = words.split_first() else {
        return Ok(None);
    };
    Ok(match first.as_str() {
        "defaults" => match rest {
            [] => Some(SectionKind::Defaults),
            _ => return Err("'defaults' takes no name"),
        },
        "backend" => match rest {
            [name] if valid_name(name) => Some(SectionKind::Backend(name.clone())),
            _ => return Err("expected 'backend NAME'"),
        },
        "server" => match rest {
            [name]
                if name
                    .split_once('/')
                    .is_some_and(|(b, s)| valid_name(b) && valid_name(s)) =>
            {
                Some(SectionKind::Server(name.clone()))
            }
            _ => return Err("expected 'server BACKEND/SERVER'"),
        },
        _ => None,
    })
}

/// The sections met so far, as hashes of their kind with the line (and its
/// byte offset) where they start.
#[derive(Default)]
struct Seen {
    first: HashMap<u64, (usize, usize)>,
    /// Sections whose hash an earlier, different section already had.
    collided: Vec<(SectionKind, usize)>,
}

impl Seen {
    /// Records that `kind` starts at `line`, `offset` bytes into `text`; if
    /// it was met before, the line where it first started.
    fn insert(
        &mut self,
        kind: &SectionKind,
        line: usize,
        offset: usize,
        text: &str,
    ) -> Option<usize> {
        use std::hash::BuildHasher;
        // A fixed hasher: the same kind must hash the same every time.
        let hash =
            std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(kind);
        if let Some((_, at)) = self.collided.iter().find(|(k, _)| k == kind) {
            return Some(*at);
        }
        match self.first.get(&hash) {
            None => {
                self.first.insert(hash, (line, offset));
                None
            }
            Some(&(at, from)) => {
                let earlier = text
                    .get(from..)
                    .and_then(|t| t.lines().next())
                    .and_then(|l| split_words(l).ok())
                    .and_then(|w| section_header(&w).ok().flatten());
                if earlier.as_ref() == Some(kind) {
                    Some(at)
                } else {
                    self.collided.push((kind.clone(), line));
                    None
                }
            }
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.chars().any(char::is_control)
}

/// Splits a line into words the way HAProxy's configuration does: spaces
/// separate, `"..."` and `'...'` quote, and a word starting with `#` begins
/// a comment. In double quotes `\"` and `\\` escape; other backslashes stay
/// (so `\r\n` reaches options that read escapes themselves).
pub fn split_words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&c) = chars.peek() else {
            return Ok(words);
        };
        if c == '#' {
            return Ok(words);
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => loop {
                    match chars.next() {
                        None => return Err("unterminated double quote"),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => word.push(e),
                            Some(other) => {
                                word.push('\\');
                                word.push(other);
                            }
                            None => return Err("unterminated double quote"),
                        },
                        Some(other) => word.push(other),
                    }
                },
                '\'' => loop {
                    match chars.next() {
                        None => return Err("unterminated single quote"),
                        Some('\'') => break,
                        Some(other) => word.push(other),
                    }
                },
                other => word.push(other),
            }
        }
        words.push(word);
    }
}

/// What the config file contributed to a check, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub path: PathBuf,
    pub source: Source,
    /// The sections applied, with their lines, in increasing precedence.
    pub sections: Vec<(SectionKind, usize)>,
    pub backend: Option<String>,
    pub server: Option<String>,
}

/// Checks one entry with the command line's own definition: a known key,
/// a value where one is needed, and a value the option accepts.
pub fn validate(file: &ConfigFile, entry: &Entry) -> Result<(), Failure> {
    let Some(option) = cli::option(&entry.key) else {
        return Err(file.error_at(entry.line, format!("unknown key '{}'", escape(&entry.key))));
    };
    let needs_value = option.takes_value && !option.value_optional;
    match (&entry.value, needs_value, option.takes_value) {
        (None, true, _) => {
            return Err(file.error_at(entry.line, format!("'{}' needs a value", entry.key)))
        }
        (Some(_), _, false) => {
            return Err(file.error_at(
                entry.line,
                format!("'{}' is a flag and takes no value", entry.key),
            ))
        }
        _ => {}
    }
    match cli::parse(&[OsString::from("icap-check"), entry.arg()]) {
        Ok(_) => Ok(()),
        // `client-cert` needs `client-key`: another line may give it.
        Err(e) if e.kind() == clap::error::ErrorKind::MissingRequiredArgument => Ok(()),
        Err(e) => Err(file.error_at(entry.line, cli::error_reason(&e))),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn parsed(text: &str) -> Result<ConfigFile, Failure> {
        parse(text, Path::new("/etc/x.conf"), Source::Flag, &Wanted::All)
    }

    const EXAMPLE: &str = "\
# comment
defaults
    timeout 1500ms
backend icap_pool
    service gw_rebuild   # trailing comment
    method respmod
    file /var/lib/haproxy/test.pdf
server icap_pool/icap01
    timeout 5s
backend other
    service echo
";

    #[test]
    fn parses_the_documented_example() {
        let c = parsed(EXAMPLE).unwrap();
        assert_eq!(c.sections.len(), 4);
        assert_eq!(c.sections[1].kind, SectionKind::Backend("icap_pool".into()));
        assert_eq!(
            c.sections[1].entries[0],
            Entry {
                line: 5,
                key: "service".into(),
                value: Some("gw_rebuild".into())
            }
        );
        assert_eq!(
            c.sections[1].entries[2].arg(),
            OsString::from("--file=/var/lib/haproxy/test.pdf")
        );
    }

    #[test]
    fn layers_in_precedence_order() {
        let c = parsed(EXAMPLE).unwrap();
        let names = |b, s| {
            c.layers(b, s)
                .iter()
                .map(|s| s.kind.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Some("icap_pool"), Some("icap01")),
            ["defaults", "backend icap_pool", "server icap_pool/icap01"]
        );
        assert_eq!(
            names(Some("icap_pool"), Some("icap02")),
            ["defaults", "backend icap_pool"]
        );
        assert_eq!(names(Some("other"), None), ["defaults", "backend other"]);
        assert_eq!(names(None, Some("icap01")), ["defaults"]);
        // Order in the file does not matter.
        let c = parsed("server b/s\n timeout 1s\nbackend b\n timeout 2s\ndefaults\n timeout 3s\n")
            .unwrap();
        let layers: Vec<_> = c
            .layers(Some("b"), Some("s"))
            .iter()
            .map(|s| s.line)
            .collect();
        assert_eq!(layers, [5, 3, 1]);
    }

    #[test]
    fn words_quotes_and_comments() {
        assert_eq!(split_words("  a b\tc  ").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            split_words("header \"X-A: b c\" # x").unwrap(),
            ["header", "X-A: b c"]
        );
        assert_eq!(
            split_words(r#"send "PING\r\n \"q\"""#).unwrap(),
            ["send", r#"PING\r\n "q""#]
        );
        assert_eq!(split_words("a 'it''s' b#c").unwrap(), ["a", "its", "b#c"]);
        assert_eq!(split_words("# all comment").unwrap(), Vec::<String>::new());
        assert!(split_words("a \"open").is_err());
        assert!(split_words("a 'open").is_err());
    }

    #[test]
    fn only_wanted_sections_are_kept_but_every_line_is_read() {
        let text = "defaults\n timeout 1s\nbackend a\n service x\nbackend b\n service y\nserver a/s\n timeout 2s\nserver b/s\n timeout 3s\n";
        let c = parse(
            text,
            Path::new("x"),
            Source::Flag,
            &Wanted::one(Some("a"), Some("s")),
        )
        .unwrap();
        let kept: Vec<String> = c.sections.iter().map(|s| s.kind.to_string()).collect();
        assert_eq!(kept, ["defaults", "backend a", "server a/s"]);
        assert_eq!(c.layers(Some("b"), Some("s")).len(), 1);
        // A structural error in a section this run does not keep still counts.
        let bad = format!("{text}backend c\n service \"open\n");
        assert!(parse(
            &bad,
            Path::new("x"),
            Source::Flag,
            &Wanted::one(Some("a"), None)
        )
        .is_err());
        // So does a duplicate among sections not kept.
        let dup = format!("{text}backend b\n");
        match parse(
            &dup,
            Path::new("x"),
            Source::Flag,
            &Wanted::one(Some("a"), None),
        ) {
            Err(Failure::Usage(why)) => assert!(
                why.ends_with("section 'backend b' already defined at line 5"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_counts_once_per_section_but_header_repeats() {
        let c = parsed("defaults\n timeout 1s\n header A: 1\n timeout 2s\n header B: 2\n").unwrap();
        let entries: Vec<(usize, &str, Option<&str>)> = c.sections[0]
            .entries
            .iter()
            .map(|e| (e.line, e.key.as_str(), e.value.as_deref()))
            .collect();
        assert_eq!(
            entries,
            [
                (3, "header", Some("A: 1")),
                (4, "timeout", Some("2s")),
                (5, "header", Some("B: 2"))
            ]
        );
        let many = format!("defaults\n{}", " header X: y\n".repeat(MAX_REPEATS + 1));
        match parsed(&many) {
            Err(Failure::Usage(why)) => {
                assert!(why.contains(":102: more than 100 'header' lines"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_overlong_key_is_kept_short() {
        let c = parsed(&format!("defaults\n {} 1\n", "k".repeat(10_000))).unwrap();
        assert_eq!(c.sections[0].entries[0].key.len(), MAX_KEY + 3);
    }

    #[test]
    fn a_byte_order_mark_is_not_a_key() {
        let dir = std::env::temp_dir().join(format!("icap-check-bom-{}", std::process::id()));
        std::fs::write(&dir, "\u{feff}defaults\n timeout 1s\n").unwrap();
        let c = load(&dir, Source::Flag, &Wanted::All);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(c.unwrap().sections[0].kind, SectionKind::Defaults);
    }

    #[test]
    fn structural_errors_name_file_and_line() {
        let cases = [
            ("timeout 1s\n", 1, "outside a section"),
            ("defaults\n  --timeout 1s\n", 2, "without dashes"),
            ("defaults x\n", 1, "takes no name"),
            ("backend\n", 1, "expected 'backend NAME'"),
            ("backend a b\n", 1, "expected 'backend NAME'"),
            ("server nobackend\n", 1, "expected 'server BACKEND/SERVER'"),
            ("server a/\n", 1, "expected 'server BACKEND/SERVER'"),
            ("backend a\nbackend a\n", 2, "already defined at line 1"),
            (
                "defaults\n config /x\n",
                2,
                "cannot be set in the config file",
            ),
            ("defaults\n help\n", 2, "cannot be set"),
            ("defaults\n service \"echo\n", 2, "unterminated"),
        ];
        for (text, line, why) in cases {
            match parsed(text) {
                Err(Failure::Usage(msg)) => {
                    assert!(msg.starts_with(&format!("/etc/x.conf:{line}: ")), "{msg}");
                    assert!(msg.contains(why), "{text:?}: {msg}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn lookup_candidates() {
        let c = candidates(OsStr::new("/var/lib/haproxy/icap-check"));
        assert_eq!(c[0].0, PathBuf::from("/var/lib/haproxy/icap-check.conf"));
        assert_eq!(c[1].0, PathBuf::from(SYSTEM_CONFIG));
        // Found through PATH: no file relative to the working directory.
        assert_eq!(candidates(OsStr::new("icap-check")).len(), 1);
        let env = |k: &str| (k == CONFIG_ENV).then(|| "/from/env.conf".to_string());
        let found = locate(None, &env, OsStr::new("/x/icap-check")).unwrap();
        assert_eq!(found, Some((PathBuf::from("/from/env.conf"), Source::Env)));
        let found = locate(
            Some(Path::new("/flag.conf")),
            &env,
            OsStr::new("/x/icap-check"),
        )
        .unwrap();
        assert_eq!(found, Some((PathBuf::from("/flag.conf"), Source::Flag)));
    }
}
