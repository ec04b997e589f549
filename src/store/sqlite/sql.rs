//! Small helpers for building queries and reading constraint failures.

use sqlx::error::ErrorKind;
use sqlx::{Encode, QueryBuilder, Sqlite, Type};

use crate::store::PageQuery;

/// A query whose WHERE clause is built one bound condition at a time, so
/// optional filters never splice values into the SQL text.
pub(super) struct Conditions<'a> {
    query: QueryBuilder<'a, Sqlite>,
    any: bool,
}

impl<'a> Conditions<'a> {
    pub(super) fn new(select: &str) -> Self {
        Self {
            query: QueryBuilder::new(select),
            any: false,
        }
    }

    /// Appends `<sql><value>`, e.g. `and("id > ", after)`.
    pub(super) fn and<T>(&mut self, sql: &str, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Sqlite> + Type<Sqlite>,
    {
        self.query.push(if self.any { " AND " } else { " WHERE " });
        self.query.push(sql).push_bind(value);
        self.any = true;
        self
    }

    pub(super) fn finish(self) -> QueryBuilder<'a, Sqlite> {
        self.query
    }
}

/// Keyset pagination: the rows after the previous page's last id, in id order.
pub(super) fn paged<'a>(
    mut where_: Conditions<'a>,
    page: &'a PageQuery,
) -> QueryBuilder<'a, Sqlite> {
    if let Some(after) = &page.after {
        where_.and("id > ", after.as_str());
    }
    let mut query = where_.finish();
    query
        .push(" ORDER BY id LIMIT ")
        .push_bind(i64::from(page.limit));
    query
}

/// Whether a query failed on the given kind of constraint.
pub(super) fn violates(err: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == kind)
}
