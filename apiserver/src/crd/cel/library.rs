//! The functions rules can call: the `cel` crate's standard ones, Kubernetes' list, regex and
//! `sets` libraries, cel-go's string extensions, `optionalOldSelf`'s optional methods, and the
//! cost-metered operators [`super::compile`] rewrites expressions to use.
//!
//! Cost: every metered step charges the thread-local [`Meter`]; an evaluation that spends more
//! than its limit fails with [`COST_EXCEEDED`]. Units follow upstream's scale: one per operation
//! or comprehension step, one per list element or map entry touched, one per ten string bytes.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::objects::{Key, Map};
use cel::{Context, ExecutionError, FunctionContext, ResolveResult, Value};

/// The error text of an evaluation that ran out of its cost limit (upstream's wording).
pub const COST_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// The key of the one-entry map that stands for a CEL optional (`optionalOldSelf`).
const OPTIONAL_KEY: &str = "@optional";

thread_local! {
    static LEFT: Cell<u64> = const { Cell::new(u64::MAX) };
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// A cost limit for the evaluations run inside [`Meter::run`] on this thread.
pub struct Meter;

impl Meter {
    /// Runs `f` with `limit` units; returns its result, the units spent and whether the limit
    /// was exceeded. Panics of the interpreter (unsupported constructs) become errors.
    pub fn run<T>(
        limit: u64,
        f: impl FnOnce() -> Result<T, ExecutionError>,
    ) -> (Result<T, ExecutionError>, u64, bool) {
        LEFT.with(|l| l.set(limit));
        EXCEEDED.with(|e| e.set(false));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
            Err(ExecutionError::function_error(
                "eval",
                "expression uses a construct this server does not evaluate",
            ))
        });
        let spent = limit - LEFT.with(Cell::get);
        let exceeded = EXCEEDED.with(Cell::get);
        LEFT.with(|l| l.set(u64::MAX));
        (result, spent, exceeded)
    }
}

/// Charges `units` to the running evaluation.
pub fn charge(units: u64) -> Result<(), ExecutionError> {
    LEFT.with(|l| {
        let left = l.get();
        if units > left {
            l.set(0);
            EXCEEDED.with(|e| e.set(true));
            Err(ExecutionError::function_error("cost", COST_EXCEEDED))
        } else {
            l.set(left - units);
            Ok(())
        }
    })
}

/// The units of touching a value once (shallow).
fn size_cost(v: &Value) -> u64 {
    match v {
        Value::String(s) => (s.len() as u64).div_ceil(10),
        Value::Bytes(b) => (b.len() as u64).div_ceil(10),
        Value::List(l) => l.len() as u64,
        Value::Map(m) => m.map.len() as u64,
        _ => 1,
    }
}

/// The units of comparing a value deeply.
fn deep_cost(v: &Value) -> u64 {
    match v {
        Value::List(l) => l.iter().map(deep_cost).sum::<u64>() + 1,
        Value::Map(m) => m.map.values().map(deep_cost).sum::<u64>() + 1,
        other => size_cost(other),
    }
}

/// The root context: every function, built once and shared by all evaluations.
pub static ROOT: LazyLock<Context<'static>> = LazyLock::new(|| {
    let mut ctx = Context::default();
    for (name, f) in FUNCTIONS {
        ctx.add_function(name, f);
    }
    ctx
});

type Builtin = fn(&FunctionContext) -> ResolveResult;

/// The functions of Kubernetes' `sets` library, called as `sets.<name>(a, b)`.
const SETS: [(&str, &str); 3] = [
    ("contains", "sets.contains"),
    ("equivalent", "sets.equivalent"),
    ("intersects", "sets.intersects"),
];

/// The full name of a namespaced function call (`sets.contains(a, b)` parses as method
/// `contains` of an identifier `sets`), or None.
pub fn namespaced(target: &cel::IdedExpr, name: &str) -> Option<&'static str> {
    match &target.expr {
        cel::common::ast::Expr::Ident(ns) if ns == "sets" => {
            SETS.iter().find(|(n, _)| *n == name).map(|(_, full)| *full)
        }
        _ => None,
    }
}

