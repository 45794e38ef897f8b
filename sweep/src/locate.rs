//! Key paths (`axes.depth`, `include[1].lr`) and where they are in a sweep's text. serde_yaml 0.9
//! values carry no positions, so errors found after parsing find their line with an
//! indentation-aware scan of the text: block maps and sequences, and flow collections (`[a, b]`,
//! `{k: v}`) written on one line. When a path cannot be followed to its end, the deepest part found
//! is reported, which is still better than no line.

use std::fmt;

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seg {
    /// A map key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path from the top of the file to a value, printed `axes.depth` or `include[1].lr`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The path of a top-level key.
    pub(super) fn top(key: &str) -> Self {
        KeyPath(vec![Seg::Key(key.to_owned())])
    }

    /// This path, then `key`.
    pub(super) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        KeyPath(segs)
    }

    /// This path, then element `index`.
    pub(super) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The lines a block collection may span: from line `start` (whose content begins at `inline`
/// when the block starts after a `- ` on that line) while lines are indented more than `parent`
/// (or, when `dash_at_parent`, are `- ` items at exactly `parent`: a sequence may sit at its key's
/// indentation).
struct Block {
    start: usize,
    inline: Option<usize>,
    parent: isize,
    dash_at_parent: bool,
}

/// The 1-based (line, column) of `path` in `text`, or of the deepest part of it found.
pub(super) fn locate(text: &str, path: &KeyPath) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let segs = &path.0;
    let mut block = Block { start: 0, inline: None, parent: -1, dash_at_parent: false };
    let mut found = None;
    for (k, seg) in segs.iter().enumerate() {
        let Some((i, col)) = find_child(&lines, &block, seg) else { break };
        let line = lines[i];
        found = Some(position(line, i, col));
        let value = match seg {
            Seg::Key(key) => value_col(line, col + key_len(&line[col..], key)),
            Seg::Index(_) => value_col(line, col + 1),
        };
        let rest = &segs[k + 1..];
        match value {
            _ if rest.is_empty() => break,
            Some(v) if line[v..].starts_with(['[', '{']) => {
                if let Some(c) = flow_path(line, v, rest) {
                    found = Some(position(line, i, c));
                }
                break;
            }
            Some(v) if matches!(seg, Seg::Index(_)) => {
                block = Block { start: i, inline: Some(v), parent: col as isize, dash_at_parent: false };
            }
            Some(_) => break,
            None => {
                let dash_at_parent = matches!(seg, Seg::Key(_));
                block = Block { start: i + 1, inline: None, parent: col as isize, dash_at_parent };
            }
        }
    }
    found
}

/// 1-based line and column (in characters) of byte `col` of line `i`.
fn position(line: &str, i: usize, col: usize) -> (usize, usize) {
    (i + 1, line.get(..col).map_or(col, |s| s.chars().count()) + 1)
}

/// The byte column where a line's content starts, or None for blank, comment and document
/// marker lines.
fn content_col(line: &str) -> Option<usize> {
    let col = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[col..];
    let marker = col == 0 && (rest.starts_with("---") || rest.starts_with("..."));
    (!rest.is_empty() && !rest.starts_with('#') && !marker).then_some(col)
}

/// The column of the value that starts at or after byte `col` on `line`, or None when the line
/// ends there (or only a comment follows).
fn value_col(line: &str, col: usize) -> Option<usize> {
    let rest = line.get(col..)?;
    let v = col + (rest.len() - rest.trim_start().len());
    (v < line.len() && !line[v..].starts_with('#')).then_some(v)
}

