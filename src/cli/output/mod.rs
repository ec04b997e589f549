//! How the admin CLI shows response messages: as tables, or with `--json`
//! as JSON (see [`json`]); usage exports as CSV (see [`csv`]).

pub(crate) mod csv;
pub(crate) mod json;
mod rows;
mod table;

use anyhow::Result;
use serde::Serialize;
use serde_json::{Map, Value};

use super::paging::Listing;
use json::to_json;
use table::{Render, item_table, list_table};

/// A message the CLI shows: a table row, or its JSON.
pub(crate) trait Shown: Render + Serialize + prost::Name {}

impl<T: Render + Serialize + prost::Name> Shown for T {}

/// How City stores a secret it shows once.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SecretKept {
    /// As a hash: a credential City checks (studio keys, user tokens).
    Hashed,
    /// Encrypted with the master key: a key City signs with (hook secrets).
    Encrypted,
}

/// Prints responses on stdout, as tables or as JSON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) json: bool,
}

impl Output {
    fn print_json(members: Map<String, Value>) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(&Value::Object(members))?);
        Ok(())
    }

    /// `{field: item}`, as the response message holding `item`.
    fn item_json<T: Shown>(field: &str, item: Option<&T>) -> Result<Map<String, Value>> {
        let item = item.map_or(Ok(Value::Null), to_json)?;
        Ok(Map::from_iter([(field.to_owned(), item)]))
    }

    /// `[item, …]`.
    fn items_json<T: Shown>(items: &[T]) -> Result<Value> {
        Ok(Value::Array(
            items.iter().map(to_json).collect::<Result<_>>()?,
        ))
    }

    /// A response holding one message in `field`.
    pub(crate) fn item<T: Shown>(&self, field: &str, item: Option<&T>) -> Result<()> {
        if self.json {
            return Self::print_json(Self::item_json(field, item)?);
        }
        match item {
            Some(item) => println!("{}", item_table(item)),
            None => println!("(the response holds no {field})"),
        }
        Ok(())
    }

    /// A response holding one message in `field` and its one-time `secret`.
    pub(crate) fn item_with_secret<T: Shown>(
        &self,
        field: &str,
        item: Option<&T>,
        secret: &str,
        kept: SecretKept,
    ) -> Result<()> {
        if self.json {
            let mut members = Self::item_json(field, item)?;
            members.insert("secret".to_owned(), Value::from(secret));
            return Self::print_json(members);
        }
        self.item(field, item)?;
        let kept = match kept {
            SecretKept::Hashed => "City keeps only its hash",
            SecretKept::Encrypted => "City keeps it encrypted and never shows it again",
        };
        println!();
        println!("Secret (shown only this once; {kept}, so store it now):");
        println!("{secret}");
        Ok(())
    }

    /// One or more pages of a list response.
    pub(crate) fn list<T: Shown>(&self, listing: &Listing<T>) -> Result<()> {
        if self.json {
            let token = Value::from(listing.next_page_token.as_str());
            let members = [
                (listing.field.to_owned(), Self::items_json(&listing.items)?),
                ("next_page_token".to_owned(), token),
            ];
            return Self::print_json(Map::from_iter(members));
        }
        Self::print_rows(listing.field, &listing.items);
        if !listing.next_page_token.is_empty() {
            eprintln!(
                "More {} exist: pass --all, or a larger --page-size.",
                listing.field
            );
        }
        Ok(())
    }

    /// A response holding one unpaged list of messages in `field`.
    pub(crate) fn items<T: Shown>(&self, field: &str, items: &[T]) -> Result<()> {
        if self.json {
            let members = [(field.to_owned(), Self::items_json(items)?)];
            return Self::print_json(Map::from_iter(members));
        }
        Self::print_rows(field, items);
        Ok(())
    }

    /// A table with a row per item, or a line saying there are none.
    fn print_rows<T: Render>(field: &str, items: &[T]) {
        match list_table(items) {
            Some(table) => println!("{table}"),
            None => println!("No {field} found."),
        }
    }

    /// The empty response to deleting `what`.
    pub(crate) fn deleted(&self, what: &str, id: &str) -> Result<()> {
        if self.json {
            return Self::print_json(Map::new());
        }
        println!("Deleted {what} `{id}`.");
        Ok(())
    }
}