/// The functions this module adds or replaces (metered operators first).
const FUNCTIONS: [(&str, Builtin); 39] = [
    (ADD, add),
    (EQ, eq),
    (NE, ne),
    (IN, in_),
    (LT, lt),
    (LE, le),
    (GT, gt),
    (GE, ge),
    (STEP, step),
    (RANGE, range),
    ("contains", contains),
    ("matches", matches),
    ("isSorted", is_sorted),
    ("sum", sum),
    ("min", min),
    ("max", max),
    ("indexOf", index_of),
    ("lastIndexOf", last_index_of),
    ("find", find),
    ("findAll", find_all),
    ("lowerAscii", lower_ascii),
    ("upperAscii", upper_ascii),
    ("replace", replace),
    ("split", split),
    ("substring", substring),
    ("trim", trim),
    ("join", join),
    ("charAt", char_at),
    ("reverse", reverse),
    ("hasValue", has_value),
    ("value", opt_value),
    ("orValue", or_value),
    ("startsWith", starts_with),
    ("endsWith", ends_with),
    ("size", size),
    ("string", string),
    ("sets.contains", sets_contains),
    ("sets.equivalent", sets_equivalent),
    ("sets.intersects", sets_intersects),
];

/// Names of the metered operators (not callable from rule text: `#` cannot start an identifier).
pub const ADD: &str = "#add";
/// Metered `==`.
pub const EQ: &str = "#eq";
/// Metered `!=`.
pub const NE: &str = "#ne";
/// Metered `in`.
pub const IN: &str = "#in";
/// Metered `<`.
pub const LT: &str = "#lt";
/// Metered `<=`.
pub const LE: &str = "#le";
/// Metered `>`.
pub const GT: &str = "#gt";
/// Metered `>=`.
pub const GE: &str = "#ge";
/// One comprehension step.
pub const STEP: &str = "#step";
/// A comprehension range (checked to be a list or map).
pub const RANGE: &str = "#range";

/// The functions a rule may call by name (besides the operators and macros).
pub fn is_function(name: &str) -> bool {
    const OTHERS: [&str; 16] = [
        "bytes",
        "double",
        "int",
        "uint",
        "duration",
        "timestamp",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    ];
    (!name.starts_with('#') && FUNCTIONS.iter().any(|(n, _)| *n == name)) || OTHERS.contains(&name)
}

fn arg(ftx: &FunctionContext, i: usize) -> ResolveResult {
    let e = ftx
        .args
        .get(i)
        .ok_or_else(|| ExecutionError::invalid_argument_count(i + 1, ftx.args.len()))?;
    Value::resolve(e, ftx.ptx)
}

fn this(ftx: &FunctionContext) -> ResolveResult {
    ftx.this
        .clone()
        .ok_or_else(ExecutionError::missing_argument_or_target)
}

/// The target of a method, or the first argument when called as a function; the rest follow.
fn receiver(ftx: &FunctionContext) -> Result<(Value, usize), ExecutionError> {
    match &ftx.this {
        Some(v) => Ok((v.clone(), 0)),
        None => Ok((arg(ftx, 0)?, 1)),
    }
}

fn no_overload() -> ExecutionError {
    ExecutionError::NoSuchOverload
}

fn str_of(v: &Value) -> Result<&Arc<String>, ExecutionError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(no_overload()),
    }
}

fn int_of(v: &Value) -> Result<i64, ExecutionError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::UInt(u) => i64::try_from(*u).map_err(|_| no_overload()),
        _ => Err(no_overload()),
    }
}

fn list_of(v: &Value) -> Result<&Arc<Vec<Value>>, ExecutionError> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(no_overload()),
    }
}

fn text(s: String) -> ResolveResult {
    charge((s.len() as u64).div_ceil(10))?;
    Ok(Value::String(Arc::new(s)))
}

// ---- metered operators ----

fn add(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = (arg(ftx, 0)?, arg(ftx, 1)?);
    charge(size_cost(&a) + size_cost(&b))?;
    a + b
}

fn eq(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = (arg(ftx, 0)?, arg(ftx, 1)?);
    charge(deep_cost(&a).min(deep_cost(&b)))?;
    Ok(Value::Bool(a == b))
}

