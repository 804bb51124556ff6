use super::*;

/// A schema whose `spec` carries `rules`, with a few typed fields.
fn schema_with(rules: Json) -> Json {
    json!({"type": "object", "properties": {"spec": {
    "type": "object",
    "x-kubernetes-validations": rules,
    "properties": {
        "replicas": {"type": "integer"},
        "ratio": {"type": "number"},
        "name": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "nums": {"type": "array", "items": {"type": "integer"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "port": {"x-kubernetes-int-or-string": true},
        "opt": {"type": "string"},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "foo-bar": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "every": {"type": "string", "format": "duration"},
    }}}})
}

fn errors_of(rules: Json, spec: Json) -> Vec<String> {
    let schema = schema_with(rules);
    let (v, errs) = compile(&schema, "s");
    assert!(errs.is_empty(), "{errs:?}");
    render(v.unwrap().validate(&json!({"spec": spec}), None))
}

fn render(errs: Vec<FieldError>) -> Vec<String> {
    errs.iter()
        .map(|e| format!("{}: {} ({})", e.field, e.message, e.reason))
        .collect()
}

fn compile_errors(rules: Json) -> Vec<String> {
    render(compile(&schema_with(rules), "s").1)
}

/// Evaluates one boolean rule against a fixed spec.
fn holds(rule: &str) -> bool {
    let spec = json!({"replicas": 3, "ratio": 0.5, "name": " Hello-World ", "tags": ["a", "b", "c"],
        "nums": [3, 1, 2], "labels": {"k": "v"}, "port": "http", "free": {"x": {"y": 1}}, "foo-bar": "fb",
        "at": "2024-05-01T10:00:00Z", "every": "90m"});
    let errs = errors_of(json!([{"rule": rule}]), spec);
    assert!(errs.iter().all(|e| e.contains("failed rule")), "{rule}: {errs:?}");
    errs.is_empty()
}

#[test]
fn rules_that_do_not_compile_are_reported_at_upstream_paths() {
    let errs = compile_errors(json!([{"rule": "self.replicas >"}]));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with(
        "s.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas >\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:"
    ), "{errs:?}");
    let errs = compile_errors(json!([{"rule": "self.replicaz > 1"}]));
    assert!(errs[0].ends_with(
        "compilation failed: ERROR: <input>:1:5: undefined field 'replicaz'\n | self.replicaz > 1\n | ....^ (FieldValueInvalid)"
    ), "{errs:?}");
    let errs =
        compile_errors(json!([{"rule": "foo(self)"}, {"rule": "other > 1"}, {"rule": "self.name.bar == 1"}]));
    assert!(errs[0].contains("undeclared reference to 'foo'"), "{errs:?}");
    assert!(errs[1].contains("undeclared reference to 'other'"), "{errs:?}");
    assert!(
        errs[2].contains("type 'string' does not support field selection"),
        "{errs:?}"
    );
    let errs =
        compile_errors(json!([{"rule": "1"}, {"rule": "true", "messageExpression": "self.replicas +"}]));
    assert!(
        errs[0].ends_with("compilation failed: cel expression must evaluate to a bool (FieldValueInvalid)")
    );
    assert!(errs[1].starts_with("s.properties[spec].x-kubernetes-validations[1].messageExpression: Invalid value: apiextensions.ValidationRule{"));
    assert!(errs[1].contains("messageExpression compilation failed: ERROR: <input>:1:"));
}

#[test]
fn rule_fields_are_checked() {
    let errs = compile_errors(json!([
        {"rule": ""},
        {"rule": "true", "message": " "},
        {"rule": "true", "reason": "Bogus"},
        {"rule": "true", "fieldPath": ".nope"},
        {"rule": "true", "optionalOldSelf": true},
        {"rule": "true\n&& true"},
    ]));
    assert_eq!(
        errs,
        [
            "s.properties[spec].x-kubernetes-validations[0].rule: Required value: rule is not specified (FieldValueRequired)",
            "s.properties[spec].x-kubernetes-validations[1].message: Invalid value: \" \": message must be non-empty if specified (FieldValueInvalid)",
            "s.properties[spec].x-kubernetes-validations[2].reason: Unsupported value: \"Bogus\": supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\" (FieldValueNotSupported)",
            "s.properties[spec].x-kubernetes-validations[3].fieldPath: Invalid value: \".nope\": fieldPath must be a valid path (FieldValueInvalid)",
            "s.properties[spec].x-kubernetes-validations[4].optionalOldSelf: Invalid value: true: may not be set if oldSelf is not used in rule (FieldValueInvalid)",
            "s.properties[spec].x-kubernetes-validations[5].message: Required value: message must be specified if rule contains line breaks (FieldValueRequired)",
        ]
    );
    let list = json!({"type": "object", "properties": {"l": {"type": "array",
        "items": {"type": "object", "properties": {"a": {"type": "string"}},
                  "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a"}]}}}});
    let errs = render(compile(&list, "s").1);
    assert_eq!(
        errs,
        [
            "s.properties[l].items.x-kubernetes-validations[0].rule: Invalid value: \"self.a == oldSelf.a\": oldSelf cannot be used on the uncorrelatable portion of the schema within s.properties[l].items (FieldValueInvalid)"
        ]
    );
}

