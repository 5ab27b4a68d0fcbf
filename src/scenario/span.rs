//! Where each node of a scenario file sits: an index from YAML path (`steps[3].write.table`,
//! `recovery.target.time.between[1]`) to 1-based line and column, built from libyaml's event
//! stream so that semantic problems can point at the offending node.
//!
//! Paths use the same spelling as `yaml_serde`'s error messages: map keys joined with `.`,
//! sequence items as `[index]`, the document root as the empty string.

use std::collections::BTreeMap;
use std::mem::MaybeUninit;

use libyaml_rs as sys;

/// A position in the file, 1-based like compiler diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    pub const START: Mark = Mark { line: 1, column: 1 };

    fn from_sys(m: sys::yaml_mark_t) -> Mark {
        Mark {
            line: m.line as usize + 1,
            column: m.column as usize + 1,
        }
    }
}

/// One located node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Where the key of this node is, when the node is the value of a map entry.
    pub key: Option<Mark>,
    /// Where the node itself starts.
    pub start: Mark,
    /// Where the node ends (for collections, the end of the closing event).
    pub end: Mark,
    /// The text of a scalar node.
    pub scalar: Option<String>,
    /// Full paths of the children of a map or sequence, in document order.
    pub children: Vec<String>,
}

/// Path → node, for one YAML document. Built even from invalid YAML, up to the first
/// syntax error.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: BTreeMap<String, Node>,
    /// Keys written a second time in the same map: path → where the repeated key is.
    repeated: BTreeMap<String, Mark>,
    complete: bool,
}

/// One libyaml event with the parts the index needs.
enum Ev {
    Scalar(String),
    Alias,
    SeqStart,
    SeqEnd,
    MapStart,
    MapEnd,
    Other,
}

/// libyaml's event parser over one text, one event at a time: a caller that has seen enough
/// stops early, and nothing is kept that the caller does not keep. After the last event,
/// [`Events::failed`] says whether the stream stopped on a syntax error.
struct Events<'t> {
    /// Initialized by `yaml_parser_initialize` when `live`; libyaml keeps a pointer to it as
    /// its read-handler data, so it is boxed and never moves.
    parser: Box<MaybeUninit<sys::yaml_parser_t>>,
    live: bool,
    done: bool,
    failed: bool,
    text: std::marker::PhantomData<&'t str>,
}

impl<'t> Events<'t> {
    fn new(text: &'t str) -> Events<'t> {
        let mut parser: Box<MaybeUninit<sys::yaml_parser_t>> = Box::new(MaybeUninit::uninit());
        let p = parser.as_mut_ptr();
        // SAFETY: `p` points at the boxed, never-moved parser; libyaml initializes it here
        // and reads `text`'s bytes, which outlive `Events<'t>`, until `Drop` deletes it.
        let live = unsafe {
            if sys::yaml_parser_initialize(p).fail {
                false
            } else {
                sys::yaml_parser_set_encoding(p, sys::YAML_UTF8_ENCODING);
                sys::yaml_parser_set_input_string(p, text.as_ptr(), text.len() as _);
                true
            }
        };
        Events {
            parser,
            live,
            done: !live,
            failed: !live,
            text: std::marker::PhantomData,
        }
    }

    /// Whether the stream stopped on a syntax error (or the parser could not start).
    fn failed(&self) -> bool {
        self.failed
    }
}

impl Iterator for Events<'_> {
    type Item = (Ev, Mark, Mark);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let p = self.parser.as_mut_ptr();
        // SAFETY: the parser is live (`done` is set otherwise). Each event is read only after
        // `yaml_parser_parse` succeeded, and deleted once, after its scalar bytes were copied.
        unsafe {
            let mut event = MaybeUninit::<sys::yaml_event_t>::uninit();
            if sys::yaml_parser_parse(p, event.as_mut_ptr()).fail {
                self.done = true;
                self.failed = true;
                return None;
            }
            let e = event.as_mut_ptr();
            let start = Mark::from_sys((*e).start_mark);
            let end = Mark::from_sys((*e).end_mark);
            let kind = (*e).type_;
            let ev = match kind {
                sys::YAML_SCALAR_EVENT => {
                    let data = (*e).data.scalar;
                    let bytes: &[u8] = if data.length == 0 || data.value.is_null() {
                        &[]
                    } else {
                        std::slice::from_raw_parts(data.value, data.length as usize)
                    };
                    Ev::Scalar(String::from_utf8_lossy(bytes).into_owned())
                }
                sys::YAML_ALIAS_EVENT => Ev::Alias,
                sys::YAML_SEQUENCE_START_EVENT => Ev::SeqStart,
                sys::YAML_SEQUENCE_END_EVENT => Ev::SeqEnd,
                sys::YAML_MAPPING_START_EVENT => Ev::MapStart,
                sys::YAML_MAPPING_END_EVENT => Ev::MapEnd,
                _ => Ev::Other,
            };
            sys::yaml_event_delete(e);
            self.done = kind == sys::YAML_STREAM_END_EVENT;
            Some((ev, start, end))
        }
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        if self.live {
            // SAFETY: initialized in `new`, deleted exactly once, here.
            unsafe { sys::yaml_parser_delete(self.parser.as_mut_ptr()) };
        }
    }
}