fn ne(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = (arg(ftx, 0)?, arg(ftx, 1)?);
    charge(deep_cost(&a).min(deep_cost(&b)))?;
    Ok(Value::Bool(a != b))
}

fn in_(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = (arg(ftx, 0)?, arg(ftx, 1)?);
    charge(size_cost(&b))?;
    Ok(Value::Bool(match (a, &b) {
        (Value::String(l), Value::String(r)) => r.contains(l.as_str()),
        (any, Value::List(items)) => items.contains(&any),
        (any, Value::Map(m)) => {
            let key: Result<Key, _> = any.try_into();
            key.is_ok_and(|k| m.map.contains_key(&k))
        }
        (any, _) => return Err(ExecutionError::ValuesNotComparable(any, b)),
    }))
}

fn compare(ftx: &FunctionContext, ok: fn(Ordering) -> bool) -> ResolveResult {
    let (a, b) = (arg(ftx, 0)?, arg(ftx, 1)?);
    charge(size_cost(&a).min(size_cost(&b)))?;
    match a.partial_cmp(&b) {
        Some(o) => Ok(Value::Bool(ok(o))),
        None => Err(ExecutionError::ValuesNotComparable(a, b)),
    }
}

fn lt(ftx: &FunctionContext) -> ResolveResult {
    compare(ftx, Ordering::is_lt)
}

fn le(ftx: &FunctionContext) -> ResolveResult {
    compare(ftx, Ordering::is_le)
}

fn gt(ftx: &FunctionContext) -> ResolveResult {
    compare(ftx, Ordering::is_gt)
}

fn ge(ftx: &FunctionContext) -> ResolveResult {
    compare(ftx, Ordering::is_ge)
}

fn step(ftx: &FunctionContext) -> ResolveResult {
    charge(1)?;
    arg(ftx, 0)
}

fn range(ftx: &FunctionContext) -> ResolveResult {
    let v = arg(ftx, 0)?;
    charge(1)?;
    match v {
        Value::List(_) | Value::Map(_) => Ok(v),
        _ => Err(no_overload()),
    }
}

// ---- standard functions, metered ----

fn contains(ftx: &FunctionContext) -> ResolveResult {
    let (t, i) = receiver(ftx)?;
    let x = arg(ftx, i)?;
    charge(size_cost(&t))?;
    Ok(Value::Bool(match (&t, &x) {
        (Value::String(s), Value::String(p)) => s.contains(p.as_str()),
        (Value::List(l), x) => l.contains(x),
        (Value::Map(m), x) => {
            let key: Result<Key, _> = x.clone().try_into();
            key.is_ok_and(|k| m.map.contains_key(&k))
        }
        _ => return Err(no_overload()),
    }))
}

fn starts_with(ftx: &FunctionContext) -> ResolveResult {
    let (t, i) = receiver(ftx)?;
    let p = arg(ftx, i)?;
    charge(size_cost(&p))?;
    Ok(Value::Bool(str_of(&t)?.starts_with(str_of(&p)?.as_str())))
}

fn ends_with(ftx: &FunctionContext) -> ResolveResult {
    let (t, i) = receiver(ftx)?;
    let p = arg(ftx, i)?;
    charge(size_cost(&p))?;
    Ok(Value::Bool(str_of(&t)?.ends_with(str_of(&p)?.as_str())))
}

fn size(ftx: &FunctionContext) -> ResolveResult {
    let (t, _) = receiver(ftx)?;
    charge(1)?;
    let n = match &t {
        // CEL sizes strings in code points.
        Value::String(s) => s.chars().count(),
        Value::Bytes(b) => b.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.map.len(),
        _ => return Err(no_overload()),
    };
    Ok(Value::Int(n as i64))
}

fn string(ftx: &FunctionContext) -> ResolveResult {
    let (t, _) = receiver(ftx)?;
    charge(size_cost(&t))?;
    match t {
        Value::String(_) => Ok(t),
        Value::Int(i) => text(i.to_string()),
        Value::UInt(u) => text(u.to_string()),
        Value::Float(f) => text(f.to_string()),
        Value::Bool(b) => text(b.to_string()),
        Value::Bytes(b) => String::from_utf8(b.to_vec())
            .map_err(|_| ftx.error("invalid UTF-8"))
            .and_then(text),
        Value::Timestamp(t) => text(t.to_rfc3339()),
        _ => Err(no_overload()),
    }
}

