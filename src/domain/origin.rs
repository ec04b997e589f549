//! Web origins (`https://game.example`): the pages whose browsers may call
//! City, City-wide in the config and per studio.

use crate::error::{Error, Result};

/// Most origins one studio may list.
pub const MAX_ORIGINS: usize = 100;

/// The origins of a list in their canonical form (as browsers send them in
/// `Origin`: lowercase host, no default port, no trailing slash), without
/// duplicates; `field` names the list in errors.
pub fn normalize_origins(field: &str, origins: &[String]) -> Result<Vec<String>> {
    if origins.len() > MAX_ORIGINS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_ORIGINS} origins"),
        ));
    }
    let mut canonical: Vec<String> = Vec::with_capacity(origins.len());
    for (i, origin) in origins.iter().enumerate() {
        let origin =
            normalize_origin(origin).map_err(|why| Error::invalid(format!("{field}[{i}]"), why))?;
        if !canonical.contains(&origin) {
            canonical.push(origin);
        }
    }
    Ok(canonical)
}

/// One origin in its canonical form, or why it is not an origin.
pub fn normalize_origin(origin: &str) -> std::result::Result<String, String> {
    let expected = "an origin such as `https://game.example` or `http://localhost:8080`";
    let url = url::Url::parse(origin.trim()).map_err(|e| format!("{expected}: {e}"))?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    if !plain {
        return Err(format!(
            "{expected}: scheme http or https, a host and an optional port, nothing else"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_made_canonical() {
        for (given, canonical) in [
            ("https://Game.Example", "https://game.example"),
            ("https://game.example/", "https://game.example"),
            ("https://game.example:443", "https://game.example"),
            ("http://localhost:8080", "http://localhost:8080"),
            ("http://127.0.0.1:3000/", "http://127.0.0.1:3000"),
        ] {
            assert_eq!(normalize_origin(given).as_deref(), Ok(canonical), "{given}");
        }
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for bad in [
            "",
            "*",
            "null",
            "game.example",
            "ftp://game.example",
            "https://game.example/play",
            "https://game.example?x=1",
            "https://game.example/#top",
            "https://user@game.example",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_are_deduplicated_and_errors_name_the_entry() {
        let list = [
            "https://a.example".to_string(),
            "https://A.example/".to_string(),
        ];
        assert_eq!(
            normalize_origins("allowed_origins", &list).unwrap(),
            ["https://a.example"]
        );
        let bad = ["https://a.example".to_string(), "nope".to_string()];
        let err = normalize_origins("allowed_origins", &bad).unwrap_err();
        assert!(format!("{err:?}").contains("allowed_origins[1]"), "{err:?}");
    }
}
