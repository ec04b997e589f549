//! A server-sent events parser (the WHATWG `text/event-stream` format) that
//! takes bytes split anywhere: lines end in LF, CRLF or CR (also when the CR
//! and the LF arrive in different chunks); `:` lines are comments; several
//! `data:` lines join with LF; an empty line dispatches the event.
//!
//! Memory is bounded: an event (its pending line plus its data) larger than
//! `max_event` bytes is an error, not an ever-growing buffer. A stream that
//! ends inside an event is reported by `finish`.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when the event had none ("message").
    pub event: String,
    /// The `data:` lines joined with LF.
    pub data: String,
}

/// Why a byte stream is not acceptable SSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an event is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the stream ended in the middle of an event")]
    Truncated,
}

/// The largest event City accepts from an upstream: 1 MiB.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// An incremental SSE parser.
#[derive(Debug)]
pub struct SseParser {
    max_event: usize,
    /// Bytes of the current line, not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF belongs to that line end.
    after_cr: bool,
    event: String,
    data: String,
    /// Whether the current event has a data field (even an empty one).
    has_data: bool,
    /// Whether any field line of the current event has been seen.
    in_event: bool,
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new(MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new(max_event: usize) -> Self {
        SseParser {
            max_event,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            in_event: false,
            failed: false,
        }
    }

    /// Feeds the next bytes; returns the events they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.failed {
            return Err(SseError::TooLarge(self.max_event));
        }
        let mut events = Vec::new();
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while !bytes.is_empty() {
            match bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.extend_line(&bytes[..end])?;
                    let cr = bytes[end] == b'\r';
                    bytes = &bytes[end + 1..];
                    if cr {
                        match bytes.first() {
                            Some(b'\n') => bytes = &bytes[1..],
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    if let Some(event) = self.take_line(&line)? {
                        events.push(event);
                    }
                    self.line = line;
                    self.line.clear();
                }
                None => {
                    self.extend_line(bytes)?;
                    bytes = &[];
                }
            }
        }
        Ok(events)
    }

    /// The stream has ended: an event left half-received is an error.
    pub fn finish(&self) -> Result<(), SseError> {
        if self.line.is_empty() && !self.in_event {
            Ok(())
        } else {
            Err(SseError::Truncated)
        }
    }

    fn pending(&self) -> usize {
        self.line.len() + self.data.len() + self.event.len()
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.pending() + bytes.len() > self.max_event {
            return Err(self.too_large());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn too_large(&mut self) -> SseError {
        self.failed = true;
        self.line = Vec::new();
        self.data = String::new();
        SseError::TooLarge(self.max_event)
    }

    /// Handles one complete line; returns an event when it dispatches one.
    fn take_line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            let event = SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            };
            let dispatch = self.has_data;
            self.has_data = false;
            self.in_event = false;
            return Ok(dispatch.then_some(event));
        }
        if line[0] == b':' {
            return Ok(None);
        }
        self.in_event = true;
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.pending() + value.len() + 1 > self.max_event {
                    return Err(self.too_large());
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = value.into_owned(),
            // `id` and `retry` steer browser reconnection; City never reconnects.
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.push(chunk)?);
        }
        parser.finish()?;
        Ok(events)
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn fields_comments_and_line_ends() {
        let input =
            b": ping\r\nevent: delta\r\ndata: a\rdata:b\n\ndata: [DONE]\n\nid: 3\nretry: 5\n\n";
        assert_eq!(
            parse_all(&[input]).unwrap(),
            vec![ev("delta", "a\nb"), ev("", "[DONE]")]
        );
    }

    #[test]
    fn crlf_split_between_chunks() {
        let events = parse_all(&[b"data: x\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(events, vec![ev("", "x")]);
    }

    #[test]
    fn cut_mid_event_is_truncated() {
        assert_eq!(
            parse_all(&[b"data: {\"a\":"]).unwrap_err(),
            SseError::Truncated
        );
        assert_eq!(parse_all(&[b"data: x\n"]).unwrap_err(), SseError::Truncated);
        assert!(parse_all(&[b"data: x\n\n: trailing comment\n"]).is_ok());
    }

    #[test]
    fn an_event_over_the_limit_fails_without_buffering_it() {
        let mut parser = SseParser::new(1024);
        assert!(parser.push(b"data: ").unwrap().is_empty());
        let big = vec![b'x'; 600];
        assert!(parser.push(&big).is_ok());
        assert_eq!(parser.push(&big).unwrap_err(), SseError::TooLarge(1024));
        assert!(parser.push(b"\n\n").is_err());
        // Many data lines add up too.
        let mut parser = SseParser::new(1024);
        let line = [b"data: ".as_slice(), &[b'y'; 100], b"\n"].concat();
        let result: Result<Vec<_>, _> = (0..20).map(|_| parser.push(&line)).collect();
        assert_eq!(result.unwrap_err(), SseError::TooLarge(1024));
    }

    /// A well-formed stream of `events`, with varied line ends and comments.
    fn render(events: &[(String, String)], ends: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (event, data)) in events.iter().enumerate() {
            let end: &[u8] = match ends.get(i).copied().unwrap_or(0) % 3 {
                0 => b"\n",
                1 => b"\r\n",
                _ => b"\r",
            };
            if i % 2 == 1 {
                out.extend_from_slice(b": keep-alive");
                out.extend_from_slice(end);
            }
            if !event.is_empty() {
                out.extend_from_slice(format!("event: {event}").as_bytes());
                out.extend_from_slice(end);
            }
            for line in data.split('\n') {
                out.extend_from_slice(format!("data: {line}").as_bytes());
                out.extend_from_slice(end);
            }
            out.extend_from_slice(end);
        }
        out
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                     cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let mut parser = SseParser::new(512);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                let _ = parser.push(&bytes[start..cut]);
                start = cut;
            }
            let _ = parser.finish();
        }

        #[test]
        fn same_events_however_the_input_is_split(
            events in proptest::collection::vec(("[a-z]{0,6}", "[ -~]{0,40}(\n[ -~]{0,20}){0,2}"), 0..8),
            ends in proptest::collection::vec(any::<u8>(), 8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let bytes = render(&events, &ends);
            let expected: Vec<SseEvent> = events.iter().map(|(e, d)| ev(e, d)).collect();
            prop_assert_eq!(parse_all(&[&bytes]).unwrap(), expected.clone());
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                chunks.push(&bytes[start..cut]);
                start = cut;
            }
            prop_assert_eq!(parse_all(&chunks).unwrap(), expected);
        }
    }
}