// ---- regex ----

thread_local! {
    static REGEXES: std::cell::RefCell<HashMap<String, regex::Regex>> = std::cell::RefCell::new(HashMap::new());
}

/// A compiled regex, cached per thread (rules use a handful of fixed patterns).
fn regex(ftx: &FunctionContext, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    if let Some(re) = REGEXES.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(re);
    }
    charge((pattern.len() as u64).div_ceil(10) * 10)?;
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ftx.error(format!("invalid regex '{pattern}': {e}")))?;
    REGEXES.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 64 {
            c.clear();
        }
        c.insert(pattern.to_string(), re.clone());
    });
    Ok(re)
}

fn matches(ftx: &FunctionContext) -> ResolveResult {
    let (t, i) = receiver(ftx)?;
    let p = arg(ftx, i)?;
    let s = str_of(&t)?;
    charge(size_cost(&t))?;
    Ok(Value::Bool(regex(ftx, str_of(&p)?)?.is_match(s)))
}

fn find(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    let p = arg(ftx, 0)?;
    charge(size_cost(&s))?;
    let re = regex(ftx, str_of(&p)?)?;
    let found = re.find(str_of(&s)?).map(|m| m.as_str().to_string());
    text(found.unwrap_or_default())
}

fn find_all(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    let p = arg(ftx, 0)?;
    let limit = if ftx.args.len() > 1 {
        int_of(&arg(ftx, 1)?)?
    } else {
        -1
    };
    charge(size_cost(&s))?;
    let re = regex(ftx, str_of(&p)?)?;
    let all: Vec<Value> = re
        .find_iter(str_of(&s)?)
        .take(if limit < 0 { usize::MAX } else { limit as usize })
        .map(|m| Value::String(Arc::new(m.as_str().to_string())))
        .collect();
    charge(all.len() as u64)?;
    Ok(Value::List(Arc::new(all)))
}

// ---- lists ----

fn is_sorted(ftx: &FunctionContext) -> ResolveResult {
    let l = this(ftx)?;
    let l = list_of(&l)?;
    charge(l.len() as u64)?;
    for w in l.windows(2) {
        match w[0].partial_cmp(&w[1]) {
            Some(Ordering::Greater) => return Ok(Value::Bool(false)),
            Some(_) => {}
            None => return Err(ExecutionError::ValuesNotComparable(w[0].clone(), w[1].clone())),
        }
    }
    Ok(Value::Bool(true))
}

fn sum(ftx: &FunctionContext) -> ResolveResult {
    let l = this(ftx)?;
    let l = list_of(&l)?;
    charge(l.len() as u64)?;
    let mut acc = match l.first() {
        None | Some(Value::Int(_)) => Value::Int(0),
        Some(Value::UInt(_)) => Value::UInt(0),
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(Value::Duration(_)) => Value::Duration(Default::default()),
        Some(_) => return Err(no_overload()),
    };
    for v in l.iter() {
        acc = (acc + v.clone())?;
    }
    Ok(acc)
}

fn extreme(ftx: &FunctionContext, want: Ordering) -> ResolveResult {
    let items: Vec<Value> = match &ftx.this {
        Some(Value::List(l)) => l.to_vec(),
        Some(_) => return Err(no_overload()),
        None => {
            let args: Vec<Value> = (0..ftx.args.len())
                .map(|i| arg(ftx, i))
                .collect::<Result<_, _>>()?;
            match args.as_slice() {
                [Value::List(l)] => l.to_vec(),
                _ => args,
            }
        }
    };
    charge(items.len() as u64)?;
    let mut it = items.into_iter();
    let Some(mut best) = it.next() else {
        return Err(ftx.error(format!("{} called on empty list", ftx.name)));
    };
    for v in it {
        match v.partial_cmp(&best) {
            Some(o) if o == want => best = v,
            Some(_) => {}
            None => return Err(ExecutionError::ValuesNotComparable(v, best)),
        }
    }
    Ok(best)
}

fn min(ftx: &FunctionContext) -> ResolveResult {
    extreme(ftx, Ordering::Less)
}

