//! The operator's caps on one AI call (`[server] max_messages_per_call`,
//! `max_prompt_bytes_per_call`), checked before anything else of the call:
//! a call over them is INVALID_ARGUMENT with a field violation and no row.

use crate::error::{Result, Violations};
use crate::proto;

#[derive(Debug, Clone, Copy)]
pub struct CallCaps {
    pub max_messages: usize,
    pub max_prompt_bytes: usize,
}

impl Default for CallCaps {
    fn default() -> Self {
        let server = crate::config::ServerConfig::default();
        CallCaps {
            max_messages: server.max_messages_per_call,
            max_prompt_bytes: server.max_prompt_bytes_per_call,
        }
    }
}

impl CallCaps {
    pub fn check_text(&self, messages: &[proto::Message]) -> Result<()> {
        let bytes: usize = messages.iter().map(|m| m.content.len()).sum();
        let mut v = Violations::default();
        v.check_with(messages.len() <= self.max_messages, "messages", || {
            format!("at most {} messages per call", self.max_messages)
        });
        v.check_with(bytes <= self.max_prompt_bytes, "messages", || {
            format!(
                "at most {} bytes of message content per call",
                self.max_prompt_bytes
            )
        });
        v.finish(())
    }

    pub fn check_image(&self, prompt: &str) -> Result<()> {
        let mut v = Violations::default();
        v.check_with(prompt.len() <= self.max_prompt_bytes, "prompt", || {
            format!("at most {} bytes per call", self.max_prompt_bytes)
        });
        v.finish(())
    }
}
