//! CEL validation rules of custom resources (`x-kubernetes-validations`), evaluated with the
//! `cel` crate as upstream's `apiextensions-apiserver/pkg/apiserver/schema/cel` does.
//!
//! [`compile`] checks the rules of a CRD version's schema when the CRD is created or updated
//! (rule/message/reason/fieldPath checks, parse errors, undeclared identifiers and functions,
//! fields that the schema does not declare, `oldSelf` on uncorrelatable list items); a
//! [`Validator`] holds the compiled programs of one version, built once per CRD change, and
//! [`Validator::validate`] evaluates them on a custom resource with `self` (and `oldSelf` for
//! transition rules) bound at each schema node.
//!
//! Implemented: `rule`, `message`, `messageExpression`, `reason`, `fieldPath`,
//! `optionalOldSelf` (`oldSelf.hasValue()`, `.value()`, `.orValue()`); transition rules run only
//! where an old value correlates (object properties, map entries, `x-kubernetes-list-type: map`
//! items); upstream's ratcheting (a failing rule without `oldSelf` on a value that is unchanged
//! since the stored object is not reported); the resource root exposes `apiVersion`, `kind`,
//! `metadata.name` and `metadata.generateName`; property names are escaped like upstream
//! (`foo__dash__bar`); `date-time`, `date`, `duration` and `byte` strings are timestamps,
//! durations and bytes. Functions: see [`library`] (standard ones, Kubernetes' list and regex
//! libraries, cel-go's string extensions, Kubernetes' `sets`). Cost: each evaluation is metered (one unit per
//! operation or comprehension step, per list element or per ten string bytes touched), with
//! upstream's limits: 1 000 000 per call and 10 000 000 per object.
//!
//! Not implemented: static cost estimation at CRD creation (the runtime limits apply instead),
//! full static type checking (only field names and identifiers are checked when the CRD is
//! written; type mismatches surface at evaluation as `no such overload`), rules under `allOf`,
//! the Kubernetes `quantity`, `url`, `ip`, `cidr`, `format` and `optional.*`
//! libraries, ratcheting warnings (ratcheted errors are dropped silently).

pub mod library;
pub mod value;

use serde_json::{Value as Json, json};

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr};
use cel::parser::Parser;

use crate::error::FieldError;
use library::Meter;

/// Upstream's per-call cost limit (`PerCallLimit`).
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// Upstream's runtime cost budget per object (`RuntimeCELCostBudget`).
pub const RUNTIME_BUDGET: u64 = 10_000_000;
/// Upstream's bound on an evaluated messageExpression.
const MAX_MESSAGE_BYTES: usize = 5 * 1024;
const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    rule: String,
    message: String,
    reason: Option<String>,
    field_path: Vec<Segment>,
    optional_old_self: bool,
    program: IdedExpr,
    message_program: Option<IdedExpr>,
    uses_old_self: bool,
}

#[derive(Clone, Debug)]
enum Segment {
    Field(String),
    Key(String),
}

/// The rules of one schema node and the nodes below it that have rules.
#[derive(Debug, Default)]
struct Node {
    schema: Json,
    resource_root: bool,
    rules: Vec<Rule>,
    properties: Vec<(String, Node)>,
    additional: Option<Box<Node>>,
    items: Option<Box<Node>>,
}

/// The compiled rules of one CRD version.
#[derive(Debug)]
pub struct Validator {
    root: Node,
}

/// Compiles the rules of `schema` (a version's `openAPIV3Schema`), reporting problems under
/// `path` (e.g. `spec.validation.openAPIV3Schema`).
pub fn compile(schema: &Json, path: &str) -> (Option<Validator>, Vec<FieldError>) {
    let mut errs = Vec::new();
    let root = build(schema, path, true, None, &mut errs);
    (root.map(|root| Validator { root }), errs)
}

impl Validator {
    /// The validator of a schema, or None when it has no rules. Problems that [`compile`]
    /// reports when the CRD is written are skipped here.
    pub fn new(schema: &Json) -> Option<Validator> {
        compile(schema, "").0
    }

