//! What a simulated container does, read from its command line: a few shell programs end, the
//! rest run until the pod is deleted.
//!
//! The argument vector is `command` followed by `args` (when `command` is empty, `args` alone,
//! as an image without an entrypoint would run them). It is understood when it is either
//!
//! - a shell script: `sh|bash|ash|dash|zsh [flags] -c SCRIPT` (also with a path such as
//!   `/bin/sh`, combined flags such as `-ec`, or behind `busybox`/`env`), or
//! - one simple command given directly, e.g. `["sleep", "30"]` or `["/bin/true"]`.
//!
//! A script is a list of simple commands joined by `;`, newlines, `&&` and `||`, evaluated left to
//! right with the shell's rules (`a && b` runs `b` only after a zero status, `a || b` only after a
//! non-zero one). The simple commands understood:
//!
//! | command | takes | status |
//! |---|---|---|
//! | `true`, `:` | no time | 0 |
//! | `false` | no time | 1 |
//! | `exit [N]` | ends the program | `N` modulo 256 (default: the last status) |
//! | `sleep N[s\|m\|h\|d]` (several operands add up) | `N` | 0 |
//! | `echo`, `printf`, `date`, `hostname`, `env`, `pwd`, `uname`, `id`, `whoami` | no time | 0 |
//!
//! Reaching the end ends the program with the last status. Anything else (another program,
//! `sleep infinity`, pipes, substitutions `$(..)`/backticks, redirections, control structures
//! such as `if`/`while`/`for`) makes the whole container run forever, as a server would. Quotes
//! around words are removed; there is no variable expansion.

use std::time::Duration;

/// How a simulated container behaves once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// It exits with `code` after running for `after`.
    Exits {
        /// How long it runs.
        after: Duration,
        /// Its exit code.
        code: i32,
    },
    /// It runs until stopped.
    RunsForever,
}

const SHELLS: &[&str] = &["sh", "bash", "ash", "dash", "zsh", "ksh"];
const INSTANT: &[&str] = &[
    "echo", "printf", "date", "hostname", "env", "pwd", "uname", "id", "whoami",
];
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac", "function",
    "select",
];

/// The behaviour of a container with this `command` and `args`.
pub fn behavior(command: &[String], args: &[String]) -> Behavior {
    let argv: Vec<&str> = command.iter().chain(args).map(String::as_str).collect();
    match shell_script(&argv) {
        Some(Ok(script)) => run_script(script),
        Some(Err(())) => Behavior::RunsForever,
        None if argv.is_empty() => Behavior::RunsForever,
        None => {
            let words: Vec<String> = argv
                .iter()
                .skip_while(|w| matches!(basename(w), "busybox" | "env"))
                .map(|s| (*s).to_string())
                .collect();
            let mut state = Eval::default();
            match state.simple(&words) {
                Step::Status(code) => Behavior::Exits {
                    after: state.elapsed,
                    code,
                },
                Step::Exit(code) => Behavior::Exits {
                    after: state.elapsed,
                    code,
                },
                Step::Unknown => Behavior::RunsForever,
            }
        }
    }
}

fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// `Some(Ok(script))` for `sh -c script`, `Some(Err(()))` for a shell without `-c` (reads a
/// file or stdin), `None` when argv does not start with a shell.
fn shell_script<'a>(argv: &[&'a str]) -> Option<Result<&'a str, ()>> {
    let mut rest = argv;
    while let Some((first, tail)) = rest.split_first() {
        if matches!(basename(first), "busybox" | "env") {
            rest = tail;
        } else {
            break;
        }
    }
    let (shell, flags) = rest.split_first()?;
    if !SHELLS.contains(&basename(shell)) {
        return None;
    }
    for (i, flag) in flags.iter().enumerate() {
        if flag.starts_with('-') && !flag.starts_with("--") && flag.contains('c') {
            return Some(flags.get(i + 1).copied().ok_or(()));
        }
        if !flag.starts_with('-') && !flag.starts_with('+') {
            break;
        }
    }
    Some(Err(()))
}

#[derive(Default)]
struct Eval {
    elapsed: Duration,
    status: i32,
}

enum Step {
    Status(i32),
    Exit(i32),
    Unknown,
}

#[derive(Clone, Copy, PartialEq)]
enum Joiner {
    Seq,
    And,
    Or,
}

