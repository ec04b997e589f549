//! before_call: City POSTs the call's context to each before_call hook of the
//! studio, in turn, and waits (with the hook's timeout) for
//! `{"allow": true, "metadata": {...}}` or `{"allow": false, "reason": "..."}`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Hooks, LiveHook, signing};
use crate::error::{Error, Result};

/// What a before_call hook is told about a call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BeforeCall {
    pub request_id: String,
    pub studio_id: String,
    pub user_id: String,
    pub model: String,
    pub pathway: &'static str,
    /// StreamText rather than Text.
    pub stream: bool,
    pub estimated_tokens: i64,
    pub estimated_cost_micros: i64,
    pub metadata: BTreeMap<String, String>,
    /// Sent only to hooks that include prompts.
    #[serde(skip)]
    pub prompt: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Answer {
    allow: bool,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl Hooks {
    /// Runs the studio's before_call hooks; returns the metadata they attach.
    /// A studio without before_call hooks returns at once.
    pub async fn before_call(&self, call: &BeforeCall) -> Result<BTreeMap<String, String>> {
        let Some(hooks) = self.for_studio(&call.studio_id) else {
            return Ok(BTreeMap::new());
        };
        let mut metadata = BTreeMap::new();
        for hook in &hooks.before {
            match self.ask(hook, call).await {
                Ok(answer) if answer.allow => metadata.extend(answer.metadata),
                Ok(answer) => {
                    let message = if answer.reason.is_empty() {
                        "the studio's before_call hook denied the call".to_string()
                    } else {
                        answer.reason
                    };
                    return Err(Error::HookDenied {
                        hook_id: hook.record.id.clone(),
                        message,
                    });
                }
                Err(message) => {
                    tracing::warn!(
                        hook_id = %hook.record.id,
                        request_id = %call.request_id,
                        fail_closed = hook.record.fail_closed,
                        message,
                        "before_call hook failed"
                    );
                    if hook.record.fail_closed {
                        return Err(Error::HookUnavailable {
                            hook_id: hook.record.id.clone(),
                            message,
                        });
                    }
                }
            }
        }
        Ok(metadata)
    }

    async fn ask(&self, hook: &LiveHook, call: &BeforeCall) -> Result<Answer, String> {
        let mut body = serde_json::json!({
            "type": "before_call",
            "timestamp": crate::domain::now_ms(),
            "data": call,
        });
        if hook.record.include_prompt {
            body["data"]["prompt"] = call.prompt.clone();
        }
        let body = body.to_string();
        let id = format!("msg_{}", hex::encode(rand::random::<[u8; 16]>()));
        let mut request = self
            .client
            .post(&hook.record.url)
            .timeout(hook.timeout())
            .header("content-type", "application/json")
            .headers(crate::telemetry::propagate::trace_headers());
        for (name, value) in signing::headers(&hook.key, &id, body.as_bytes()) {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.map_err(describe)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the hook answered HTTP {}", status.as_u16()));
        }
        let bytes = response.bytes().await.map_err(describe)?;
        serde_json::from_slice(&bytes).map_err(|e| format!("the hook's answer is not valid: {e}"))
    }
}

/// A transport error, without the URL (it may carry a credential).
pub(super) fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "the hook timed out".into()
    } else if err.is_connect() {
        "could not connect to the hook".into()
    } else {
        format!("the hook request failed: {}", err.without_url())
    }
}
