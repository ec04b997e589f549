//! `downcity admin hooks`: business hooks (before_call / after_call
//! webhooks), and their deliveries.

use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use downcity::proto::{
    DeleteHookRequest, Hook, HookDeliveryState, HookEvent, HookFailurePolicy,
    ListHookDeliveriesRequest, ListHooksRequest, RedeliverHookRequest, UpsertHookRequest,
};

use super::args::{proto_choice, proto_duration};
use crate::cli::connection::{Client, unary};
use crate::cli::output::{Output, SecretKept};
use crate::cli::paging::{PageArgs, collect};

#[derive(Debug, Subcommand)]
pub(super) enum HooksCommand {
    /// Create a hook and print its signing secret, once; or, with --id,
    /// replace a hook whole (its secret stays).
    Upsert(Box<HookArgs>),
    /// List the hooks of a studio, or the City-wide ones, without secrets.
    List {
        #[command(flatten)]
        scope: HookScope,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Delete a hook; its pending deliveries become dead.
    Delete {
        /// The hook's id.
        hook_id: String,
        #[command(flatten)]
        scope: HookScope,
    },
    /// List after_call deliveries, newest first.
    Deliveries {
        #[command(flatten)]
        scope: HookScope,
        /// Only this hook's deliveries.
        #[arg(long, value_name = "HOOK_ID")]
        hook: Option<String>,
        /// Only deliveries in this state.
        #[arg(long, value_enum)]
        state: Option<DeliveryStateArg>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send a delivery again, now, with its attempts reset.
    Redeliver {
        /// The delivery's id (`msg_...`).
        delivery_id: String,
        #[command(flatten)]
        scope: HookScope,
    },
}

/// Whose hooks: a studio's, or (without --studio) the City-wide ones.
#[derive(Debug, Args)]
pub(super) struct HookScope {
    /// The studio; without it, the City-wide hooks (admin key only).
    #[arg(long)]
    studio: Option<String>,
}

impl HookScope {
    /// The proto `studio_id`: empty for City-wide.
    fn studio_id(self) -> String {
        self.studio.unwrap_or_default()
    }
}

/// Whose calls a hook sees: always said, so no hook becomes City-wide by
/// a forgotten --studio.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(super) struct HookOwner {
    /// The studio whose calls the hook sees.
    #[arg(long)]
    studio: Option<String>,
    /// A City-wide hook: it sees every studio's calls (admin key only).
    #[arg(long)]
    city_wide: bool,
}

/// Every field of a hook; an upsert replaces the whole hook.
#[derive(Debug, Args)]
pub(super) struct HookArgs {
    /// The hook to replace; omitted creates a new hook with a new secret.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    owner: HookOwner,
    /// The http(s) URL City POSTs to.
    #[arg(long)]
    url: String,
    /// The events sent to the hook; repeat, or separate with commas.
    #[arg(
        long = "event",
        value_name = "EVENT",
        value_enum,
        value_delimiter = ',',
        required = true
    )]
    events: Vec<EventArg>,
    /// How long a before_call waits for the answer, and an after_call
    /// delivery for its response, such as `500ms` (default 2s, at most 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// What a before_call does when the hook times out or fails: `open`
    /// lets the call proceed (the default), `closed` fails it.
    #[arg(long, value_enum)]
    failure_policy: Option<PolicyArg>,
    /// Send the prompt in before_call payloads.
    #[arg(long)]
    include_prompt: bool,
}

impl HookArgs {
    fn into_proto(self) -> Result<Hook> {
        let timeout = self
            .timeout
            .map(|t| proto_duration(t).ok_or_else(|| anyhow!("the timeout is too long")))
            .transpose()?;
        Ok(Hook {
            id: self.id.unwrap_or_default(),
            studio_id: self.owner.studio.unwrap_or_default(),
            url: self.url,
            events: self.events.into_iter().map(i32::from).collect(),
            timeout,
            failure_policy: self.failure_policy.map_or(0, i32::from),
            include_prompt: self.include_prompt,
            create_time: None,
            update_time: None,
        })
    }
}

proto_choice! {
    /// When a hook is called.
    EventArg => HookEvent {
        /// Before the provider call, synchronously; may deny the call.
        #[value(name = "before_call", alias = "before-call")]
        BeforeCall,
        /// After the call, with its usage row, delivered with retries.
        #[value(name = "after_call", alias = "after-call")]
        AfterCall,
    }
}

proto_choice! {
    /// What a failed or timed-out before_call does.
    PolicyArg => HookFailurePolicy {
        /// The call proceeds.
        #[value(name = "open", alias = "fail_open", alias = "fail-open")]
        FailOpen,
        /// The call fails with UNAVAILABLE (HOOK_UNAVAILABLE).
        #[value(name = "closed", alias = "fail_closed", alias = "fail-closed")]
        FailClosed,
    }
}

proto_choice! {
    /// Where an after_call delivery stands.
    DeliveryStateArg => HookDeliveryState {
        /// Waiting for its next attempt.
        Pending,
        /// The receiver answered 2xx.
        Delivered,
        /// Given up after the last attempt, or its hook was deleted.
        Dead,
    }
}

