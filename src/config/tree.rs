//! The configuration file as a small tree of values, each with the line it
//! came from. HCL goes through `hcl-edit`, which keeps every literal's
//! source text, so numbers can be read the way HCL v1 reads them (`0644`
//! is octal); a document starting with `{` is JSON, as in HCL v1.

use hcl_edit::expr::{Expression, ObjectKey, UnaryOperator};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::template::{Element, Template};
use hcl_edit::Span as _;

/// A value and where it is.
#[derive(Debug, Clone)]
pub struct Node {
    /// One-based line, when known.
    pub line: Option<usize>,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    /// An integer literal exactly as written (sign included), e.g. `0644`.
    Int(String),
    /// A number with a fraction or exponent.
    Float(String),
    Bool(bool),
    Null,
    List(Vec<Node>),
    /// Attributes, blocks or object entries, in file order.
    Object(Vec<Entry>),
    /// Anything HCL v1 configs cannot hold (expressions, function calls).
    Other(&'static str),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub line: Option<usize>,
    pub node: Node,
}

impl Value {
    /// How the value is described in a type error.
    pub fn describe(&self) -> String {
        match self {
            Value::Str(s) => format!("the string {s:?}"),
            Value::Int(t) | Value::Float(t) => format!("the number {t}"),
            Value::Bool(b) => format!("the boolean {b}"),
            Value::Null => "null".to_owned(),
            Value::List(_) => "a list".to_owned(),
            Value::Object(_) => "an object".to_owned(),
            Value::Other(what) => (*what).to_owned(),
        }
    }
}

/// A syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses HCL or JSON text into the top-level entries.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_hcl(text)
    }
}

fn parse_hcl(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| SyntaxError {
        line: e.location().line(),
        column: e.location().column(),
        message: e.message().replace('\n', "; "),
    })?;
    let lines = LineIndex::new(text);
    Ok(body_entries(&body, text, &lines))
}

fn body_entries(body: &Body, text: &str, lines: &LineIndex) -> Vec<Entry> {
    body.iter()
        .map(|s| match s {
            Structure::Attribute(a) => Entry {
                key: a.key.as_str().to_owned(),
                line: lines.of(a.key.span()),
                node: expr_node(&a.value, text, lines),
            },
            Structure::Block(b) => {
                let line = lines.of(b.ident.span());
                let value = if b.labels.is_empty() {
                    Value::Object(body_entries(&b.body, text, lines))
                } else {
                    Value::Other("a labelled block")
                };
                Entry {
                    key: b.ident.as_str().to_owned(),
                    line,
                    node: Node { line, value },
                }
            }
        })
        .collect()
}

fn expr_node(e: &Expression, text: &str, lines: &LineIndex) -> Node {
    let line = lines.of(e.span());
    let value = match e {
        Expression::Null(_) => Value::Null,
        Expression::Bool(b) => Value::Bool(*b.value()),
        Expression::Number(n) => number(source(text, n.span()).unwrap_or_default()),
        Expression::String(s) => Value::Str(s.value().clone()),
        // HCL v1 has no interpolation: `${x}` is literal text there.
        Expression::StringTemplate(t) => Value::Str(template_text(t, text)),
        Expression::HeredocTemplate(h) => Value::Str(template_text(&h.template, text)),
        Expression::Array(a) => Value::List(a.iter().map(|e| expr_node(e, text, lines)).collect()),
        Expression::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let key = match k {
                        ObjectKey::Ident(i) => i.as_str().to_owned(),
                        ObjectKey::Expression(Expression::String(s)) => s.value().clone(),
                        ObjectKey::Expression(other) => {
                            source(text, other.span()).unwrap_or_default().to_owned()
                        }
                    };
                    let key_line = match k {
                        ObjectKey::Ident(i) => lines.of(i.span()),
                        ObjectKey::Expression(x) => lines.of(x.span()),
                    };
                    Entry {
                        key,
                        line: key_line.or(line),
                        node: expr_node(v.expr(), text, lines),
                    }
                })
                .collect(),
        ),
        Expression::Parenthesis(p) => return expr_node(p.inner(), text, lines),
        Expression::UnaryOp(op) if *op.operator.value() == UnaryOperator::Neg => match &op.expr {
            Expression::Number(n) => {
                let digits = source(text, n.span()).unwrap_or_default();
                match number(digits) {
                    Value::Int(t) => Value::Int(format!("-{t}")),
                    Value::Float(t) => Value::Float(format!("-{t}")),
                    other => other,
                }
            }
            _ => Value::Other("an expression"),
        },
        Expression::Variable(_) => Value::Other("a bare word (strings need quotes)"),
        Expression::FuncCall(_) => Value::Other("a function call"),
        _ => Value::Other("an expression"),
    };
    Node { line, value }
}