#[test]
fn failures_carry_message_reason_and_field_path() {
    let rules = json!([
        {"rule": "self.replicas <= 10", "message": "must be at most 10"},
        {"rule": "self.replicas >= 0"},
        {"rule": "self.name != 'x'", "reason": "FieldValueForbidden", "fieldPath": ".name", "message": "no x"},
        {"rule": "has(self.opt)", "reason": "FieldValueRequired", "fieldPath": ".opt", "message": "opt is required"},
        {"rule": "self.replicas != 11", "messageExpression": "'replicas ' + string(self.replicas) + ' is odd'"},
        {"rule": "self.labels.all(k, k != 'bad')", "fieldPath": ".labels['bad']", "reason": "FieldValueDuplicate"},
    ]);
    let errs = errors_of(
        rules,
        json!({"replicas": 11, "name": "x", "labels": {"bad": "v"}}),
    );
    assert_eq!(
        errs,
        [
            "spec: Invalid value: must be at most 10 (FieldValueInvalid)",
            "spec.name: Forbidden: no x (FieldValueForbidden)",
            "spec.opt: Required value: opt is required (FieldValueRequired)",
            "spec: Invalid value: replicas 11 is odd (FieldValueInvalid)",
            "spec.labels[bad]: Duplicate value (FieldValueDuplicate)",
        ]
    );
    // Scalars show their value; the default message names the rule.
    let scalar = json!({"type": "object", "properties": {"n": {"type": "integer",
        "x-kubernetes-validations": [{"rule": "self < 5"}]}}});
    let errs = render(Validator::new(&scalar).unwrap().validate(&json!({"n": 7}), None));
    assert_eq!(
        errs,
        ["n: Invalid value: 7: failed rule: self < 5 (FieldValueInvalid)"]
    );
    // A root rule is reported at upstream's nil path.
    let root = json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('a')"}]});
    let errs = render(
        Validator::new(&root)
            .unwrap()
            .validate(&json!({"metadata": {"name": "b"}}), None),
    );
    assert_eq!(
        errs,
        ["<nil>: Invalid value: failed rule: self.metadata.name.startsWith('a') (FieldValueInvalid)"]
    );
}

#[test]
fn message_expression_failures_fall_back_to_the_message() {
    let rules = json!([
        {"rule": "false", "message": "static", "messageExpression": "self.missing_key_in_map()"},
        {"rule": "false", "message": "static2", "messageExpression": "'  '"},
        {"rule": "false", "messageExpression": "self.labels['nope']"},
    ]);
    let schema = schema_with(rules);
    let (v, errs) = compile(&schema, "s");
    assert_eq!(errs.len(), 1, "an unknown function is a compile error: {errs:?}");
    assert!(v.is_some());
    let rules = json!([
        {"rule": "false", "message": "static2", "messageExpression": "'  '"},
        {"rule": "false", "messageExpression": "self.name"},
    ]);
    assert_eq!(
        errors_of(rules, json!({"labels": {}})),
        [
            "spec: Invalid value: static2 (FieldValueInvalid)",
            "spec: Invalid value: failed rule: false (FieldValueInvalid)"
        ]
    );
}