    /// Evaluates every rule on `obj` (`old`: the stored object on updates) and returns
    /// upstream-style field errors.
    pub fn validate(&self, obj: &Json, old: Option<&Json>) -> Vec<FieldError> {
        let mut run = Run {
            errs: Vec::new(),
            left: RUNTIME_BUDGET,
            stopped: false,
        };
        run.walk(&self.root, obj, old, "", false);
        run.errs
    }
}

/// True when the schema node or anything below it has rules.
fn has_rules(schema: &Json) -> bool {
    let Json::Object(m) = schema else {
        return false;
    };
    let own = m
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
        .is_some_and(|a| !a.is_empty());
    let in_properties = m
        .get("properties")
        .and_then(Json::as_object)
        .is_some_and(|p| p.values().any(has_rules));
    own || in_properties
        || ["items", "additionalProperties"]
            .iter()
            .any(|k| m.get(*k).is_some_and(has_rules))
}

fn build(
    schema: &Json,
    path: &str,
    resource_root: bool,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Option<Node> {
    if !has_rules(schema) {
        return None;
    }
    let mut node = Node {
        schema: schema.clone(),
        resource_root,
        ..Node::default()
    };
    if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Json::as_array) {
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{path}.x-kubernetes-validations[{i}]");
            if let Some(rule) = compile_rule(r, schema, resource_root, &rp, uncorrelatable, errs) {
                node.rules.push(rule);
            }
        }
    }
    let embedded = |s: &Json| s.get("x-kubernetes-embedded-resource").and_then(Json::as_bool) == Some(true);
    if let Some(props) = schema.get("properties").and_then(Json::as_object) {
        for (k, s) in props {
            if let Some(child) = build(
                s,
                &format!("{path}.properties[{k}]"),
                embedded(s),
                uncorrelatable,
                errs,
            ) {
                node.properties.push((k.clone(), child));
            }
        }
    }
    if let Some(s) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        let p = format!("{path}.additionalProperties");
        node.additional = build(s, &p, embedded(s), uncorrelatable, errs).map(Box::new);
    }
    if let Some(s) = schema.get("items").filter(|a| a.is_object()) {
        let p = format!("{path}.items");
        let list_map = schema.get("x-kubernetes-list-type").and_then(Json::as_str) == Some("map");
        let below = uncorrelatable.or((!list_map).then_some(p.as_str()));
        node.items = build(s, &p, embedded(s), below, errs).map(Box::new);
    }
    Some(node)
}