fn max(ftx: &FunctionContext) -> ResolveResult {
    extreme(ftx, Ordering::Greater)
}

/// `indexOf` / `lastIndexOf` of a list element or of a substring (code points).
fn position(ftx: &FunctionContext, last: bool) -> ResolveResult {
    let t = this(ftx)?;
    let x = arg(ftx, 0)?;
    charge(size_cost(&t))?;
    match &t {
        Value::List(l) => {
            let found = if last {
                l.iter().rposition(|v| v == &x)
            } else {
                l.iter().position(|v| v == &x)
            };
            Ok(Value::Int(found.map_or(-1, |i| i as i64)))
        }
        Value::String(s) => {
            let needle: Vec<char> = str_of(&x)?.chars().collect();
            let hay: Vec<char> = s.chars().collect();
            let from = if ftx.args.len() > 1 {
                Some(int_of(&arg(ftx, 1)?)?)
            } else {
                None
            };
            if let Some(f) = from
                && (f < 0 || f as usize > hay.len())
            {
                return Err(ftx.error(format!("index out of range: {f}")));
            }
            let fits = |i: usize| hay.len() >= i + needle.len() && hay[i..i + needle.len()] == needle[..];
            let found = if last {
                let start = from.map_or(hay.len(), |f| f as usize);
                (0..=start.min(hay.len())).rev().find(|&i| fits(i))
            } else {
                (from.map_or(0, |f| f as usize)..=hay.len()).find(|&i| fits(i))
            };
            Ok(Value::Int(found.map_or(-1, |i| i as i64)))
        }
        _ => Err(no_overload()),
    }
}

fn index_of(ftx: &FunctionContext) -> ResolveResult {
    position(ftx, false)
}

fn last_index_of(ftx: &FunctionContext) -> ResolveResult {
    position(ftx, true)
}

// ---- strings ----

fn lower_ascii(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    text(str_of(&s)?.to_ascii_lowercase())
}

fn upper_ascii(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    text(str_of(&s)?.to_ascii_uppercase())
}

fn trim(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    text(str_of(&s)?.trim().to_string())
}

fn reverse(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    text(str_of(&s)?.chars().rev().collect())
}

fn char_at(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    let i = int_of(&arg(ftx, 0)?)?;
    let s = str_of(&s)?;
    charge((s.len() as u64).div_ceil(10))?;
    let n = s.chars().count() as i64;
    if i < 0 || i > n {
        return Err(ftx.error(format!("index out of range: {i}")));
    }
    text(s.chars().nth(i as usize).map(String::from).unwrap_or_default())
}

fn replace(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    let (from, to) = (arg(ftx, 0)?, arg(ftx, 1)?);
    let limit = if ftx.args.len() > 2 {
        int_of(&arg(ftx, 2)?)?
    } else {
        -1
    };
    let (s, from, to) = (str_of(&s)?, str_of(&from)?, str_of(&to)?);
    let count = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from.as_str()).count()
    };
    let count = if limit < 0 {
        count
    } else {
        count.min(limit as usize)
    };
    // Charged before allocating: the result may be much larger than the input.
    charge(((s.len() + count * to.len()) as u64).div_ceil(10))?;
    let out = if limit < 0 {
        s.replace(from.as_str(), to)
    } else {
        s.replacen(from.as_str(), to, limit as usize)
    };
    Ok(Value::String(Arc::new(out)))
}

fn split(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    let sep = arg(ftx, 0)?;
    let limit = if ftx.args.len() > 1 {
        int_of(&arg(ftx, 1)?)?
    } else {
        -1
    };
    let (s, sep) = (str_of(&s)?, str_of(&sep)?);
    charge((s.len() as u64).div_ceil(10))?;
    let parts: Vec<String> = match (limit, sep.is_empty()) {
        (0, _) => Vec::new(),
        (_, true) => {
            let chars: Vec<String> = s.chars().map(String::from).collect();
            if limit > 0 && (limit as usize) < chars.len() {
                let mut head: Vec<String> = chars[..limit as usize - 1].to_vec();
                head.push(chars[limit as usize - 1..].concat());
                head
            } else {
                chars
            }
        }
        (l, false) if l > 0 => s.splitn(l as usize, sep.as_str()).map(str::to_string).collect(),
        _ => s.split(sep.as_str()).map(str::to_string).collect(),
    };
    charge(parts.len() as u64)?;
    Ok(Value::List(Arc::new(
        parts.into_iter().map(|p| Value::String(Arc::new(p))).collect(),
    )))
}