#[test]
fn evaluation_errors_are_invalid_values_not_panics() {
    let errs = errors_of(
        json!([{"rule": "self.name == 'a'"}, {"rule": "self.port > 1"}, {"rule": "self.tags[5] == 'x'"},
               {"rule": "self.replicas / 0 == 1"}, {"rule": "self.replicas.all(c, c == 1)"}]),
        json!({"replicas": 1, "port": "http", "tags": [], "labels": {}}),
    );
    assert_eq!(
        errs,
        [
            "spec: Invalid value: \"object\": no such key: name evaluating rule: self.name == 'a' (FieldValueInvalid)",
            "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.port > 1 (FieldValueInvalid)",
            "spec: Invalid value: \"object\": index out of bounds: 5 evaluating rule: self.tags[5] == 'x' (FieldValueInvalid)",
            "spec: Invalid value: \"object\": division by zero evaluating rule: self.replicas / 0 == 1 (FieldValueInvalid)",
            "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a supported operator, function or macro signature for rule: self.replicas.all(c, c == 1) (FieldValueInvalid)",
        ]
    );
}

#[test]
fn values_are_typed_by_the_schema() {
    assert!(holds("self.replicas == 3 && self.ratio == 0.5"));
    assert!(holds("has(self.name) && !has(self.opt)"));
    assert!(holds("self.port == 'http'"));
    assert!(holds("self.labels['k'] == 'v' && 'k' in self.labels"));
    assert!(holds("self.free.x.y == 1"));
    assert!(holds("self.foo__dash__bar == 'fb'"));
    assert!(holds(
        "self.tags.exists(t, t == 'b') && self.tags.all(t, size(t) == 1)"
    ));
    assert!(holds("self.tags.map(t, t + t) == ['aa', 'bb', 'cc']"));
    assert!(holds("self.nums.filter(n, n > 1).size() == 2"));
    assert!(holds("self.tags.exists_one(t, t == 'a')"));
    assert!(holds(
        "self.at > timestamp('2024-01-01T00:00:00Z') && self.at.getFullYear() == 2024"
    ));
    assert!(holds(
        "self.every == duration('1h30m') && self.every > duration('1h')"
    ));
    assert!(!holds("self.replicas > 3"));
}

#[test]
fn list_library() {
    assert!(holds("[1, 2, 3].isSorted() && !self.nums.isSorted()"));
    assert!(holds(
        "self.nums.sum() == 6 && [1.5, 2.5].sum() == 4.0 && [].sum() == 0"
    ));
    assert!(holds(
        "self.nums.min() == 1 && self.nums.max() == 3 && ['b', 'a'].min() == 'a'"
    ));
    assert!(holds(
        "self.tags.indexOf('b') == 1 && ['a', 'b', 'a'].lastIndexOf('a') == 2 && self.tags.indexOf('z') == -1"
    ));
}

#[test]
fn sets_library() {
    assert!(holds(
        "sets.contains(self.tags, ['a', 'c']) && !sets.contains(self.tags, ['z'])"
    ));
    assert!(holds(
        "sets.equivalent(['c', 'b', 'a', 'a'], self.tags) && !sets.equivalent(['a'], self.tags)"
    ));
    assert!(holds(
        "sets.intersects(self.tags, ['z', 'b']) && !sets.intersects(self.tags, ['z'])"
    ));
    assert!(
        compile_errors(json!([{"rule": "sets.union(self.tags, self.tags) == []"}]))[0]
            .contains("undeclared reference to 'sets'")
    );
}

#[test]
fn regex_library() {
    assert!(holds(
        "self.name.find('[A-Z][a-z]+') == 'Hello' && self.name.find('[0-9]+') == ''"
    ));
    assert!(holds("'a1b22c333'.findAll('[0-9]+') == ['1', '22', '333']"));
    assert!(holds("'a1b22c333'.findAll('[0-9]+', 2) == ['1', '22']"));
    assert!(holds("self.name.matches('^ Hello')"));
}

