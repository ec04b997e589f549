//! The values of one AI call: who asks, what is asked, what comes back.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::auth::{RequestId, UserCaller};
use crate::domain::{Millis, now_ms};
use crate::providers::{ChatMessage, Finish, Image};

/// Who is calling and when: everything a usage row needs besides the result.
pub struct CallContext {
    pub caller: UserCaller,
    pub request_id: RequestId,
    pub started: Instant,
    pub create_ms: Millis,
}

impl CallContext {
    pub fn new(caller: UserCaller, request_id: RequestId) -> Self {
        CallContext {
            caller,
            request_id,
            started: Instant::now(),
            create_ms: now_ms(),
        }
    }
}

/// A validated text request (Text and StreamText).
#[derive(Debug, Clone, Default)]
pub struct TextInput {
    /// Empty: the text pathway's default.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A validated image request.
#[derive(Debug, Clone, Default)]
pub struct ImageInput {
    pub model: String,
    pub prompt: String,
    pub count: u32,
    pub metadata: BTreeMap<String, String>,
}

/// What a call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consumption {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub images: u64,
    pub cost_micros: i64,
}

#[derive(Debug, Clone)]
pub struct TextAnswer {
    pub text: String,
    pub model_id: String,
    pub finish: Finish,
    pub usage: Consumption,
}

#[derive(Debug, Clone)]
pub struct ImageAnswer {
    pub images: Vec<Image>,
    pub model_id: String,
    pub usage: Consumption,
}

/// One message of a relayed stream: a delta, or the end with its usage.
#[derive(Debug, Clone)]
pub enum StreamChunk {
    Delta(String),
    End { finish: Finish, usage: Consumption },
}
