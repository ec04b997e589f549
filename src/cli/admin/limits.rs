//! `downcity admin limits`: the limits of studios and users, and their standing.

use anyhow::Result;
use clap::{Args, Subcommand};
use downcity::proto::{
    GetLimitsRequest, GetQuotaStandingRequest, LimitTarget, Limits, SetLimitsRequest,
};

use crate::cli::connection::{Client, unary};
use crate::cli::output::Output;

#[derive(Debug, Subcommand)]
pub(super) enum LimitsCommand {
    /// Replace the limits of a studio, of its users by default, or of one
    /// user. Limits not given are removed; no limit flags remove them all.
    Set {
        /// The studio's id.
        studio: String,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Show the limits set for a studio, its users by default, or one user.
    Get {
        /// The studio's id.
        studio: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show, per limit that applies, what is used, reserved and remaining
    /// in its current window.
    Standing {
        /// The studio's id.
        studio: String,
        /// Also the limits that bind this user (their own, else the
        /// studio-wide user default).
        #[arg(long)]
        user: Option<String>,
    },
}

/// Which limits: the studio's own (the default), its users' default, or one user's.
#[derive(Debug, Args)]
pub(super) struct TargetArgs {
    /// The limits of this one user of the studio.
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default limits of each user of the studio without limits of their own.
    #[arg(long)]
    user_default: bool,
}

impl TargetArgs {
    /// The proto target and its user id.
    fn into_proto(self) -> (LimitTarget, String) {
        match self.user {
            Some(user) => (LimitTarget::User, user),
            None if self.user_default => (LimitTarget::UserDefault, String::new()),
            None => (LimitTarget::Studio, String::new()),
        }
    }
}

/// The limits of one target; absent flags mean "no limit". Windows are UTC.
#[derive(Debug, Args)]
pub(super) struct LimitArgs {
    /// Calls started per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    requests_per_minute: Option<i64>,
    /// Input plus output tokens per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    tokens_per_minute: Option<i64>,
    /// Input plus output tokens per day.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    tokens_per_day: Option<i64>,
    /// Cost per day, in micro-units.
    #[arg(long, value_name = "MICROS", value_parser = clap::value_parser!(i64).range(0..))]
    cost_per_day: Option<i64>,
    /// Cost per calendar month, in micro-units.
    #[arg(long, value_name = "MICROS", value_parser = clap::value_parser!(i64).range(0..))]
    cost_per_month: Option<i64>,
}

impl LimitArgs {
    fn into_proto(self) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            cost_micros_per_day: self.cost_per_day,
            cost_micros_per_month: self.cost_per_month,
        }
    }
}

pub(super) async fn run(client: &mut Client, out: Output, command: LimitsCommand) -> Result<()> {
    match command {
        LimitsCommand::Set {
            studio,
            target,
            limits,
        } => {
            let (target, user_id) = target.into_proto();
            let request = SetLimitsRequest {
                studio_id: studio,
                target: target.into(),
                user_id,
                limits: Some(limits.into_proto()),
            };
            let response = unary(client.set_limits(request)).await?;
            out.item("limits", response.limits.as_ref())
        }
        LimitsCommand::Get { studio, target } => {
            let (target, user_id) = target.into_proto();
            let request = GetLimitsRequest {
                studio_id: studio,
                target: target.into(),
                user_id,
            };
            let response = unary(client.get_limits(request)).await?;
            out.item("limits", response.limits.as_ref())
        }
        LimitsCommand::Standing { studio, user } => {
            let request = GetQuotaStandingRequest {
                studio_id: studio,
                user_id: user.unwrap_or_default(),
            };
            let response = unary(client.get_quota_standing(request)).await?;
            out.items("limits", &response.limits)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    fn limits_set(extra: &[&str]) -> (String, (LimitTarget, String), Limits) {
        let argv = [&["limits", "set", "acme"][..], extra].concat();
        match parse_ok(&argv).command {
            AdminCommand::Limits(LimitsCommand::Set {
                studio,
                target,
                limits,
            }) => (studio, target.into_proto(), limits.into_proto()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_set_carries_every_limit_and_target() {
        let (studio, target, limits) = limits_set(&[
            "--requests-per-minute",
            "60",
            "--tokens-per-minute",
            "10000",
            "--tokens-per-day",
            "500000",
            "--cost-per-day",
            "2000000",
            "--cost-per-month",
            "0",
        ]);
        assert_eq!(studio, "acme");
        assert_eq!(target, (LimitTarget::Studio, String::new()));
        assert_eq!(
            limits,
            Limits {
                requests_per_minute: Some(60),
                tokens_per_minute: Some(10_000),
                tokens_per_day: Some(500_000),
                cost_micros_per_day: Some(2_000_000),
                cost_micros_per_month: Some(0),
            }
        );
        let (_, target, limits) = limits_set(&["--user", "u1", "--tokens-per-day", "5"]);
        assert_eq!(target, (LimitTarget::User, "u1".to_owned()));
        assert_eq!(limits.tokens_per_day, Some(5));
        assert_eq!(limits.requests_per_minute, None);
        let (_, target, _) = limits_set(&["--user-default", "--requests-per-minute", "1"]);
        assert_eq!(target, (LimitTarget::UserDefault, String::new()));
    }

    #[test]
    fn limits_set_without_limits_removes_them() {
        let (_, target, limits) = limits_set(&["--user", "u1"]);
        assert_eq!(target, (LimitTarget::User, "u1".to_owned()));
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn limits_reject_bad_values_and_mixed_targets() {
        assert!(fails(&["limits", "set", "acme", "--tokens-per-day", "-1"]));
        assert!(fails(&["limits", "set", "acme", "--cost-per-day", "1.5"]));
        assert!(fails(&[
            "limits",
            "set",
            "acme",
            "--user",
            "u",
            "--user-default"
        ]));
        assert!(fails(&["limits", "set", "acme", "--user"]));
        assert!(fails(&["limits", "set", "--tokens-per-day", "5"]));
        assert!(fails(&[
            "limits",
            "get",
            "acme",
            "--user",
            "u",
            "--user-default"
        ]));
        assert!(fails(&["limits", "get", "acme", "--tokens-per-day", "5"]));
        assert!(fails(&["limits", "standing", "acme", "--user-default"]));
    }

    #[test]
    fn limits_get_and_standing_parse() {
        let target_of = |extra: &[&str]| {
            let argv = [&["limits", "get", "acme"][..], extra].concat();
            match parse_ok(&argv).command {
                AdminCommand::Limits(LimitsCommand::Get { studio, target }) => {
                    assert_eq!(studio, "acme");
                    target.into_proto()
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(target_of(&[]), (LimitTarget::Studio, String::new()));
        assert_eq!(
            target_of(&["--user-default"]),
            (LimitTarget::UserDefault, String::new())
        );
        assert_eq!(
            target_of(&["--user", "u9"]),
            (LimitTarget::User, "u9".to_owned())
        );
        let args = parse_ok(&["limits", "standing", "acme", "--user", "u1"]);
        assert!(matches!(
            args.command,
            AdminCommand::Limits(LimitsCommand::Standing { studio, user: Some(user) })
                if studio == "acme" && user == "u1"
        ));
        let args = parse_ok(&["limits", "standing", "acme"]);
        assert!(matches!(
            args.command,
            AdminCommand::Limits(LimitsCommand::Standing { user: None, .. })
        ));
    }
}