fn substring(ftx: &FunctionContext) -> ResolveResult {
    let s = this(ftx)?;
    let start = int_of(&arg(ftx, 0)?)?;
    let s = str_of(&s)?;
    charge((s.len() as u64).div_ceil(10))?;
    let chars: Vec<char> = s.chars().collect();
    let end = if ftx.args.len() > 1 {
        int_of(&arg(ftx, 1)?)?
    } else {
        chars.len() as i64
    };
    if start < 0 || start as usize > chars.len() {
        return Err(ftx.error(format!("index out of range: {start}")));
    }
    if end < 0 || end as usize > chars.len() {
        return Err(ftx.error(format!("index out of range: {end}")));
    }
    if start > end {
        return Err(ftx.error(format!("invalid substring range. start: {start}, end: {end}")));
    }
    text(chars[start as usize..end as usize].iter().collect())
}

fn join(ftx: &FunctionContext) -> ResolveResult {
    let l = this(ftx)?;
    let sep = if ftx.args.is_empty() {
        String::new()
    } else {
        str_of(&arg(ftx, 0)?)?.to_string()
    };
    let l = list_of(&l)?;
    let parts: Vec<&str> = l
        .iter()
        .map(|v| str_of(v).map(|s| s.as_str()))
        .collect::<Result<_, _>>()?;
    let total: usize = parts.iter().map(|p| p.len()).sum::<usize>() + sep.len() * parts.len();
    charge((total as u64).div_ceil(10) + parts.len() as u64)?;
    Ok(Value::String(Arc::new(parts.join(&sep))))
}

// ---- sets ----

type List = Arc<Vec<Value>>;

fn two_lists(ftx: &FunctionContext) -> Result<(List, List), ExecutionError> {
    let (a, b) = (arg(ftx, 0)?, arg(ftx, 1)?);
    let (a, b) = (list_of(&a)?.clone(), list_of(&b)?.clone());
    charge((a.len() as u64).saturating_mul(b.len() as u64).max(1))?;
    Ok((a, b))
}

fn sets_contains(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = two_lists(ftx)?;
    Ok(Value::Bool(b.iter().all(|x| a.contains(x))))
}

fn sets_equivalent(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = two_lists(ftx)?;
    Ok(Value::Bool(
        b.iter().all(|x| a.contains(x)) && a.iter().all(|x| b.contains(x)),
    ))
}

fn sets_intersects(ftx: &FunctionContext) -> ResolveResult {
    let (a, b) = two_lists(ftx)?;
    Ok(Value::Bool(b.iter().any(|x| a.contains(x))))
}

// ---- optionals (oldSelf with optionalOldSelf) ----

/// A CEL optional holding `v` (or none).
pub fn optional(v: Option<Value>) -> Value {
    let inner = Value::List(Arc::new(v.into_iter().collect()));
    Value::Map(Map::from(HashMap::from([(Key::from(OPTIONAL_KEY), inner)])))
}

fn optional_inner(ftx: &FunctionContext) -> Result<Option<Value>, ExecutionError> {
    let t = this(ftx)?;
    if let Value::Map(m) = &t
        && m.map.len() == 1
        && let Some(Value::List(l)) = m.map.get(&Key::from(OPTIONAL_KEY))
    {
        return Ok(l.first().cloned());
    }
    Err(no_overload())
}

fn has_value(ftx: &FunctionContext) -> ResolveResult {
    Ok(Value::Bool(optional_inner(ftx)?.is_some()))
}

fn opt_value(ftx: &FunctionContext) -> ResolveResult {
    optional_inner(ftx)?.ok_or_else(|| ftx.error("optional.none() dereference"))
}

fn or_value(ftx: &FunctionContext) -> ResolveResult {
    match optional_inner(ftx)? {
        Some(v) => Ok(v),
        None => arg(ftx, 0),
    }
}