#[test]
fn string_library() {
    assert!(holds("self.name.trim() == 'Hello-World'"));
    assert!(holds(
        "'AbC'.lowerAscii() == 'abc' && 'AbC'.upperAscii() == 'ABC'"
    ));
    assert!(holds(
        "'a-b-c'.replace('-', '+') == 'a+b+c' && 'a-b-c'.replace('-', '+', 1) == 'a+b-c'"
    ));
    assert!(holds(
        "'a,b,c'.split(',') == ['a', 'b', 'c'] && 'a,b,c'.split(',', 2) == ['a', 'b,c']"
    ));
    assert!(holds(
        "'hello'.substring(1) == 'ello' && 'hello'.substring(1, 3) == 'el'"
    ));
    assert!(holds(
        "self.tags.join() == 'abc' && self.tags.join('-') == 'a-b-c'"
    ));
    assert!(holds(
        "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3 && 'hello'.indexOf('l', 3) == 3"
    ));
    assert!(holds(
        "'héllo'.charAt(1) == 'é' && 'abc'.reverse() == 'cba' && size('héllo') == 5"
    ));
    assert!(holds(
        "'hello'.contains('ell') && 'hello'.startsWith('he') && 'hello'.endsWith('lo')"
    ));
}

#[test]
fn transition_rules_run_on_update_only() {
    let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "id": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "id is immutable"}]},
        "n": {"type": "integer", "x-kubernetes-validations": [
            {"rule": "!oldSelf.hasValue() || self >= oldSelf.value()", "optionalOldSelf": true, "message": "n may only grow"}]},
        "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
            "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}, "v": {"type": "integer"}},
                      "x-kubernetes-validations": [{"rule": "self.v >= oldSelf.v", "message": "v may only grow"}]}},
    }}}});
    let (v, errs) = compile(&schema, "s");
    assert!(errs.is_empty(), "{errs:?}");
    let v = v.unwrap();
    let obj = |id: &str, n: i64, items: Json| json!({"spec": {"id": id, "n": n, "items": items}});
    assert!(
        v.validate(&obj("a", 5, json!([{"k": "x", "v": 1}])), None)
            .is_empty(),
        "create: no old value"
    );
    let old = obj("a", 5, json!([{"k": "x", "v": 2}, {"k": "y", "v": 1}]));
    let new = obj(
        "b",
        4,
        json!([{"k": "y", "v": 0}, {"k": "x", "v": 3}, {"k": "z", "v": 0}]),
    );
    assert_eq!(
        render(v.validate(&new, Some(&old))),
        [
            "spec.id: Invalid value: \"b\": id is immutable (FieldValueInvalid)",
            "spec.items[0]: Invalid value: v may only grow (FieldValueInvalid)",
            "spec.n: Invalid value: 4: n may only grow (FieldValueInvalid)",
        ]
    );
    // optionalOldSelf: the rule also runs on create, with oldSelf absent.
    let schema_opt = json!({"type": "object", "properties": {"n": {"type": "integer",
        "x-kubernetes-validations": [{"rule": "oldSelf.hasValue() || self == 0", "optionalOldSelf": true}]}}});
    let v = Validator::new(&schema_opt).unwrap();
    assert_eq!(v.validate(&json!({"n": 1}), None).len(), 1);
    assert!(v.validate(&json!({"n": 1}), Some(&json!({"n": 1}))).is_empty());
}

#[test]
fn unchanged_values_are_ratcheted() {
    let schema = json!({"type": "object", "properties": {
        "a": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 5"}]},
        "b": {"type": "integer", "x-kubernetes-validations": [{"rule": "self < 5"}]}}});
    let v = Validator::new(&schema).unwrap();
    let old = json!({"a": 7, "b": 1});
    // `a` was already invalid and did not change: not reported; `b` changed.
    assert_eq!(
        render(v.validate(&json!({"a": 7, "b": 9}), Some(&old))),
        ["b: Invalid value: 9: failed rule: self < 5 (FieldValueInvalid)"]
    );
    assert_eq!(v.validate(&json!({"a": 8, "b": 1}), Some(&old)).len(), 1);
}

