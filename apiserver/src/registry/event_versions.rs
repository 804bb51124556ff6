//! `events.k8s.io/v1` Events are another version of the core `v1` Events, as upstream serves
//! them: one store (`/registry/events/`, core form), so an event written through either API is
//! read through both (the scheduler and kube-runtime recorders write `events.k8s.io/v1`;
//! `kubectl describe` reads `v1`). The two forms differ only in field names.

use serde_json::Value;

use super::hooks::ObjectHooks;
use crate::error::ApiResult;

/// `(core v1 field, events.k8s.io/v1 field)`.
const RENAMED: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

/// The `events.k8s.io/v1` row's conversion to and from the stored core form.
#[derive(Debug)]
pub struct EventsV1;

fn rename(obj: &mut Value, to_core: bool) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (core, v1) in RENAMED {
        let (from, to) = if to_core { (v1, core) } else { (core, v1) };
        if let Some(v) = map.remove(from) {
            map.insert(to.to_string(), v);
        }
    }
}

impl ObjectHooks for EventsV1 {
    fn admit(&self, obj: &mut Value, _old: Option<&Value>) -> ApiResult<()> {
        rename(obj, true);
        Ok(())
    }

    fn present(&self, obj: &mut Value) {
        rename(obj, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_round_trip() {
        let v1 = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "Successfully assigned d/p to n", "reason": "Scheduled", "type": "Normal",
            "reportingController": "default-scheduler", "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}});
        let mut stored = v1.clone();
        EventsV1.admit(&mut stored, None).unwrap();
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "Successfully assigned d/p to n");
        assert_eq!(stored["reportingComponent"], "default-scheduler");
        assert_eq!(stored["series"]["count"], 2);
        assert!(stored.get("regarding").is_none() && stored.get("note").is_none());
        let mut back = stored;
        EventsV1.present(&mut back);
        assert_eq!(back, v1);
    }
}