/// Go's `%#v` of an `apiextensions.ValidationRule`, as upstream shows a rule that does not
/// compile.
fn go_rule(r: &Json) -> String {
    let s = |k: &str| Json::String(r[k].as_str().unwrap_or("").to_string()).to_string();
    let reason = match r["reason"].as_str() {
        Some(v) => format!("(*apiextensions.FieldValueErrorReason)({})", json!(v)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".into(),
    };
    let optional = match r["optionalOldSelf"].as_bool() {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath"),
    )
}

fn invalid_raw(field: String, shown: &str, detail: &str) -> FieldError {
    FieldError {
        reason: "FieldValueInvalid",
        field,
        message: format!("Invalid value: {shown}: {detail}"),
    }
}

fn compile_rule(
    r: &Json,
    schema: &Json,
    resource_root: bool,
    path: &str,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<FieldError>,
) -> Option<Rule> {
    let text = |k: &str| r.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    let (rule, message, message_expr, field_path) = (
        text("rule"),
        text("message"),
        text("messageExpression"),
        text("fieldPath"),
    );
    let before = errs.len();
    if rule.trim().is_empty() {
        errs.push(FieldError::required(
            format!("{path}.rule"),
            "rule is not specified",
        ));
    } else if !message.is_empty() && message.trim().is_empty() {
        errs.push(FieldError::invalid(
            format!("{path}.message"),
            &json!(message),
            "message must be non-empty if specified",
        ));
    } else if message.trim().contains(['\n', '\r']) {
        errs.push(FieldError::invalid(
            format!("{path}.message"),
            &json!(message),
            "message must not contain line breaks",
        ));
    } else if rule.trim().contains(['\n', '\r']) && message.trim().is_empty() {
        errs.push(FieldError::required(
            format!("{path}.message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    if !message_expr.is_empty() && message_expr.trim().is_empty() {
        errs.push(FieldError::required(
            format!("{path}.messageExpression"),
            "messageExpression must be non-empty if specified",
        ));
    }
    let reason = r.get("reason").and_then(Json::as_str).map(str::to_string);
    if let Some(reason) = &reason
        && !REASONS.contains(&reason.as_str())
    {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: format!("{path}.reason"),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                json!(reason),
                REASONS.map(|r| format!("\"{r}\"")).join(", ")
            ),
        });
    }
    let mut segments = Vec::new();
    if !field_path.is_empty() {
        if field_path.trim().is_empty() {
            errs.push(FieldError::invalid(
                format!("{path}.fieldPath"),
                &json!(field_path),
                "fieldPath must be non-empty if specified",
            ));
        } else if field_path.contains(['\n', '\r']) {
            errs.push(FieldError::invalid(
                format!("{path}.fieldPath"),
                &json!(field_path),
                "fieldPath must not contain line breaks",
            ));
        } else {
            match parse_field_path(&field_path, schema) {
                Some(s) => segments = s,
                None => errs.push(FieldError::invalid(
                    format!("{path}.fieldPath"),
                    &json!(field_path),
                    "fieldPath must be a valid path",
                )),
            }
        }
    }
    if errs.len() > before {
        return None;
    }
    let optional_old_self = r.get("optionalOldSelf").and_then(Json::as_bool);
    let compiled = match compile_expr(
        &rule,
        schema,
        resource_root,
        optional_old_self == Some(true),
        Want::Bool,
    ) {
        Ok(c) => c,
        Err(detail) => {
            errs.push(invalid_raw(
                format!("{path}.rule"),
                &go_rule(r),
                &format!("compilation failed: {detail}"),
            ));
            return None;
        }
    };
    let message_program = if message_expr.trim().is_empty() {
        None
    } else {
        match compile_expr(
            &message_expr,
            schema,
            resource_root,
            optional_old_self == Some(true),
            Want::String,
        ) {
            Ok(c) => Some(c.expr),
            Err(detail) => {
                errs.push(invalid_raw(
                    format!("{path}.messageExpression"),
                    &go_rule(r),
                    &format!("messageExpression compilation failed: {detail}"),
                ));
                return None;
            }
        }
    };
    if compiled.uses_old_self {
        if let Some(within) = uncorrelatable {
            errs.push(FieldError::invalid(
                format!("{path}.rule"),
                &json!(rule),
                &format!(
                    "oldSelf cannot be used on the uncorrelatable portion of the schema within {within}"
                ),
            ));
            return None;
        }
    } else if let Some(b) = optional_old_self {
        errs.push(FieldError::invalid(
            format!("{path}.optionalOldSelf"),
            &json!(b),
            "may not be set if oldSelf is not used in rule",
        ));
        return None;
    }
    Some(Rule {
        rule,
        message,
        reason,
        field_path: segments,
        optional_old_self: optional_old_self == Some(true),
        program: compiled.expr,
        message_program,
        uses_old_self: compiled.uses_old_self,
    })
}

/// Parses a rule's `fieldPath` (`.a.b`, `.a['b.c']`) against the node's schema.
fn parse_field_path(path: &str, schema: &Json) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let mut cur = schema;
    let mut rest = path.trim();
    while !rest.is_empty() {
        let name = if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']")?;
            let name = r[..end].replace("\\'", "'").replace("\\\\", "\\");
            rest = &r[end + 2..];
            name
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            rest = &r[end..];
            r[..end].to_string()
        } else {
            return None;
        };
        if let Some(props) = cur.get("properties").and_then(Json::as_object) {
            cur = props.get(&name)?;
            out.push(Segment::Field(name));
        } else if let Some(extra) = cur.get("additionalProperties").filter(|a| a.is_object()) {
            cur = extra;
            out.push(Segment::Key(name));
        } else {
            return None;
        }
    }
    Some(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Want {
    Bool,
    String,
}

struct Compiled {
    expr: IdedExpr,
    uses_old_self: bool,
}

/// The static type the checker tracks: a schema node (and whether it is a resource root),
/// or anything.
#[derive(Clone, Copy)]
enum Ty<'a> {
    Schema(&'a Json, bool),
    Dyn,
}

static APIVERSION_KIND: std::sync::LazyLock<Json> = std::sync::LazyLock::new(|| json!({"type": "string"}));
static METADATA: std::sync::LazyLock<Json> = std::sync::LazyLock::new(
    || json!({"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}),
);

struct Checker<'a> {
    source: &'a str,
    root: &'a Json,
    resource_root: bool,
    optional_old_self: bool,
    /// Comprehension variables in scope, innermost last, with their types.
    scope: Vec<(String, Ty<'a>)>,
    uses_old_self: bool,
    error: Option<String>,
}

impl<'a> Checker<'a> {
    /// Records the first error, located at the first occurrence of `needle` in the source.
    fn fail(&mut self, needle: &str, msg: String) {
        if self.error.is_some() {
            return;
        }
        let offset = self.source.find(needle).unwrap_or(0);
        let before = &self.source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.source[line_start..offset].chars().count() + 1;
        let text = self.source.lines().nth(line - 1).unwrap_or("");
        self.error = Some(format!(
            "ERROR: <input>:{line}:{col}: {msg}\n | {text}\n | {}^",
            ".".repeat(col - 1)
        ));
    }

    fn check(&mut self, e: &IdedExpr) -> Ty<'a> {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some((_, t)) = self.scope.iter().rev().find(|(v, _)| v == name) {
                    return *t;
                }
                match name.as_str() {
                    "self" => Ty::Schema(self.root, self.resource_root),
                    "oldSelf" => {
                        self.uses_old_self = true;
                        if self.optional_old_self {
                            Ty::Dyn
                        } else {
                            Ty::Schema(self.root, self.resource_root)
                        }
                    }
                    _ => {
                        self.fail(
                            name,
                            format!("undeclared reference to '{name}' (in container '')"),
                        );
                        Ty::Dyn
                    }
                }
            }
            Expr::Select(sel) => {
                let t = self.check(&sel.operand);
                self.select(t, &sel.field)
            }
            Expr::Call(call) => self.call(call),
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::List(l) => {
                for el in &l.elements {
                    self.check(el);
                }
                Ty::Dyn
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(me) => {
                            self.check(&me.key);
                            self.check(&me.value);
                        }
                        EntryExpr::StructField(f) => {
                            self.fail(&f.field, "struct construction is not supported".into());
                        }
                    }
                }
                Ty::Dyn
            }
            Expr::Literal(_) => Ty::Dyn,
            Expr::Struct(s) => {
                self.fail(
                    &s.type_name,
                    format!("undeclared reference to '{}' (in container '')", s.type_name),
                );
                Ty::Dyn
            }
            Expr::Unspecified => {
                self.fail("", "unsupported expression".into());
                Ty::Dyn
            }
        }
    }

    fn select(&mut self, t: Ty<'a>, field: &str) -> Ty<'a> {
        let Ty::Schema(s, root) = t else {
            return Ty::Dyn;
        };
        if root {
            match field {
                "apiVersion" | "kind" => return Ty::Schema(&APIVERSION_KIND, false),
                "metadata" => return Ty::Schema(&METADATA, false),
                _ => {}
            }
        }
        if s.get("x-kubernetes-preserve-unknown-fields")
            .and_then(Json::as_bool)
            == Some(true)
            && s.get("properties").is_none()
        {
            return Ty::Dyn;
        }
        if let Some(props) = s.get("properties").and_then(Json::as_object) {
            let found = props
                .iter()
                .find(|(k, _)| value::escape(k).as_deref() == Some(field));
            return match found {
                Some((_, p)) => {
                    let embedded =
                        p.get("x-kubernetes-embedded-resource").and_then(Json::as_bool) == Some(true);
                    Ty::Schema(p, embedded)
                }
                None if s
                    .get("x-kubernetes-preserve-unknown-fields")
                    .and_then(Json::as_bool)
                    == Some(true) =>
                {
                    Ty::Dyn
                }
                None => {
                    self.fail(&format!(".{field}"), format!("undefined field '{field}'"));
                    Ty::Dyn
                }
            };
        }
        if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
            return Ty::Schema(extra, false);
        }
        match s.get("type").and_then(Json::as_str) {
            Some(ty @ ("string" | "integer" | "number" | "boolean" | "array")) => {
                let cel = match ty {
                    "integer" => "int",
                    "number" => "double",
                    "boolean" => "bool",
                    "array" => "list",
                    other => other,
                };
                self.fail(
                    &format!(".{field}"),
                    format!("type '{cel}' does not support field selection"),
                );
                Ty::Dyn
            }
            _ => Ty::Dyn,
        }
    }

    fn call(&mut self, call: &CallExpr) -> Ty<'a> {
        if let Some(t) = call.target.as_deref()
            && library::namespaced(t, &call.func_name).is_none()
        {
            self.check(t);
        }
        let args: Vec<Ty<'a>> = call.args.iter().map(|a| self.check(a)).collect();
        let name = call.func_name.as_str();
        if name == "_[_]" {
            if let Some(Ty::Schema(s, _)) = args.first() {
                if let Some(items) = s.get("items") {
                    return Ty::Schema(items, false);
                }
                if let Some(extra) = s.get("additionalProperties").filter(|a| a.is_object()) {
                    return Ty::Schema(extra, false);
                }
            }
            return Ty::Dyn;
        }
        let operator =
            name.starts_with('_') || name.starts_with('@') || name.starts_with("!_") || name == "-_";
        let namespaced = call
            .target
            .as_deref()
            .is_some_and(|t| library::namespaced(t, name).is_some());
        if !operator && !namespaced && !library::is_function(name) {
            self.fail(
                name,
                format!("undeclared reference to '{name}' (in container '')"),
            );
        }
        Ty::Dyn
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Ty<'a> {
        // List elements are typed by `items`; map keys (and anything else) are not checked.
        let element = match self.check(&c.iter_range) {
            Ty::Schema(s, _) if s.get("type").and_then(Json::as_str) == Some("array") => {
                match s.get("items") {
                    Some(items) => {
                        let embedded = items
                            .get("x-kubernetes-embedded-resource")
                            .and_then(Json::as_bool)
                            == Some(true);
                        Ty::Schema(items, embedded)
                    }
                    None => Ty::Dyn,
                }
            }
            _ => Ty::Dyn,
        };
        self.check(&c.accu_init);
        self.scope.push((c.iter_var.clone(), element));
        if let Some(v2) = &c.iter_var2 {
            self.scope.push((v2.clone(), Ty::Dyn));
        }
        self.scope.push((c.accu_var.clone(), Ty::Dyn));
        self.check(&c.loop_cond);
        self.check(&c.loop_step);
        self.check(&c.result);
        self.scope
            .truncate(self.scope.len() - 2 - usize::from(c.iter_var2.is_some()));
        Ty::Dyn
    }
}