pub(super) async fn run(client: &mut Client, out: Output, command: HooksCommand) -> Result<()> {
    match command {
        HooksCommand::Upsert(hook) => {
            let request = UpsertHookRequest {
                hook: Some(hook.into_proto()?),
            };
            let response = unary(client.upsert_hook(request)).await?;
            let hook = response.hook.as_ref();
            // Only a new hook comes back with its secret.
            if response.secret.is_empty() {
                out.item("hook", hook)
            } else {
                out.item_with_secret("hook", hook, &response.secret, SecretKept::Encrypted)
            }
        }
        HooksCommand::List { scope, page } => {
            let request = ListHooksRequest {
                studio_id: scope.studio_id(),
                ..Default::default()
            };
            out.list(&collect(page, request, async |r| client.list_hooks(r).await).await?)
        }
        HooksCommand::Delete { hook_id, scope } => {
            let request = DeleteHookRequest {
                studio_id: scope.studio_id(),
                hook_id: hook_id.clone(),
            };
            unary(client.delete_hook(request)).await?;
            out.deleted("hook", &hook_id)
        }
        HooksCommand::Deliveries {
            scope,
            hook,
            state,
            page,
        } => {
            let request = ListHookDeliveriesRequest {
                studio_id: scope.studio_id(),
                hook_id: hook.unwrap_or_default(),
                state: state.map_or(0, i32::from),
                ..Default::default()
            };
            out.list(
                &collect(page, request, async |r| {
                    client.list_hook_deliveries(r).await
                })
                .await?,
            )
        }
        HooksCommand::Redeliver { delivery_id, scope } => {
            let request = RedeliverHookRequest {
                studio_id: scope.studio_id(),
                delivery_id,
            };
            let response = unary(client.redeliver_hook(request)).await?;
            out.item("delivery", response.delivery.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    fn hook_upsert(extra: &[&str]) -> Hook {
        let argv = [&["hooks", "upsert", "--url", "http://h/x"][..], extra].concat();
        match parse_ok(&argv).command {
            AdminCommand::Hooks(HooksCommand::Upsert(hook)) => hook.into_proto().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hook_upserts_carry_every_field() {
        let hook = hook_upsert(&[
            "--studio",
            "acme",
            "--event",
            "before_call,after-call",
            "--timeout",
            "1500ms",
            "--failure-policy",
            "closed",
            "--include-prompt",
            "--id",
            "hk_1",
        ]);
        assert_eq!(
            (hook.id.as_str(), hook.studio_id.as_str(), hook.url.as_str()),
            ("hk_1", "acme", "http://h/x")
        );
        let events = [HookEvent::BeforeCall as i32, HookEvent::AfterCall as i32];
        assert_eq!(hook.events, events);
        let timeout = hook.timeout.unwrap();
        assert_eq!((timeout.seconds, timeout.nanos), (1, 500_000_000));
        assert_eq!(hook.failure_policy, HookFailurePolicy::FailClosed as i32);
        assert!(hook.include_prompt);

        // The defaults are the server's: no timeout, unspecified policy.
        let hook = hook_upsert(&["--city-wide", "--event", "after_call"]);
        assert_eq!((hook.id.as_str(), hook.studio_id.as_str()), ("", ""));
        assert_eq!(hook.events, [HookEvent::AfterCall as i32]);
        assert_eq!((hook.timeout, hook.failure_policy), (None, 0));
        assert!(!hook.include_prompt);
        let hook = hook_upsert(&["--city-wide", "--event", "before_call"]);
        assert_eq!(hook.events, [HookEvent::BeforeCall as i32]);
        let hook = hook_upsert(&["--studio", "a", "--event", "after_call"]);
        assert_eq!(hook.failure_policy, 0);
        let open = hook_upsert(&[
            "--studio",
            "a",
            "--event",
            "after_call",
            "--failure-policy",
            "open",
        ]);
        assert_eq!(open.failure_policy, HookFailurePolicy::FailOpen as i32);
    }

    #[test]
    fn hook_upserts_need_an_owner_events_and_valid_values() {
        let base = ["hooks", "upsert", "--url", "http://h/x"];
        let with = |extra: &[&'static str]| [&base[..], extra].concat();
        assert!(fails(&with(&["--event", "after_call"])), "no owner");
        assert!(fails(&with(&[
            "--studio",
            "a",
            "--city-wide",
            "--event",
            "after_call"
        ])));
        assert!(fails(&with(&["--studio", "a"])), "no event");
        assert!(fails(&with(&["--studio", "a", "--event", "during_call"])));
        assert!(fails(&with(&[
            "--studio",
            "a",
            "--event",
            "after_call",
            "--failure-policy",
            "maybe"
        ])));
        assert!(fails(&with(&[
            "--studio",
            "a",
            "--event",
            "after_call",
            "--timeout",
            "soon"
        ])));
        assert!(fails(&[
            "hooks",
            "upsert",
            "--studio",
            "a",
            "--event",
            "after_call"
        ]));
    }

    #[test]
    fn hook_lists_deletes_and_deliveries_parse() {
        let args = parse_ok(&["hooks", "list"]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::List {
                scope: HookScope { studio: None },
                ..
            })
        ));
        let args = parse_ok(&["hooks", "delete", "hk_1", "--studio", "acme"]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::Delete { ref hook_id, scope: HookScope { studio: Some(ref s) } })
                if hook_id == "hk_1" && s == "acme"
        ));
        let args = parse_ok(&[
            "hooks",
            "deliveries",
            "--studio",
            "acme",
            "--hook",
            "hk_1",
            "--state",
            "dead",
            "--all",
        ]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::Deliveries {
                hook: Some(ref h),
                state: Some(DeliveryStateArg::Dead),
                page: PageArgs { all: true, .. },
                ..
            }) if h == "hk_1"
        ));
        assert_eq!(
            i32::from(DeliveryStateArg::Delivered),
            HookDeliveryState::Delivered as i32
        );
        let args = parse_ok(&["hooks", "redeliver", "msg_1"]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::Redeliver { ref delivery_id, .. }) if delivery_id == "msg_1"
        ));
        assert!(fails(&["hooks", "deliveries", "--state", "lost"]));
        assert!(fails(&["hooks", "delete"]));
        assert!(fails(&["hooks", "redeliver"]));
    }
}
