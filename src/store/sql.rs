//! Small helpers for building queries and reading constraint failures, for
//! either backend (`QueryBuilder` writes each one's placeholders).

use sqlx::error::ErrorKind;
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::error::Error;
use crate::store::PageQuery;

/// A query whose WHERE clause is built one bound condition at a time, so
/// optional filters never splice values into the SQL text.
pub(crate) struct Conditions<DB: Database> {
    query: QueryBuilder<DB>,
    any: bool,
}

impl<DB: Database> Conditions<DB>
where
    DB::Arguments: Default,
{
    pub(crate) fn new(select: &str) -> Self {
        Self {
            query: QueryBuilder::new(select),
            any: false,
        }
    }

    /// Appends `<sql><value>`, e.g. `and("id > ", after)`.
    pub(crate) fn and<'t, T>(&mut self, sql: &str, value: T) -> &mut Self
    where
        T: 't + Encode<'t, DB> + Type<DB>,
    {
        self.query.push(if self.any { " AND " } else { " WHERE " });
        self.query.push(sql).push_bind(value);
        self.any = true;
        self
    }

    pub(crate) fn finish(self) -> QueryBuilder<DB> {
        self.query
    }
}

/// Keyset pagination: the rows after the previous page's last id, in id order.
pub(crate) fn paged<DB: Database>(mut where_: Conditions<DB>, page: &PageQuery) -> QueryBuilder<DB>
where
    DB::Arguments: Default,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    i64: for<'t> Encode<'t, DB> + Type<DB>,
{
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
pub(crate) fn violates(err: &sqlx::Error, kind: ErrorKind) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == kind)
}

pub(crate) fn not_found(resource: &'static str, id: &str) -> Error {
    Error::NotFound {
        resource,
        id: id.to_string(),
    }
}

pub(crate) fn already_exists(resource: &'static str, id: &str) -> Error {
    Error::AlreadyExists {
        resource,
        id: id.to_string(),
    }
}

/// Maps a failed insert of a key or token: a duplicate id, or no such studio.
pub(crate) fn insert_error(
    err: sqlx::Error,
    resource: &'static str,
    id: &str,
    studio_id: &str,
) -> Error {
    if violates(&err, ErrorKind::UniqueViolation) {
        already_exists(resource, id)
    } else if violates(&err, ErrorKind::ForeignKeyViolation) {
        not_found("studio", studio_id)
    } else {
        err.into()
    }
}

/// A foreign-key failure means the row the foreign key names does not exist.
pub(crate) fn missing_on_fk(err: sqlx::Error, resource: &'static str, id: &str) -> Error {
    if violates(&err, ErrorKind::ForeignKeyViolation) {
        not_found(resource, id)
    } else {
        err.into()
    }
}

/// A foreign-key failure on `studio_id` means the studio does not exist.
pub(crate) fn studio_missing(err: sqlx::Error, studio_id: &str) -> Error {
    missing_on_fk(err, "studio", studio_id)
}

/// The FAILED_PRECONDITION of deleting a provider that a model still uses.
pub(crate) fn provider_in_use(id: &str, model: Option<String>) -> Error {
    let model = model.unwrap_or_default();
    Error::FailedPrecondition {
        reason: "PROVIDER_IN_USE",
        message: format!(
            "provider `{id}` is still used by model `{model}`; delete or move its models first"
        ),
    }
}

/// The FAILED_PRECONDITION of deleting a model that is a pathway's default.
pub(crate) fn model_is_default(id: &str, pathway: Option<String>) -> Error {
    let pathway = pathway.unwrap_or_default();
    Error::FailedPrecondition {
        reason: "MODEL_IS_DEFAULT",
        message: format!(
            "model `{id}` is the default of the {pathway} pathway; set another default first"
        ),
    }
}
