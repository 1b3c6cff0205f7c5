//! Multi-row `INSERT`s with their values written into the SQL text.
//!
//! diesel cannot cache a prepared statement whose `VALUES` list varies in length, so every
//! consumer batch paid a fresh `PREPARE` with one parameter-definition packet per placeholder
//! (about 5,500 per batch of 500), plus binding every value, on the hottest path there is.
//! Written inline, the statement is one short `PREPARE` without parameters and one `EXECUTE`.
//!
//! This is only safe because of what the values are: integers, our own keywords, timestamps
//! we format, UUIDs, and user ids that the domain validated as `[A-Za-z0-9_-]{1,64}`. Strings
//! are never escaped: [`Row::text`] refuses any byte outside a small safe set, so no value
//! can end a literal in any SQL mode.

use std::fmt::Write;

use time::PrimitiveDateTime;

use crate::error::StorageError;

/// Rows per INSERT with inline values: ~140 bytes each, so a statement stays far below even
/// an old 1 MiB `max_allowed_packet`, and a consumer batch of up to 4,000 is one statement.
pub(crate) const INLINE_ROWS_PER_INSERT: usize = 4000;

/// `INSERT [IGNORE] INTO <table> (<columns>) VALUES (…),(…)`, built row by row.
pub(crate) struct InlineInsert {
    sql: String,
    rows: usize,
}

/// One row being written; values are appended in column order.
pub(crate) struct Row<'a> {
    sql: &'a mut String,
    first: bool,
}

impl InlineInsert {
    /// `INSERT IGNORE`: rows whose unique key is taken are skipped (idempotent writes).
    pub(crate) fn ignoring(table: &str, columns: &[&str]) -> Self {
        Self::start("INSERT IGNORE", table, columns)
    }

    /// A plain `INSERT`: any row that cannot go in fails the statement.
    pub(crate) fn new(table: &str, columns: &[&str]) -> Self {
        Self::start("INSERT", table, columns)
    }

    fn start(verb: &str, table: &str, columns: &[&str]) -> Self {
        let mut sql = String::with_capacity(64 * 1024);
        let _ = write!(sql, "{verb} INTO {table} ({}) VALUES ", columns.join(", "));
        Self { sql, rows: 0 }
    }

    /// Starts the next row.
    pub(crate) fn row(&mut self) -> Row<'_> {
        if self.rows > 0 {
            self.sql.push(',');
        }
        self.rows += 1;
        self.sql.push('(');
        Row {
            sql: &mut self.sql,
            first: true,
        }
    }

    /// The statement; `None` without rows.
    pub(crate) fn finish(self) -> Option<String> {
        (self.rows > 0).then_some(self.sql)
    }
}

impl Row<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.sql.push(',');
        }
        self.first = false;
    }

    pub(crate) fn int(mut self, value: i64) -> Self {
        self.separate();
        let _ = write!(self.sql, "{value}");
        self
    }

    /// A string literal of letters, digits and `_ - . :` only (ids, UUIDs, our keywords);
    /// anything else is refused, never escaped.
    pub(crate) fn text(self, value: &str) -> Result<Self, StorageError> {
        let safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':');
        if !value.bytes().all(safe) {
            return Err(StorageError::Unwritable(value.to_owned()));
        }
        Ok(self.quoted(value))
    }

    /// A string literal of printable ASCII without `'` or a backslash (JSON we serialised from
    /// validated ids, numbers and timestamps); anything else is refused, never escaped. Within
    /// a quoted literal only those two can end or alter it, in any SQL mode.
    pub(crate) fn json(self, value: &str) -> Result<Self, StorageError> {
        let safe = |b: u8| (b' '..=b'~').contains(&b) && b != b'\'' && b != b'\\';
        if !value.bytes().all(safe) {
            return Err(StorageError::Unwritable(value.to_owned()));
        }
        Ok(self.quoted(value))
    }

    /// `value` between single quotes, as it is: the callers have checked it.
    fn quoted(mut self, value: &str) -> Self {
        self.separate();
        self.sql.push('\'');
        self.sql.push_str(value);
        self.sql.push('\'');
        self
    }

    /// A `DATETIME(3)` literal, to the millisecond.
    pub(crate) fn datetime(mut self, value: PrimitiveDateTime) -> Self {
        self.separate();
        let _ = write!(
            self.sql,
            "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}'",
            value.year(),
            u8::from(value.month()),
            value.day(),
            value.hour(),
            value.minute(),
            value.second(),
            value.millisecond()
        );
        self
    }

    pub(crate) fn end(self) {
        self.sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn rows_render_as_one_statement() -> Result<(), StorageError> {
        let mut insert = InlineInsert::ignoring("t", &["a", "b", "c"]);
        insert
            .row()
            .int(7)
            .text("user_1-x")?
            .datetime(datetime!(2026-01-02 03:04:05.678))
            .end();
        insert
            .row()
            .int(-1)
            .text("")?
            .datetime(datetime!(2026-12-31 23:59:59))
            .end();
        assert_eq!(
            insert.finish().as_deref(),
            Some(
                "INSERT IGNORE INTO t (a, b, c) VALUES (7,'user_1-x','2026-01-02 03:04:05.678'),\
                 (-1,'','2026-12-31 23:59:59.000')"
            )
        );
        assert_eq!(InlineInsert::ignoring("t", &["a"]).finish(), None);
        Ok(())
    }

    #[test]
    fn a_plain_insert_with_json() -> Result<(), StorageError> {
        let mut insert = InlineInsert::new("t", &["a"]);
        insert.row().json(r#"{"k":"v-1","n":[1,2]}"#)?.end();
        assert_eq!(
            insert.finish().as_deref(),
            Some(r#"INSERT INTO t (a) VALUES ('{"k":"v-1","n":[1,2]}')"#)
        );
        for bad in [
            r#"{"k":"a'b"}"#,
            r#"{"k":"a\"b"}"#,
            "{\"k\":\"\n\"}",
            "é",
            "a\0b",
        ] {
            let mut insert = InlineInsert::new("t", &["a"]);
            assert!(insert.row().json(bad).is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn text_that_could_end_a_literal_is_refused() {
        for bad in ["a'b", "a\\b", "a b", "a\"b", "a;b", "é", "a\0b"] {
            let mut insert = InlineInsert::ignoring("t", &["a"]);
            assert!(insert.row().text(bad).is_err(), "{bad:?}");
        }
    }
}