/// Rewrites operators whose cost grows with their operands, and comprehension steps, into
/// calls of the metered functions of [`library`].
fn instrument(e: &mut IdedExpr) {
    match &mut e.expr {
        Expr::Call(call) => {
            // `sets.contains(a, b)` parses as a method of an identifier `sets`.
            if let Some(full) = call
                .target
                .as_deref()
                .and_then(|t| library::namespaced(t, &call.func_name))
            {
                call.func_name = full.to_string();
                call.target = None;
            }
            if let Some(t) = call.target.as_deref_mut() {
                instrument(t);
            }
            for a in &mut call.args {
                instrument(a);
            }
            if call.target.is_none() && call.args.len() == 2 {
                let metered = match call.func_name.as_str() {
                    "_+_" => Some(library::ADD),
                    "_==_" => Some(library::EQ),
                    "_!=_" => Some(library::NE),
                    "@in" => Some(library::IN),
                    "_<_" => Some(library::LT),
                    "_<=_" => Some(library::LE),
                    "_>_" => Some(library::GT),
                    "_>=_" => Some(library::GE),
                    _ => None,
                };
                if let Some(m) = metered {
                    call.func_name = m.to_string();
                }
            }
        }
        Expr::Comprehension(c) => {
            instrument(&mut c.iter_range);
            instrument(&mut c.accu_init);
            instrument(&mut c.loop_cond);
            instrument(&mut c.loop_step);
            instrument(&mut c.result);
            wrap(&mut c.iter_range, library::RANGE);
            wrap(&mut c.loop_step, library::STEP);
        }
        Expr::Select(s) => instrument(&mut s.operand),
        Expr::List(l) => l.elements.iter_mut().for_each(instrument),
        Expr::Map(m) => {
            for entry in &mut m.entries {
                if let EntryExpr::MapEntry(me) = &mut entry.expr {
                    instrument(&mut me.key);
                    instrument(&mut me.value);
                }
            }
        }
        _ => {}
    }
}

