use super::*;
use serde_json::json;

fn deployment(replicas: i32, surge: Value, unavailable: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
        }
    }))
    .unwrap()
}

fn rs(name: &str, replicas: i32, available: i32, annotations: Value, created: i64) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations,
                     "creationTimestamp": Timestamp::from_second(1_800_000_000 + created).unwrap().to_string()},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
    }))
    .unwrap()
}

#[test]
fn percentages_round_surge_up_and_unavailable_down() {
    let v = |s: &str| IntOrString::String(s.into());
    assert_eq!(
        resolve_fenceposts(Some(&v("25%")), Some(&v("25%")), 10),
        Ok((3, 2))
    );
    assert_eq!(
        resolve_fenceposts(Some(&v("25%")), Some(&v("25%")), 1),
        Ok((1, 0))
    );
    assert_eq!(
        resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 5),
        Ok((0, 1)),
        "both zero: one unavailable"
    );
    assert_eq!(
        resolve_fenceposts(None, Some(&v("30%")), 3),
        Ok((0, 1)),
        "30% of 3 rounds down to 0"
    );
    assert!(scaled_value(&v("abc"), 10, true).is_err());
    assert!(
        scaled_value(&v("10"), 10, true).is_err(),
        "a string must be a percentage"
    );
    let d = deployment(10, json!("25%"), json!("25%"));
    assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
    let d = deployment(2, json!(0), json!(5));
    assert_eq!(max_unavailable(&d), 2, "capped at replicas");
}

#[test]
fn the_new_replica_set_grows_within_the_surge() {
    let d = deployment(10, json!(3), json!(2));
    let old = rs("old", 10, 10, json!({}), 0);
    let new = rs("new", 0, 0, json!({}), 10);
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(3));
    let new = rs("new", 3, 0, json!({}), 10);
    assert_eq!(
        new_rs_new_replicas(&d, &[&old, &new], &new),
        Ok(3),
        "at max total: unchanged"
    );
    let old = rs("old", 8, 8, json!({}), 0);
    assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), Ok(5));
}

#[test]
fn resizing_mid_rollout_is_proportional() {
    // 10 replicas, surge 3: old 8 and new 5 were sized for max 13; scaling to 20 (max 23).
    let mut d = deployment(20, json!(3), json!(2));
    d.status = Some(DeploymentStatus {
        replicas: Some(13),
        ..DeploymentStatus::default()
    });
    let a = json!({MAX_REPLICAS: "13", DESIRED_REPLICAS: "10"});
    let old = rs("old", 8, 8, a.clone(), 0);
    let new = rs("new", 5, 0, a, 10);
    let mut active = vec![&old, &new];
    let (sizes, op) = proportional_sizes(&d, &mut active);
    assert_eq!(op, "up");
    // old: round(8*23/13)=14 (+6); new: round(5*23/13)=9 (+4); total 23.
    assert_eq!(sizes, [("old".to_string(), 14), ("new".to_string(), 9)]);
    // Scaling down to 5 (max 8): larger first; old 8*8/13 = 4.9 -> 5 (-3), new 5*8/13=3.1 -> 3 (-2).
    let d = deployment(5, json!(3), json!(2));
    let mut active = vec![&new, &old];
    let (sizes, op) = proportional_sizes(&d, &mut active);
    assert_eq!(op, "down");
    assert_eq!(sizes, [("old".to_string(), 5), ("new".to_string(), 3)]);
}

#[test]
fn rounding_leftovers_go_to_the_largest() {
    let d = deployment(4, json!(0), json!(1));
    let a = json!({MAX_REPLICAS: "3"});
    let x = rs("x", 1, 1, a.clone(), 0);
    let y = rs("y", 1, 1, a.clone(), 1);
    let z = rs("z", 1, 1, a, 2);
    let mut active = vec![&x, &y, &z];
    let (sizes, _) = proportional_sizes(&d, &mut active);
    // Each: round(1*4/3)=1 (+0); the leftover +1 goes to the first (ties: newest first).
    assert_eq!(
        sizes,
        [("z".to_string(), 2), ("y".to_string(), 1), ("x".to_string(), 1)]
    );
}

#[test]
fn revisions_move_to_the_history_when_a_template_comes_back() {
    let d = deployment(1, json!(1), json!(0));
    let mut r = rs(
        "a",
        0,
        0,
        json!({REVISION: "1", "kubernetes.io/change-cause": "old"}),
        0,
    );
    let mut d2 = d.clone();
    d2.metadata.annotations = Some(
        [
            ("kubernetes.io/change-cause".to_string(), "rollback".to_string()),
            (REVISION.to_string(), "3".to_string()),
        ]
        .into(),
    );
    assert!(set_new_rs_annotations(
        &d2,
        &mut r,
        "4",
        true,
        MAX_REVISION_HISTORY_CHARS
    ));
    let a = r.metadata.annotations.clone().unwrap();
    assert_eq!(a[REVISION], "4");
    assert_eq!(a[REVISION_HISTORY], "1");
    assert_eq!(a["kubernetes.io/change-cause"], "rollback", "annotations copied");
    assert!(
        !a.contains_key(DESIRED_REPLICAS),
        "existing replica sets keep their replica annotations"
    );
    assert!(set_new_rs_annotations(
        &d,
        &mut r,
        "6",
        true,
        MAX_REVISION_HISTORY_CHARS
    ));
    assert_eq!(r.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY], "1,4");
    assert!(
        !set_new_rs_annotations(&d, &mut r, "5", true, MAX_REVISION_HISTORY_CHARS),
        "never lowered"
    );
    // The history is trimmed from the oldest end to fit the limit.
    let mut r = rs(
        "b",
        0,
        0,
        json!({REVISION: "33", REVISION_HISTORY: "10,11,22"}),
        0,
    );
    set_new_rs_annotations(&d, &mut r, "44", true, 9);
    assert_eq!(r.metadata.annotations.unwrap()[REVISION_HISTORY], "11,22,33");
    let mut fresh = rs("c", 0, 0, json!(null), 0);
    assert!(set_new_rs_annotations(
        &d,
        &mut fresh,
        "1",
        false,
        MAX_REVISION_HISTORY_CHARS
    ));
    let a = fresh.metadata.annotations.unwrap();
    assert_eq!(
        (
            a[REVISION].as_str(),
            a[DESIRED_REPLICAS].as_str(),
            a[MAX_REPLICAS].as_str()
        ),
        ("1", "1", "2")
    );
    assert_eq!(
        max_revision(&[
            rs("x", 0, 0, json!({REVISION: "7"}), 0),
            rs("y", 0, 0, json!({REVISION: "bad"}), 0)
        ]),
        7
    );
}