/// Where the first map or list nested more than `limit` deep starts, if one is. Reads events
/// only up to there, so a hostile file costs time linear in the part read; stops quietly on a
/// syntax error (the loader reports it).
pub fn nested_deeper_than(text: &str, limit: usize) -> Option<Mark> {
    let mut depth = 0usize;
    for (ev, start, _) in Events::new(text) {
        match ev {
            Ev::SeqStart | Ev::MapStart => {
                depth += 1;
                if depth > limit {
                    return Some(start);
                }
            }
            Ev::SeqEnd | Ev::MapEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

enum Kind {
    /// `pending`: the key just read, waiting for its value.
    Map {
        pending: Option<(String, Mark)>,
    },
    Seq {
        next: usize,
    },
}

struct Frame {
    path: String,
    kind: Kind,
    /// Inside a complex (non-scalar) key: nothing below is indexed.
    skip: bool,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Most bytes of paths (and scalar copies) one index keeps. A path repeats every key above
/// its node, so a long key over many children, or deep nesting, would otherwise cost memory
/// and time quadratic in the file's size; past this budget nodes are not indexed and
/// problems there are located at their nearest indexed ancestor. Real files use a few KiB.
const MAX_INDEX_BYTES: usize = 16 << 20;

impl SpanIndex {
    /// Index the first document of `text`.
    pub fn parse(text: &str) -> SpanIndex {
        let mut events = Events::new(text);
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut repeated: BTreeMap<String, Mark> = BTreeMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut documents = 0;
        let mut budget = MAX_INDEX_BYTES;
        for (ev, start, end) in events.by_ref() {
            let is_start = matches!(ev, Ev::MapStart | Ev::SeqStart);
            let is_map_start = matches!(ev, Ev::MapStart);
            match ev {
                Ev::Other => {
                    // Document boundaries: index the first document only.
                    if stack.is_empty() && nodes.contains_key("") {
                        documents += 1;
                    }
                    continue;
                }
                Ev::MapEnd | Ev::SeqEnd => {
                    if let Some(frame) = stack.pop()
                        && !frame.skip
                        && let Some(node) = nodes.get_mut(&frame.path)
                    {
                        node.end = end;
                    }
                    continue;
                }
                _ => {}
            }
            if documents > 1 {
                break;
            }
            // Where this node goes (no path is built for a node that is not indexed).
            let exhausted = budget == 0;
            let (path, key, skip) = match stack.last_mut() {
                None => (String::new(), None, false),
                Some(frame) => {
                    let skip = frame.skip || exhausted;
                    match &mut frame.kind {
                        Kind::Seq { next } => {
                            let i = *next;
                            *next += 1;
                            let path = if skip {
                                String::new()
                            } else {
                                format!("{}[{i}]", frame.path)
                            };
                            (path, None, skip)
                        }
                        Kind::Map { pending } => match pending.take() {
                            Some((k, key_mark)) => {
                                let path = if skip {
                                    String::new()
                                } else {
                                    join(&frame.path, &k)
                                };
                                (path, Some(key_mark), skip)
                            }
                            None => {
                                // This node is a key.
                                match &ev {
                                    Ev::Scalar(s) => *pending = Some((s.clone(), start)),
                                    _ => *pending = Some(("?".to_string(), start)),
                                }
                                if is_start {
                                    stack.push(Frame {
                                        path: String::new(),
                                        kind: if matches!(ev, Ev::MapStart) {
                                            Kind::Map { pending: None }
                                        } else {
                                            Kind::Seq { next: 0 }
                                        },
                                        skip: true,
                                    });
                                }
                                continue;
                            }
                        },
                    }
                }
            };
            // An indexed node keeps its path twice (its own key, its parent's children) and
            // its scalar once.
            let skip = skip || {
                let cost = 2 * path.len() + if let Ev::Scalar(s) = &ev { s.len() } else { 0 };
                let over = cost > budget;
                budget = if over { 0 } else { budget - cost };
                over
            };
            if !skip && nodes.contains_key(&path) {
                repeated.entry(path.clone()).or_insert(key.unwrap_or(start));
            } else if !skip {
                if let Some(frame) = stack.last()
                    && let Some(p) = nodes.get_mut(&frame.path)
                {
                    p.children.push(path.clone());
                }
                nodes.insert(
                    path.clone(),
                    Node {
                        key,
                        start,
                        end,
                        scalar: match ev {
                            Ev::Scalar(s) => Some(s),
                            _ => None,
                        },
                        children: Vec::new(),
                    },
                );
            }
            if is_start {
                stack.push(Frame {
                    path,
                    kind: if is_map_start {
                        Kind::Map { pending: None }
                    } else {
                        Kind::Seq { next: 0 }
                    },
                    skip,
                });
            }
        }
        // Whether the text is valid YAML is about all of it, later documents included.
        events.by_ref().for_each(drop);
        SpanIndex {
            nodes,
            repeated,
            complete: !events.failed(),
        }
    }

    /// Whether the whole text parsed as YAML (false after a syntax error).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Where the node at `path` starts, else where its nearest located ancestor starts.
    pub fn locate(&self, path: &str) -> Option<Mark> {
        let mut p = path;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return Some(n.start);
            }
            p = parent_path(p)?;
        }
    }

    /// Where the key of the node at `path` is (its start if it has no key), else the
    /// nearest located ancestor.
    pub fn locate_key(&self, path: &str) -> Option<Mark> {
        match self.nodes.get(path) {
            Some(n) => Some(n.key.unwrap_or(n.start)),
            None => self.locate(path),
        }
    }

    /// Where the key of `path` is written a second time in its map, if it is.
    pub fn repeated_key(&self, path: &str) -> Option<Mark> {
        self.repeated.get(path).copied()
    }

    /// The text of the scalar at `path`.
    pub fn scalar(&self, path: &str) -> Option<&str> {
        self.nodes.get(path)?.scalar.as_deref()
    }

    /// Child paths of the map or sequence at `path`.
    pub fn children(&self, path: &str) -> &[String] {
        self.nodes
            .get(path)
            .map(|n| n.children.as_slice())
            .unwrap_or(&[])
    }

    /// The index of the item of `steps` that holds the position `at`, if any.
    pub fn step_at(&self, at: Mark) -> Option<usize> {
        let steps = self.nodes.get("steps")?;
        if at < steps.start || (steps.end > steps.start && at >= steps.end) {
            return None;
        }
        steps
            .children
            .iter()
            .enumerate()
            .rev()
            .find(|(_, c)| self.nodes.get(*c).is_some_and(|n| n.start <= at))
            .map(|(i, _)| i)
    }

    /// The kind (the one key) of the step at `index`, as written.
    pub fn step_kind(&self, index: usize) -> Option<&str> {
        let item = format!("steps[{index}]");
        let first = self.children(&item).first()?;
        first.strip_prefix(&item)?.strip_prefix('.')
    }

    /// The id written in the step at `index`, whatever its kind.
    pub fn step_id(&self, index: usize) -> Option<&str> {
        let kind = self.step_kind(index)?;
        self.scalar(&format!("steps[{index}].{kind}.id"))
    }
}

/// The path of the parent node: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → the root ``.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = if path.ends_with(']') {
        path.rfind('[')
    } else {
        path.rfind('.')
    };
    Some(cut.map_or("", |i| &path[..i]))
}

