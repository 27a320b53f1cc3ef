//! Queries assembled at run time: optional filters, then a cursor page.

use crate::resources::Bind;

/// A `SELECT … WHERE 1 = 1` that filters are added to, with its binds in order.
#[derive(Debug)]
pub(crate) struct Query {
    pub(crate) sql: String,
    pub(crate) binds: Vec<Bind>,
}

impl Query {
    pub(crate) fn new(select: &str) -> Self {
        Self {
            sql: format!("{select} WHERE 1 = 1"),
            binds: Vec::new(),
        }
    }

    fn param(&mut self, b: Bind) -> String {
        self.binds.push(b);
        format!("${}", self.binds.len())
    }

    /// `AND (column = $a OR column = $b …)`; no values match nothing.
    pub(crate) fn any_of(&mut self, column: &str, values: &[String]) {
        let mut alts: Vec<String> = values
            .iter()
            .map(|v| format!("{column} = {}", self.param(Bind::Text(v.clone()))))
            .collect();
        if alts.is_empty() {
            alts.push("1 = 0".to_owned());
        }
        self.sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
    }

    /// `AND <column> <op> $n`.
    pub(crate) fn compare(&mut self, column: &str, op: &str, value: &str) {
        let p = self.param(Bind::Text(value.to_owned()));
        self.sql.push_str(&format!(" AND {column} {op} {p}"));
    }

    /// `AND <column> <op> $n` with an integer.
    pub(crate) fn compare_int(&mut self, column: &str, op: &str, value: i64) {
        let p = self.param(Bind::Int(value));
        self.sql.push_str(&format!(" AND {column} {op} {p}"));
    }

    /// `AND (a LIKE '%text%' OR b LIKE …)`, with `%`, `_` and `\` in the text taken literally;
    /// `ILIKE` where the back end's `LIKE` is case-sensitive.
    pub(crate) fn contains(&mut self, columns: &[&str], text: &str, insensitive: bool) {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let p = self.param(Bind::Text(format!("%{escaped}%")));
        let op = if insensitive { "ILIKE" } else { "LIKE" };
        let alts: Vec<String> = columns
            .iter()
            .map(|c| format!("{c} {op} {p} ESCAPE '\\'"))
            .collect();
        self.sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
    }

    /// `ORDER BY … LIMIT limit + 1` (the extra row tells whether a next page exists); returns
    /// the page size, clamped to 1..=1000.
    pub(crate) fn page(&mut self, order: &str, limit: usize) -> usize {
        let limit = limit.clamp(1, 1000);
        let p = self.param(Bind::Int(i64::try_from(limit).unwrap_or(1000) + 1));
        self.sql.push_str(&format!(" ORDER BY {order} LIMIT {p}"));
        limit
    }
}