fn wrap(e: &mut IdedExpr, func: &str) {
    let inner = std::mem::take(e);
    *e = IdedExpr {
        id: inner.id,
        expr: Expr::Call(CallExpr {
            func_name: func.to_string(),
            target: None,
            args: vec![inner],
        }),
    };
}

fn compile_expr(
    source: &str,
    schema: &Json,
    resource_root: bool,
    optional_old_self: bool,
    want: Want,
) -> Result<Compiled, String> {
    let parsed = std::panic::catch_unwind(|| Parser::new().parse(source))
        .map_err(|_| "ERROR: <input>:1:1: expression could not be parsed".to_string())?;
    let mut expr = parsed.map_err(|e| e.to_string())?;
    let mut checker = Checker {
        source,
        root: schema,
        resource_root,
        optional_old_self,
        scope: Vec::new(),
        uses_old_self: false,
        error: None,
    };
    checker.check(&expr);
    if let Some(err) = checker.error {
        return Err(err);
    }
    if let Expr::Literal(lit) = &expr.expr {
        let is_bool = matches!(lit, cel::common::value::CelVal::Boolean(_));
        let is_string = matches!(lit, cel::common::value::CelVal::String(_));
        match want {
            Want::Bool if !is_bool => return Err("cel expression must evaluate to a bool".into()),
            Want::String if !is_string => return Err("messageExpression must evaluate to a string".into()),
            _ => {}
        }
    }
    let uses_old_self = checker.uses_old_self;
    instrument(&mut expr);
    Ok(Compiled { expr, uses_old_self })
}