/// If `path` lies inside a step, its index: `steps[3].write.table` → 3.
pub fn step_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("steps[")?;
    let end = rest.find(']')?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: demo
steps:
  - base_backup: { id: base }
  - write:
      id: w1
      table: events
recovery:
  target:
    time:
      between: [w1, w2]
? [complex, key]
: ignored
after: 1
";

    fn at(line: usize, column: usize) -> Mark {
        Mark { line, column }
    }

    #[test]
    fn locates_keys_values_and_sequence_items() {
        let s = SpanIndex::parse(TEXT);
        assert!(s.is_complete());
        assert_eq!(s.scalar("name"), Some("demo"));
        assert_eq!(s.locate("name"), Some(at(1, 7)));
        assert_eq!(s.locate_key("name"), Some(at(1, 1)));
        assert_eq!(s.locate("steps[0].base_backup.id"), Some(at(3, 24)));
        assert_eq!(s.locate("steps[1].write.table"), Some(at(6, 14)));
        assert_eq!(
            s.locate("recovery.target.time.between[1]"),
            Some(at(10, 21))
        );
        assert_eq!(s.scalar("after"), Some("1"));
        assert_eq!(s.locate("after"), Some(at(13, 8)));
        assert_eq!(s.repeated_key("name"), None);
        let dup = SpanIndex::parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(dup.repeated_key("a"), Some(at(3, 1)));
        assert_eq!(dup.scalar("a"), Some("1"));
    }

    #[test]
    fn falls_back_to_the_nearest_located_ancestor() {
        let s = SpanIndex::parse(TEXT);
        assert_eq!(s.locate("steps[1].write.rows"), s.locate("steps[1].write"));
        assert_eq!(s.locate("timeouts.archive_seconds"), Some(at(1, 1)));
    }

    #[test]
    fn finds_steps_by_position() {
        let s = SpanIndex::parse(TEXT);
        assert_eq!(s.step_at(at(3, 24)), Some(0));
        assert_eq!(s.step_at(at(6, 1)), Some(1));
        assert_eq!(s.step_at(at(1, 1)), None);
        assert_eq!(s.step_at(at(9, 5)), None);
        assert_eq!(s.step_kind(1), Some("write"));
        assert_eq!(s.step_id(1), Some("w1"));
        assert_eq!(step_index("steps[12].fault.delete_wal"), Some(12));
        assert_eq!(step_index("recovery"), None);
    }

    #[test]
    fn indexes_up_to_a_syntax_error() {
        let s = SpanIndex::parse("name: x\nsteps: [a\npostgres: 1\n");
        assert!(!s.is_complete());
        assert_eq!(s.scalar("name"), Some("x"));
    }

    #[test]
    fn a_long_key_over_many_items_stays_within_the_index_budget() {
        // Unbounded, the items' paths would repeat the key: 200,000 × 100 KB.
        let key = "k".repeat(100_000);
        let text = format!(
            "name: x\n? {key}\n: [{}1]\nafter: 1\n",
            "1,".repeat(200_000)
        );
        let s = SpanIndex::parse(&text);
        assert!(s.is_complete());
        let kept: usize = s
            .nodes
            .iter()
            .map(|(k, n)| 2 * k.len() + n.scalar.as_ref().map_or(0, String::len))
            .sum();
        assert!(kept <= MAX_INDEX_BYTES, "{kept} bytes kept");
        assert_eq!(s.scalar("name"), Some("x"));
        assert_eq!(s.locate(&format!("{key}[0]")), Some(at(3, 4)));
        // Past the budget, nodes are located at their nearest indexed ancestor.
        assert_eq!(s.locate(&format!("{key}[199999]")), s.locate(&key));
        assert_eq!(s.locate("after"), Some(at(1, 1)));
    }

    #[test]
    fn nesting_depth_is_found_without_reading_further() {
        let deep = format!("a: {}{}\n", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(nested_deeper_than(&deep, 3), Some(at(1, 6)));
        assert_eq!(nested_deeper_than(&deep, 1001), None);
        assert_eq!(nested_deeper_than("a: [1, {b: [2]}]\n", 4), None);
        assert_eq!(nested_deeper_than("a: [1, {b: [2]}]\n", 3), Some(at(1, 12)));
        assert_eq!(nested_deeper_than("a: [1, {b: [2]}]\n", 2), Some(at(1, 8)));
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("a.b[2]"), Some("a.b"));
        assert_eq!(parent_path("a.b"), Some("a"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