#[test]
fn cost_is_bounded() {
    let schema = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, self.all(c, a + b + c >= 0)))"}, {"rule": "true"}]}}});
    let v = Validator::new(&schema).unwrap();
    let list: Vec<i64> = (0..200).collect();
    let errs = render(v.validate(&json!({"l": list}), None));
    assert_eq!(
        errs,
        [
            "l: Invalid value: \"array\": 'operation cancelled: actual cost limit exceeded': no further validation rules will be run due to call cost exceeds limit for rule: self.all(a, self.all(b, self.all(c, a + b + c >= 0))) (FieldValueInvalid)"
        ]
    );
    // A string blown up by replace is charged before it is built.
    let s = json!({"type": "object", "properties": {"s": {"type": "string",
        "x-kubernetes-validations": [{"rule": "self.replace('a', self + self + self + self).size() > 0"}]}}});
    let big = "a".repeat(5000);
    let errs = render(Validator::new(&s).unwrap().validate(&json!({"s": big}), None));
    assert!(errs[0].contains("call cost exceeds limit"), "{errs:?}");
    // Small inputs stay well within the limits.
    let list: Vec<i64> = (0..20).collect();
    assert!(v.validate(&json!({"l": list}), None).is_empty());
}

#[test]
fn the_object_budget_spans_rules() {
    // Each evaluation stays under the per-call limit; together they exceed the object's budget.
    let items: Vec<Json> = (0..40).map(|i| json!({"n": i})).collect();
    let schema = json!({"type": "object", "properties": {"l": {"type": "array",
        "items": {"type": "object", "properties": {"n": {"type": "integer"}, "xs": {"type": "array", "items": {"type": "integer"}}},
            "x-kubernetes-validations": [{"rule": "self.xs.all(a, self.xs.all(b, a + b >= 0))"}]}}}});
    let v = Validator::new(&schema).unwrap();
    let xs: Vec<i64> = (0..250).collect();
    let items: Vec<Json> = items
        .into_iter()
        .map(|mut i| {
            i["xs"] = json!(xs);
            i
        })
        .collect();
    let errs = render(v.validate(&json!({"l": items}), None));
    assert!(
        errs.last().unwrap().contains(
            "validation failed due to running out of cost budget, no further validation rules will be run"
        ),
        "{errs:?}"
    );
}

/// Prints compile and evaluation times (a documented command, not an assertion):
/// `cargo test -p apiserver --lib crd::cel::tests::measure_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_speed() {
    let rules = json!([
        {"rule": "self.replicas <= 10", "message": "m"},
        {"rule": "self.tags.all(t, t.lowerAscii() == t)"},
        {"rule": "self.name.matches('^[a-z]+$')"},
        {"rule": "self.labels.all(k, k.size() < 10)"},
        {"rule": "self.nums.sum() < 100"},
    ]);
    let schema = schema_with(rules);
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        compile(&schema, "s");
    }
    eprintln!("compile 5 rules: {:?}", t.elapsed() / 1000);
    let v = Validator::new(&schema).unwrap();
    let obj = json!({"spec": {"replicas": 3, "tags": ["a", "b"], "name": "abc", "labels": {"a": "b"}, "nums": [1, 2]}});
    let t = std::time::Instant::now();
    for _ in 0..10000 {
        assert!(v.validate(&obj, None).is_empty());
    }
    eprintln!("validate 5 rules: {:?}", t.elapsed() / 10000);
    let list: Vec<i64> = (0..200).collect();
    let s2 = json!({"type": "object", "properties": {"l": {"type": "array", "items": {"type": "integer"},
        "x-kubernetes-validations": [{"rule": "self.all(a, self.all(b, self.all(c, a + b + c >= 0)))"}]}}});
    let v2 = Validator::new(&s2).unwrap();
    let t = std::time::Instant::now();
    v2.validate(&json!({"l": list}), None);
    eprintln!(
        "cubic rule stopped by the per-call limit after: {:?}",
        t.elapsed()
    );
}