/// Whether `content` is a sequence item (`-` then a space or the end of the line).
fn is_dash(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// The length of `key:` (plain or quoted) at the start of `content`, or 0 when it is not there.
fn key_len(content: &str, key: &str) -> usize {
    for (open, close) in [("", ""), ("\"", "\""), ("'", "'")] {
        let head = format!("{open}{key}{close}:");
        if let Some(after) = content.strip_prefix(&head)
            && (after.is_empty() || after.starts_with([' ', ',', '}', ']']))
        {
            return head.len();
        }
    }
    0
}

/// The direct child of `block` that `seg` names: a `key:` line or the n-th `- ` item.
fn find_child(lines: &[&str], block: &Block, seg: &Seg) -> Option<(usize, usize)> {
    let mut child_indent = None;
    let mut items = 0;
    for (i, line) in lines.iter().enumerate().skip(block.start) {
        let col = match block.inline {
            Some(c) if i == block.start => c,
            _ => {
                let Some(c) = content_col(line) else { continue };
                let deeper = c as isize > block.parent;
                let item_at_parent = block.dash_at_parent && c as isize == block.parent && is_dash(&line[c..]);
                if !(deeper || item_at_parent) {
                    break;
                }
                c
            }
        };
        if *child_indent.get_or_insert(col) != col {
            continue;
        }
        let content = &line[col..];
        match seg {
            Seg::Key(key) if key_len(content, key) > 0 => return Some((i, col)),
            Seg::Index(n) if is_dash(content) => {
                if items == *n {
                    return Some((i, col));
                }
                items += 1;
            }
            _ => {}
        }
    }
    None
}

/// Follows `segs` inside the flow collection starting at byte `col` of `line`; the byte column of
/// the deepest part found.
fn flow_path(line: &str, mut col: usize, segs: &[Seg]) -> Option<usize> {
    let mut found = None;
    for seg in segs {
        if !line[col..].starts_with(['[', '{']) {
            break;
        }
        let Some(c) = flow_child(line, col, seg) else { break };
        found = Some(c);
        let next = match seg {
            Seg::Key(key) => value_col(line, c + key_len(&line[c..], key)),
            Seg::Index(_) => Some(c),
        };
        match next {
            Some(n) => col = n,
            None => break,
        }
    }
    found
}

/// The start of the element of the flow collection opening at byte `open` that `seg` names.
fn flow_child(line: &str, open: usize, seg: &Seg) -> Option<usize> {
    let is_seq = line[open..].starts_with('[');
    let (mut depth, mut quote, mut index) = (0usize, None::<char>, 0usize);
    let (mut at_element, mut escaped) = (true, false);
    for (off, ch) in line[open + 1..].char_indices() {
        let pos = open + 1 + off;
        if escaped {
            escaped = false;
            continue;
        }
        if at_element && !ch.is_whitespace() {
            at_element = false;
            let hit = match seg {
                Seg::Index(n) => is_seq && index == *n,
                Seg::Key(key) => !is_seq && key_len(&line[pos..], key) > 0,
            };
            if hit && !matches!(ch, ']' | '}') {
                return Some(pos);
            }
        }
        match (quote, ch) {
            (Some('"'), '\\') => escaped = true,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(ch),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth == 0 => return None,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                index += 1;
                at_element = true;
            }
            (None, '#') => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
name: x
train:
  epochs: 3   # a comment
  lr: 0.1
axes:
  arch: [vgg, grid]
  depth: [8, 20]
  when: {depth: [26, 98], 'lr': 1}
include:
- arch: grid
  depth: 26
-
  arch: vgg
  seed: 1
exclude:
  - {arch: grid}
  - arch: vgg
    seed: 3
";

    fn at(path: KeyPath) -> Option<(usize, usize)> {
        locate(TEXT, &path)
    }

    #[test]
    fn block_keys_and_items() {
        assert_eq!(at(KeyPath::top("name")), Some((2, 1)));
        assert_eq!(at(KeyPath::top("train").key("epochs")), Some((4, 3)));
        assert_eq!(at(KeyPath::top("train").key("lr")), Some((5, 3)));
        assert_eq!(at(KeyPath::top("include").index(0).key("depth")), Some((12, 3)));
        assert_eq!(at(KeyPath::top("include").index(1).key("seed")), Some((15, 3)));
        assert_eq!(at(KeyPath::top("exclude").index(1).key("seed")), Some((19, 5)));
        assert_eq!(at(KeyPath::top("exclude").index(1)), Some((18, 3)));
    }

    #[test]
    fn flow_collections_on_one_line() {
        assert_eq!(at(KeyPath::top("axes").key("depth").index(1)), Some((8, 14)));
        assert_eq!(at(KeyPath::top("axes").key("when").key("depth").index(1)), Some((9, 22)));
        assert_eq!(at(KeyPath::top("axes").key("when").key("lr")), Some((9, 27)));
        assert_eq!(at(KeyPath::top("exclude").index(0).key("arch")), Some((17, 6)));
    }

    #[test]
    fn missing_parts_give_the_deepest_found() {
        assert_eq!(at(KeyPath::top("train").key("momentum")), Some((3, 1)));
        assert_eq!(at(KeyPath::top("axes").key("depth").index(7)), Some((8, 3)));
        assert_eq!(at(KeyPath::top("nothing")), None);
        assert_eq!(locate("", &KeyPath::top("a")), None);
        assert_eq!(locate("a: [\"x,\", {b: 1}]", &KeyPath::top("a").index(1).key("b")), Some((1, 12)));
    }

    #[test]
    fn paths_print_dotted() {
        assert_eq!(KeyPath::top("include").index(2).key("lr").to_string(), "include[2].lr");
    }
}