#[test]
fn templates_compare_without_the_hash_label() {
    let d = deployment(1, json!(1), json!(0));
    let mut t = d.spec.template.clone();
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(HASH_LABEL.into(), "abc".into());
    assert!(equal_ignore_hash(&t, &d.spec.template));
    t.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
    assert!(
        equal_ignore_hash(&t, &d.spec.template),
        "empty maps equal missing ones"
    );
    t.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
    assert!(!equal_ignore_hash(&t, &d.spec.template));
    let h = compute_hash(&d.spec.template, None);
    assert_eq!(h, compute_hash(&d.spec.template, None), "stable");
    assert_ne!(
        h,
        compute_hash(&d.spec.template, Some(1)),
        "a collision changes it"
    );
    assert!(h.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
}

#[test]
fn conditions_follow_upstreams_transitions() {
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let later = Timestamp::from_second(1_800_000_100).unwrap();
    let mut s = DeploymentStatus::default();
    set_condition(
        &mut s,
        new_condition("Progressing", "True", reasons::NEW_RS_CREATED, "a".into(), now),
    );
    set_condition(
        &mut s,
        new_condition("Progressing", "True", reasons::RS_UPDATED, "b".into(), later),
    );
    let c = condition(&s, "Progressing").unwrap();
    assert_eq!(c.reason.as_deref(), Some(reasons::RS_UPDATED));
    assert_eq!(
        c.last_transition_time,
        Some(Time(now)),
        "same status keeps the transition time"
    );
    assert_eq!(c.last_update_time, Some(Time(later)));
    set_condition(
        &mut s,
        new_condition("Progressing", "True", reasons::RS_UPDATED, "c".into(), later),
    );
    assert_eq!(
        condition(&s, "Progressing").unwrap().message.as_deref(),
        Some("b"),
        "same reason: unchanged"
    );

    let mut d = deployment(3, json!(1), json!(0));
    d.spec.progress_deadline_seconds = Some(60);
    let st = DeploymentStatus {
        conditions: Some(vec![new_condition(
            "Progressing",
            "True",
            reasons::RS_UPDATED,
            "x".into(),
            now,
        )]),
        ..DeploymentStatus::default()
    };
    assert!(!deployment_timed_out(
        &d,
        &st,
        now + SignedDuration::from_secs(59)
    ));
    assert!(deployment_timed_out(&d, &st, now + SignedDuration::from_secs(61)));
    d.spec.progress_deadline_seconds = Some(i32::MAX);
    assert!(
        !deployment_timed_out(&d, &st, now + SignedDuration::from_secs(10_000)),
        "MaxInt32 means no deadline"
    );
}

#[test]
fn status_counts_and_availability() {
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let d = deployment(4, json!(1), json!(1));
    let old = rs("old", 2, 2, json!({}), 0);
    let new = rs("new", 3, 1, json!({}), 5);
    let s = calculate_status(&[&old, &new], Some(&new), &d, now);
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas
        ),
        (Some(5), Some(3), Some(3), Some(3), Some(2))
    );
    let avail = condition(&s, "Available").unwrap();
    assert_eq!(
        (avail.status.as_deref(), avail.reason.as_deref()),
        (Some("True"), Some(reasons::MIN_AVAILABLE)),
        "3 >= 4 - 1"
    );
    let old = rs("old", 2, 0, json!({}), 0);
    let s = calculate_status(&[&old, &new], Some(&new), &d, now);
    assert_eq!(
        condition(&s, "Available").unwrap().reason.as_deref(),
        Some(reasons::MIN_UNAVAILABLE)
    );
    assert!(!deployment_complete(&d, &s));
    let done = rs("new", 4, 4, json!({}), 5);
    let s = calculate_status(&[&done], Some(&done), &d, now);
    assert!(deployment_complete(&d, &s));
    assert!(
        deployment_progressing(&d, &s),
        "more available than the stored (empty) status"
    );
    let mut stored = s;
    stored.ready_replicas = None;
    stored.unavailable_replicas = Some(0);
    assert!(same_status(
        &stored,
        &DeploymentStatus {
            ready_replicas: Some(0),
            ..stored.clone()
        }
    ));
}

#[test]
fn saturation_needs_the_whole_deployment_available() {
    let d = deployment(3, json!(1), json!(0));
    assert!(is_saturated(
        &d,
        Some(&rs("n", 3, 3, json!({DESIRED_REPLICAS: "3"}), 0))
    ));
    assert!(!is_saturated(
        &d,
        Some(&rs("n", 3, 2, json!({DESIRED_REPLICAS: "3"}), 0))
    ));
    assert!(!is_saturated(&d, Some(&rs("n", 3, 3, json!({}), 0))));
    assert!(!is_saturated(&d, None));
}
