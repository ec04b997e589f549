//! `downcity admin models`: create, list and delete catalog models.

use anyhow::Result;
use clap::{Args, Subcommand};
use downcity::proto::{
    DeleteModelRequest, ListCatalogModelsRequest, Model, Pathway, UpsertModelRequest,
};

use super::args::{parse_key_value, proto_choice};
use crate::cli::connection::{Client, unary};
use crate::cli::output::Output;
use crate::cli::paging::{PageArgs, collect};

#[derive(Debug, Subcommand)]
pub(super) enum ModelsCommand {
    /// Create or replace a catalog model.
    Upsert(Box<ModelArgs>),
    /// List the catalog with its upstream details.
    List(PageArgs),
    /// Delete a model that is no pathway's default.
    Delete {
        /// The model's id.
        id: String,
    },
}

/// Every field of a model; an upsert replaces the whole model.
#[derive(Debug, Args)]
pub(super) struct ModelArgs {
    /// Stable id that studios pass as `model`.
    id: String,
    /// The provider that serves the model.
    #[arg(long)]
    provider: String,
    /// The model's name at the upstream.
    #[arg(long, value_name = "NAME")]
    upstream: String,
    /// The pathway the model serves.
    #[arg(long, value_enum)]
    pathway: PathwayArg,
    /// Human-readable name.
    #[arg(long)]
    name: Option<String>,
    /// Keep studios from calling the model.
    #[arg(long)]
    disabled: bool,
    /// Largest answer in tokens.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    max_output_tokens: i32,
    /// Largest prompt in estimated tokens.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    max_input_tokens: i32,
    /// Price per million input tokens, in micro-units.
    #[arg(long, value_name = "MICROS_PER_MTOK", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    input_price: i64,
    /// Price per million output tokens, in micro-units.
    #[arg(long, value_name = "MICROS_PER_MTOK", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    output_price: i64,
    /// Price per generated image, in micro-units.
    #[arg(long, value_name = "MICROS_PER_IMAGE", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    image_price: i64,
    /// A model to fall back to when the provider fails; repeat, in order.
    #[arg(long = "fallback", value_name = "MODEL")]
    fallbacks: Vec<String>,
    /// A provider-specific setting, such as `chunk_delay_ms=20`; repeat.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    options: Vec<(String, String)>,
}

proto_choice! {
    /// The kind of AI call a model serves.
    PathwayArg => Pathway { Text, Image }
}

impl ModelArgs {
    fn into_proto(self) -> Model {
        Model {
            id: self.id,
            display_name: self.name.unwrap_or_default(),
            provider_id: self.provider,
            upstream_model: self.upstream,
            pathway: self.pathway.into(),
            enabled: Some(!self.disabled),
            is_default: false,
            max_output_tokens: self.max_output_tokens,
            max_input_tokens: self.max_input_tokens,
            input_micros_per_mtok: self.input_price,
            output_micros_per_mtok: self.output_price,
            micros_per_image: self.image_price,
            fallback_model_ids: self.fallbacks,
            options: self.options.into_iter().collect(),
            update_time: None,
        }
    }
}

pub(super) async fn run(client: &mut Client, out: Output, command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Upsert(model) => {
            let request = UpsertModelRequest {
                model: Some(model.into_proto()),
            };
            let response = unary(client.upsert_model(request)).await?;
            out.item("model", response.model.as_ref())
        }
        ModelsCommand::List(page) => {
            let request = ListCatalogModelsRequest::default();
            out.list(&collect(page, request, async |r| client.list_catalog_models(r).await).await?)
        }
        ModelsCommand::Delete { id } => {
            let request = DeleteModelRequest {
                model_id: id.clone(),
            };
            unary(client.delete_model(request)).await?;
            out.deleted("model", &id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    #[test]
    fn model_upserts_carry_every_field() {
        let args = parse_ok(&[
            "models",
            "upsert",
            "fast",
            "--provider",
            "mock1",
            "--upstream",
            "mock-large",
            "--pathway",
            "text",
            "--name",
            "Fast",
            "--disabled",
            "--max-output-tokens",
            "512",
            "--max-input-tokens",
            "4096",
            "--input-price",
            "150",
            "--output-price",
            "600",
            "--fallback",
            "slow",
            "--fallback",
            "slower",
            "--option",
            "chunk_delay_ms=20",
            "--option",
            "fail=a=b",
        ]);
        let AdminCommand::Models(ModelsCommand::Upsert(model)) = args.command else {
            panic!("not an upsert");
        };
        let model = model.into_proto();
        assert_eq!(model.id, "fast");
        assert_eq!(model.display_name, "Fast");
        assert_eq!(model.provider_id, "mock1");
        assert_eq!(model.upstream_model, "mock-large");
        assert_eq!(model.pathway, Pathway::Text as i32);
        assert_eq!(model.enabled, Some(false));
        assert_eq!(
            (model.max_output_tokens, model.max_input_tokens),
            (512, 4096)
        );
        assert_eq!(
            (model.input_micros_per_mtok, model.output_micros_per_mtok),
            (150, 600)
        );
        assert_eq!(model.micros_per_image, 0);
        assert_eq!(model.fallback_model_ids, ["slow", "slower"]);
        assert_eq!(model.options["chunk_delay_ms"], "20");
        assert_eq!(model.options["fail"], "a=b");
    }

    #[test]
    fn model_upserts_reject_bad_values() {
        let base = [
            "models",
            "upsert",
            "m",
            "--provider",
            "p",
            "--upstream",
            "u",
        ];
        let with = |extra: &[&'static str]| [&base[..], extra].concat();
        assert!(!fails(&with(&[
            "--pathway",
            "image",
            "--image-price",
            "40000"
        ])));
        assert!(fails(&with(&[])));
        assert!(fails(&with(&["--pathway", "audio"])));
        assert!(fails(&with(&["--pathway", "text", "--option", "novalue"])));
        assert!(fails(&with(&["--pathway", "text", "--option", "=v"])));
        assert!(fails(&with(&["--pathway", "text", "--input-price", "-1"])));
    }
}
