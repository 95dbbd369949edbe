//! Maps a key path such as `pool.size` or `users[2].password` to the line it sits on, so
//! validation errors found after deserialisation still point into the user's file.

use toml::de::{DeTable, DeValue};

/// 1-based line of `key_path` in `source`, or of its nearest existing ancestor.
pub fn line_of(source: &str, key_path: &str) -> Option<usize> {
    let table = DeTable::parse(source).ok()?;
    let mut best: Option<usize> = None;
    let mut current: Option<&DeValue<'_>> = None;
    let mut root = Some(table.get_ref());
    for segment in parse_path(key_path) {
        let (key, index) = segment;
        let table = match (root.take(), current) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => break,
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref() == key) else {
            break;
        };
        best = Some(k.span().start);
        let mut value = v;
        if let Some(i) = index {
            match v.get_ref() {
                DeValue::Array(items) => match items.get(i) {
                    Some(item) => value = item,
                    None => break,
                },
                _ => break,
            }
            best = Some(value.span().start);
        }
        current = Some(value.get_ref());
    }
    best.map(|offset| line_at(source, offset))
}

/// 1-based line number of a byte offset.
pub fn line_at(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_path(path: &str) -> impl Iterator<Item = (&str, Option<usize>)> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .map(|segment| match segment.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse().ok()),
            None => (segment, None),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[pool]\nsize = 3\n\n[[users]]\nname = \"a\"\n\n[[users]]\nname = \"b\"\npassword = \"x\"\n";

    #[test]
    fn finds_nested_keys() {
        assert_eq!(line_of(DOC, "pool.size"), Some(2));
        assert_eq!(line_of(DOC, "users[1].password"), Some(9));
        assert_eq!(line_of(DOC, "users[0].name"), Some(5));
    }

    #[test]
    fn falls_back_to_nearest_ancestor() {
        assert_eq!(line_of(DOC, "pool.missing"), Some(1));
        assert_eq!(line_of(DOC, "nothing"), None);
    }
}