impl Eval {
    fn simple(&mut self, words: &[String]) -> Step {
        let Some((cmd, operands)) = words.split_first() else {
            return Step::Status(self.status);
        };
        match basename(cmd) {
            "true" | ":" => Step::Status(0),
            "false" => Step::Status(1),
            "exit" => match operands {
                [] => Step::Exit(self.status),
                [n] => n
                    .parse::<i64>()
                    .map_or(Step::Unknown, |n| Step::Exit(n.rem_euclid(256) as i32)),
                _ => Step::Unknown,
            },
            "sleep" if !operands.is_empty() => {
                let mut total = Duration::ZERO;
                for op in operands {
                    match sleep_operand(op) {
                        Some(d) => total += d,
                        None => return Step::Unknown,
                    }
                }
                self.elapsed += total;
                Step::Status(0)
            }
            c if INSTANT.contains(&c) => Step::Status(0),
            _ => Step::Unknown,
        }
    }
}

/// One `sleep` operand: a non-negative decimal number with an optional `s`, `m`, `h` or `d`.
fn sleep_operand(op: &str) -> Option<Duration> {
    let (number, unit) = match op.char_indices().last()? {
        (i, c @ ('s' | 'm' | 'h' | 'd')) => (&op[..i], c),
        _ => (op, 's'),
    };
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 || number.starts_with(['+', '-']) {
        return None;
    }
    let scale = match unit {
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => 1.0,
    };
    Duration::try_from_secs_f64(value * scale).ok()
}

/// Splits a script into simple commands and the operators before each.
fn tokenize(script: &str) -> Option<Vec<(Joiner, Vec<String>)>> {
    if script.contains(['|', '<', '>', '`', '$', '(', ')', '{', '}', '&']) && !only_and_or(script) {
        return None;
    }
    let mut out = Vec::new();
    let mut joiner = Joiner::Seq;
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    let flush_word = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word));
        }
    };
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '#' if word.is_empty() => {
                // A comment runs to the end of the line.
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
            }
            ' ' | '\t' => flush_word(&mut word, &mut words),
            ';' | '\n' | '&' | '|' => {
                let next = match c {
                    '&' | '|' => {
                        if chars.next() != Some(c) {
                            return None;
                        }
                        if c == '&' { Joiner::And } else { Joiner::Or }
                    }
                    _ => Joiner::Seq,
                };
                flush_word(&mut word, &mut words);
                if words.is_empty() {
                    // `;;`, a leading `&&`: only blank lines and `;` may be empty.
                    if next != Joiner::Seq {
                        return None;
                    }
                    continue;
                }
                out.push((joiner, std::mem::take(&mut words)));
                joiner = next;
            }
            _ => word.push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    flush_word(&mut word, &mut words);
    if !words.is_empty() {
        out.push((joiner, words));
    } else if joiner != Joiner::Seq {
        return None;
    }
    Some(out)
}

/// True when the only special characters outside quotes are `&&` and `||` operators.
fn only_and_or(script: &str) -> bool {
    let mut quote: Option<char> = None;
    let bytes: Vec<char> = script.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '&' | '|' => {
                    if bytes.get(i + 1) != Some(&c) {
                        return false;
                    }
                    i += 1;
                }
                '<' | '>' | '`' | '$' | '(' | ')' | '{' | '}' => return false,
                _ => {}
            },
        }
        i += 1;
    }
    true
}