/// One validation pass over an object.
struct Run {
    errs: Vec<FieldError>,
    left: u64,
    stopped: bool,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The field path as upstream prints it (`<nil>` for the root).
fn shown_path(path: &str) -> String {
    if path.is_empty() {
        "<nil>".to_string()
    } else {
        path.to_string()
    }
}

enum Outcome {
    Pass,
    Fail,
    Error(String),
    /// The limit of this call or of the object ran out: no further rules run.
    Exhausted(FieldError),
}

impl Run {
    fn walk(&mut self, node: &Node, v: &Json, old: Option<&Json>, path: &str, inherited_ratchet: bool) {
        if self.stopped || v.is_null() {
            return;
        }
        let ratchet = old.map_or(inherited_ratchet, |o| o == v);
        if !node.rules.is_empty() {
            self.rules(node, v, old, path, ratchet);
        }
        match v {
            Json::Object(map) => {
                for (k, c) in &node.properties {
                    if let Some(cv) = map.get(k) {
                        let co = old.and_then(|o| o.get(k));
                        self.walk(c, cv, co, &child(path, k), ratchet);
                    }
                }
                if let Some(c) = &node.additional {
                    for (k, cv) in map {
                        let co = old.and_then(|o| o.get(k));
                        self.walk(c, cv, co, &format!("{path}[{k}]"), ratchet);
                    }
                }
            }
            Json::Array(items) => {
                if let Some(c) = &node.items {
                    let keys: Option<Vec<&str>> =
                        (node.schema["x-kubernetes-list-type"] == "map").then(|| {
                            node.schema["x-kubernetes-list-map-keys"]
                                .as_array()
                                .map(|a| a.iter().filter_map(Json::as_str).collect())
                                .unwrap_or_default()
                        });
                    for (i, item) in items.iter().enumerate() {
                        let co = keys.as_ref().and_then(|keys| {
                            old.and_then(Json::as_array)?
                                .iter()
                                .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
                        });
                        self.walk(c, item, co, &format!("{path}[{i}]"), ratchet);
                    }
                }
            }
            _ => {}
        }
    }

