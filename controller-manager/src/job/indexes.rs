//! Sets of completion indexes in the Job status' interval notation (`"1,3-5,7"`).

use std::collections::BTreeSet;

/// Parses `s`, keeping only indexes below `completions`; malformed pieces are skipped.
pub fn parse(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for piece in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match piece.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (piece.parse::<i32>(), piece.parse::<i32>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            tracing::warn!("ignoring malformed index interval {piece:?}");
            continue;
        };
        out.extend((first.max(0)..=last.min(completions - 1)).filter(|i| *i >= 0));
    }
    out
}

/// Formats `set` as ordered intervals (`None` when empty, as upstream leaves the field unset).
pub fn format(set: &BTreeSet<i32>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_trip_and_clip_to_completions() {
        let set = parse("0,2-4,7, 9-12", 11);
        assert_eq!(
            set.iter().copied().collect::<Vec<_>>(),
            vec![0, 2, 3, 4, 7, 9, 10]
        );
        assert_eq!(format(&set).as_deref(), Some("0,2-4,7,9-10"));
        assert_eq!(format(&BTreeSet::new()), None);
        assert_eq!(parse("x,1", 3).into_iter().collect::<Vec<_>>(), vec![1]);
    }
}