fn run_script(script: &str) -> Behavior {
    let Some(commands) = tokenize(script) else {
        return Behavior::RunsForever;
    };
    let mut state = Eval::default();
    for (joiner, words) in &commands {
        if KEYWORDS.contains(&words[0].as_str()) {
            return Behavior::RunsForever;
        }
        let runs = match joiner {
            Joiner::Seq => true,
            Joiner::And => state.status == 0,
            Joiner::Or => state.status != 0,
        };
        if !runs {
            continue;
        }
        match state.simple(words) {
            Step::Status(s) => state.status = s,
            Step::Exit(code) => {
                return Behavior::Exits {
                    after: state.elapsed,
                    code,
                };
            }
            Step::Unknown => return Behavior::RunsForever,
        }
    }
    Behavior::Exits {
        after: state.elapsed,
        code: state.status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| (*s).to_string()).collect()
    }

    fn sh(script: &str) -> Behavior {
        behavior(&argv(&["/bin/sh", "-c"]), &argv(&[script]))
    }

    fn exits(secs: f64, code: i32) -> Behavior {
        Behavior::Exits {
            after: Duration::from_secs_f64(secs),
            code,
        }
    }

    #[test]
    fn direct_commands() {
        assert_eq!(behavior(&argv(&["true"]), &[]), exits(0.0, 0));
        assert_eq!(behavior(&argv(&["/bin/false"]), &[]), exits(0.0, 1));
        assert_eq!(behavior(&argv(&["sleep"]), &argv(&["5"])), exits(5.0, 0));
        assert_eq!(behavior(&[], &argv(&["sleep", "2m"])), exits(120.0, 0));
        assert_eq!(behavior(&argv(&["busybox", "sleep", "1.5"]), &[]), exits(1.5, 0));
        assert_eq!(behavior(&argv(&["sleep", "1", "2s"]), &[]), exits(3.0, 0));
    }

    #[test]
    fn everything_else_runs_forever() {
        assert_eq!(behavior(&[], &[]), Behavior::RunsForever);
        assert_eq!(
            behavior(&argv(&["nginx", "-g", "daemon off;"]), &[]),
            Behavior::RunsForever
        );
        assert_eq!(
            behavior(&argv(&["sleep", "infinity"]), &[]),
            Behavior::RunsForever
        );
        assert_eq!(behavior(&argv(&["sleep", "-1"]), &[]), Behavior::RunsForever);
        assert_eq!(
            behavior(&argv(&["sh"]), &[]),
            Behavior::RunsForever,
            "sh reading stdin"
        );
        assert_eq!(sh("perl -e 'print 1'"), Behavior::RunsForever);
        assert_eq!(sh("while true; do sleep 1; done"), Behavior::RunsForever);
        assert_eq!(sh("sleep 1 | cat"), Behavior::RunsForever);
        assert_eq!(sh("echo $(date)"), Behavior::RunsForever);
        assert_eq!(sh("echo hi > /tmp/x"), Behavior::RunsForever);
        assert_eq!(sh("sleep 1 & wait"), Behavior::RunsForever);
        assert_eq!(sh("exit 1 2"), Behavior::RunsForever);
        assert_eq!(sh("echo 'unterminated"), Behavior::RunsForever);
    }

    #[test]
    fn shell_scripts() {
        assert_eq!(sh("exit 3"), exits(0.0, 3));
        assert_eq!(sh("exit 300"), exits(0.0, 44), "modulo 256");
        assert_eq!(sh("exit -1"), exits(0.0, 255));
        assert_eq!(sh("true"), exits(0.0, 0));
        assert_eq!(sh("false"), exits(0.0, 1));
        assert_eq!(sh("sleep 1"), exits(1.0, 0));
        assert_eq!(sh("sleep 2; exit 4"), exits(2.0, 4));
        assert_eq!(sh("sleep 2 && true"), exits(2.0, 0));
        assert_eq!(sh("echo \"hello; world\" && sleep 3"), exits(3.0, 0));
        assert_eq!(
            sh("false && sleep 10"),
            exits(0.0, 1),
            "&& skipped after a failure"
        );
        assert_eq!(sh("false || exit 7"), exits(0.0, 7));
        assert_eq!(sh("true || exit 7"), exits(0.0, 0));
        assert_eq!(sh("false; exit"), exits(0.0, 1), "exit keeps the last status");
        assert_eq!(sh("sleep 1\nsleep 2\n"), exits(3.0, 0));
        assert_eq!(sh("# comment\nsleep 1"), exits(1.0, 0));
        assert_eq!(sh("exit 2; sleep 100"), exits(0.0, 2), "nothing runs after exit");
        assert_eq!(
            sh("false && nginx; exit 0"),
            exits(0.0, 0),
            "skipped commands are not judged"
        );
    }

    #[test]
    fn shell_forms() {
        let ec = behavior(&argv(&["bash", "-ec", "sleep 1"]), &[]);
        assert_eq!(ec, exits(1.0, 0));
        let split = behavior(&argv(&["/bin/sh"]), &argv(&["-c", "exit 5"]));
        assert_eq!(split, exits(0.0, 5));
        let env = behavior(&argv(&["/usr/bin/env", "sh", "-c", "false"]), &[]);
        assert_eq!(env, exits(0.0, 1));
        assert_eq!(behavior(&argv(&["sh", "-c"]), &[]), Behavior::RunsForever);
        assert_eq!(behavior(&argv(&["sh", "script.sh"]), &[]), Behavior::RunsForever);
    }
}