    fn rules(&mut self, node: &Node, v: &Json, old: Option<&Json>, path: &str, ratchet: bool) {
        let this = value::to_cel(v, Some(&node.schema), node.resource_root);
        let old_cel = old.map(|o| value::to_cel(o, Some(&node.schema), node.resource_root));
        let shown_type = node.schema["type"].as_str().unwrap_or("");
        for rule in &node.rules {
            if self.stopped {
                return;
            }
            if rule.uses_old_self && old.is_none() && !rule.optional_old_self {
                continue;
            }
            let mut ctx = library::ROOT.new_inner_scope();
            ctx.add_variable_from_value("self", this.clone());
            if rule.uses_old_self {
                let o = if rule.optional_old_self {
                    library::optional(old_cel.clone())
                } else {
                    old_cel.clone().unwrap_or(cel::Value::Null)
                };
                ctx.add_variable_from_value("oldSelf", o);
            }
            let outcome = self.eval(&rule.program, &ctx, rule, path, shown_type);
            let mut fpath = path.to_string();
            for seg in &rule.field_path {
                fpath = match seg {
                    Segment::Field(f) => child(&fpath, f),
                    Segment::Key(k) => format!("{fpath}[{k}]"),
                };
            }
            match outcome {
                Outcome::Pass => {}
                Outcome::Exhausted(e) => {
                    self.errs.push(e);
                    self.stopped = true;
                }
                Outcome::Error(detail) => {
                    self.errs.push(invalid_shown(path, shown_type, &detail));
                }
                Outcome::Fail => {
                    let mut detail = None;
                    if let Some(mp) = &rule.message_program {
                        match self.message(mp, &ctx) {
                            Ok(m) => detail = m,
                            Err(e) => {
                                self.errs.push(invalid_shown(&fpath, shown_type, &e));
                                self.stopped = true;
                                return;
                            }
                        }
                    }
                    let detail = detail.unwrap_or_else(|| {
                        if rule.message.trim().is_empty() {
                            format!("failed rule: {}", rule.rule.trim())
                        } else {
                            rule.message.trim().to_string()
                        }
                    });
                    if !rule.uses_old_self && ratchet {
                        continue;
                    }
                    self.errs.push(error_for_reason(
                        rule.reason.as_deref(),
                        &fpath,
                        v,
                        shown_type,
                        &detail,
                    ));
                }
            }
        }
    }

    fn eval(&mut self, program: &IdedExpr, ctx: &cel::Context, rule: &Rule, path: &str, ty: &str) -> Outcome {
        let limit = self.left.min(PER_CALL_LIMIT);
        let (result, spent, exceeded) = Meter::run(limit, || cel::Value::resolve(program, ctx));
        self.left = self.left.saturating_sub(spent);
        let rule_text = rule_error_string(rule);
        if exceeded {
            let detail = if limit < PER_CALL_LIMIT {
                "validation failed due to running out of cost budget, no further validation rules will be run"
                    .to_string()
            } else {
                format!(
                    "'{}': no further validation rules will be run due to call cost exceeds limit for rule: {rule_text}",
                    library::COST_EXCEEDED
                )
            };
            return Outcome::Exhausted(invalid_shown(path, ty, &detail));
        }
        match result {
            Ok(cel::Value::Bool(true)) => Outcome::Pass,
            Ok(cel::Value::Bool(false)) => Outcome::Fail,
            Ok(_) => Outcome::Error(format!(
                "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule_text}"
            )),
            Err(cel::ExecutionError::NoSuchOverload | cel::ExecutionError::ValuesNotComparable(..)) => {
                Outcome::Error(format!(
                    "'no such overload': call arguments did not match a supported operator, function or macro signature for rule: {rule_text}"
                ))
            }
            Err(e) => Outcome::Error(format!("{} evaluating rule: {rule_text}", error_text(&e))),
        }
    }