fn number(literal: &str) -> Value {
    if literal.contains(['.', 'e', 'E']) {
        Value::Float(literal.to_owned())
    } else {
        Value::Int(literal.to_owned())
    }
}

/// A template's text with interpolations and directives kept verbatim.
fn template_text(t: &Template, text: &str) -> String {
    let mut out = String::new();
    for el in t {
        match el {
            Element::Literal(l) => out.push_str(l.value()),
            other => out.push_str(source(text, other.span()).unwrap_or_default()),
        }
    }
    out
}

fn source(text: &str, span: Option<std::ops::Range<usize>>) -> Option<&str> {
    span.and_then(|r| text.get(r))
}

/// Byte offset → one-based line.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        let at = span?.start;
        Some(self.starts.partition_point(|&s| s <= at))
    }
}

fn parse_json(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| SyntaxError {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let lines = JsonLines { text };
    match json_node(&v, &lines, 0).value {
        Value::Object(entries) => Ok(entries),
        _ => Err(SyntaxError {
            line: 1,
            column: 1,
            message: "a JSON configuration must be an object".to_owned(),
        }),
    }
}

/// JSON keeps no positions: a key's line is where `"key"` first appears
/// after its parent key.
struct JsonLines<'a> {
    text: &'a str,
}

impl JsonLines<'_> {
    fn find(&self, key: &str, from: usize) -> Option<(usize, usize)> {
        let needle = format!("\"{key}\"");
        let at = self.text.get(from..)?.find(&needle)? + from;
        Some((self.text[..at].matches('\n').count() + 1, at + needle.len()))
    }
}

fn json_node(v: &serde_json::Value, lines: &JsonLines<'_>, from: usize) -> Node {
    let value = match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => number(&n.to_string()),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => {
            Value::List(a.iter().map(|e| json_node(e, lines, from)).collect())
        }
        serde_json::Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let found = lines.find(k, from);
                    let line = found.map(|(l, _)| l);
                    let node = json_node(v, lines, found.map_or(from, |(_, end)| end));
                    Entry {
                        key: k.clone(),
                        line,
                        node: Node { line, ..node },
                    }
                })
                .collect(),
        ),
    };
    Node { line: None, value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(text: &str) -> Entry {
        let mut e = parse(text).unwrap();
        assert_eq!(e.len(), 1, "{e:?}");
        e.remove(0)
    }

    #[test]
    fn numbers_keep_their_literal_text() {
        assert!(matches!(only("m = 0644\n").node.value, Value::Int(t) if t == "0644"));
        assert!(matches!(only("m = -1\n").node.value, Value::Int(t) if t == "-1"));
        assert!(matches!(only("m = 1.5\n").node.value, Value::Float(_)));
        assert!(matches!(only("m = \"0644\"\n").node.value, Value::Str(s) if s == "0644"));
    }

    #[test]
    fn lines_of_keys_in_blocks_lists_and_objects() {
        let text = "# c\na = \"x\"\n\nh {\n  port = 1\n}\nl = [\n  { k = \"v\",\n    j = 2 },\n]\n";
        let e = parse(text).unwrap();
        assert_eq!(e[0].line, Some(2));
        let Value::Object(inner) = &e[1].node.value else {
            panic!()
        };
        assert_eq!((inner[0].key.as_str(), inner[0].line), ("port", Some(5)));
        let Value::List(items) = &e[2].node.value else {
            panic!()
        };
        let Value::Object(obj) = &items[0].value else {
            panic!()
        };
        assert_eq!(obj[1].line, Some(9));
    }

    #[test]
    fn interpolation_is_literal_text_as_in_hcl_v1() {
        assert!(
            matches!(only("a = \"-c ${HOME} x\"\n").node.value, Value::Str(s) if s == "-c ${HOME} x")
        );
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = parse("a = \"x\"\nb = \n= 1\n").unwrap_err();
        assert!(e.line >= 2, "{e:?}");
        let e = parse("{\n \"a\": ,\n}").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn json_keys_get_lines() {
        let e = parse("{\n  \"a\": 1,\n  \"b\": [ { \"c\": \"d\" } ]\n}\n").unwrap();
        let b = e.iter().find(|x| x.key == "b").unwrap();
        assert_eq!(b.line, Some(3));
    }
}