    /// Evaluates a messageExpression: Ok(Some(message)), Ok(None) to fall back to the
    /// message, Err when the budget ran out.
    fn message(&mut self, program: &IdedExpr, ctx: &cel::Context) -> Result<Option<String>, String> {
        let limit = self.left.min(PER_CALL_LIMIT);
        let (result, spent, exceeded) = Meter::run(limit, || cel::Value::resolve(program, ctx));
        self.left = self.left.saturating_sub(spent);
        if exceeded {
            return Err(
                "messageExpression evaluation failed due to running out of cost budget, no further validation rules will be run"
                    .into(),
            );
        }
        match result {
            Ok(cel::Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() || t.len() > MAX_MESSAGE_BYTES || t.contains('\n') {
                    tracing::debug!("messageExpression result not usable as a message");
                    Ok(None)
                } else {
                    Ok(Some(t.to_string()))
                }
            }
            other => {
                tracing::debug!(?other, "messageExpression evaluation failed");
                Ok(None)
            }
        }
    }
}

/// cel-go's wording of common evaluation errors.
fn error_text(e: &cel::ExecutionError) -> String {
    match e {
        cel::ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        cel::ExecutionError::IndexOutOfBounds(i) => format!("index out of bounds: {}", shown_cel(i)),
        cel::ExecutionError::DivisionByZero(_) => "division by zero".into(),
        cel::ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        cel::ExecutionError::Overflow(..) => "integer overflow".into(),
        cel::ExecutionError::FunctionError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn shown_cel(v: &cel::Value) -> String {
    match v {
        cel::Value::Int(i) => i.to_string(),
        cel::Value::UInt(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

fn rule_error_string(rule: &Rule) -> String {
    if rule.message.trim().is_empty() {
        rule.rule.trim().to_string()
    } else {
        rule.message.trim().to_string()
    }
}

/// `Invalid value: <value>: detail`; objects and arrays omit the value (upstream since 1.35).
fn invalid_at(path: &str, v: &Json, ty: &str, detail: &str) -> FieldError {
    if ty == "object" || ty == "array" {
        FieldError {
            reason: "FieldValueInvalid",
            field: shown_path(path),
            message: format!("Invalid value: {detail}"),
        }
    } else {
        FieldError::invalid(shown_path(path), v, detail)
    }
}

/// An invalid-value error showing the schema type instead of the value (upstream's
/// evaluation and budget errors).
fn invalid_shown(path: &str, ty: &str, detail: &str) -> FieldError {
    FieldError::invalid(shown_path(path), &json!(ty), detail)
}

fn error_for_reason(reason: Option<&str>, path: &str, v: &Json, ty: &str, detail: &str) -> FieldError {
    match reason {
        Some("FieldValueForbidden") => FieldError::forbidden(shown_path(path), detail),
        Some("FieldValueRequired") => FieldError::required(shown_path(path), detail),
        Some("FieldValueDuplicate") => FieldError {
            reason: "FieldValueDuplicate",
            field: shown_path(path),
            message: if ty == "object" || ty == "array" {
                "Duplicate value".to_string()
            } else {
                format!("Duplicate value: {v}")
            },
        },
        _ => invalid_at(path, v, ty, detail),
    }
}

/// The error upstream adds instead of running rules when the object has type errors.
pub fn blocked() -> FieldError {
    FieldError::invalid(
        "<nil>",
        &json!("null"),
        "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
    )
}

#[cfg(test)]
mod tests;
