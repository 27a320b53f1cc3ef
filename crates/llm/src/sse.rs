//! Server-sent events: an incremental decoder for upstream streams and the encoder for clients.
//!
//! The decoder accepts bytes split anywhere (mid-line, mid-UTF-8) and yields whole events; it
//! follows the WHATWG rules Gatehouse needs (`event:`, multi-line `data:`, comments, CRLF).

use bytes::{Bytes, BytesMut};

use crate::LlmError;

/// The longest line the decoder buffers before it gives up on a stream.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and returns every event they complete.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, LlmError> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if let Some(ev) = self.line(&line) {
                events.push(ev);
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err(LlmError::Invalid(format!(
                "upstream sent an event line longer than {MAX_LINE} bytes"
            )));
        }
        Ok(events)
    }

    /// True when no partial line or unfinished event is buffered (the input is at an event
    /// boundary).
    pub fn at_boundary(&self) -> bool {
        self.buf.is_empty() && self.data.is_none() && self.event.is_none()
    }

    /// Ends the input: an event not yet closed by a blank line is returned if it has data.
    pub fn finish(&mut self) -> Option<Event> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&rest)
                .trim_end_matches('\r')
                .to_owned();
            if let Some(ev) = self.line(&line) {
                return Some(ev);
            }
        }
        self.dispatch()
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = self.event.take();
        self.data.take().map(|data| Event { event, data })
    }
}

/// The terminator of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// Frames a JSON payload as one `data:` event.
pub fn data(json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

/// Frames a JSON payload as a named event (`event: name`), as Anthropic streams are written.
pub fn named(event: &str, json: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + event.len() + 16);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(d.feed(c).unwrap());
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn named_events_and_multiline_data_decode() {
        let evs = decode_all(&[
            b"event: message_start\ndata: {\"a\":\ndata: 1}\n\n: ping\n\ndata: x\r\n\r\n",
        ]);
        assert_eq!(
            evs,
            vec![
                Event {
                    event: Some("message_start".into()),
                    data: "{\"a\":\n1}".into()
                },
                Event {
                    event: None,
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn the_decoder_knows_when_it_is_mid_event() {
        let mut d = Decoder::new();
        assert!(d.at_boundary());
        d.feed(b"data: {\"a\"").unwrap();
        assert!(!d.at_boundary());
        d.feed(b": 1}\n").unwrap();
        assert!(!d.at_boundary(), "data seen but the event is not closed");
        d.feed(b"\n").unwrap();
        assert!(d.at_boundary());
    }

    #[test]
    fn an_unterminated_last_event_is_still_delivered() {
        let evs = decode_all(&[b"data: [DONE]"]);
        assert_eq!(
            evs,
            vec![Event {
                event: None,
                data: "[DONE]".into()
            }]
        );
    }

    proptest! {
        #[test]
        fn splitting_the_bytes_anywhere_gives_the_same_events(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let stream = "event: a\ndata: héllo wörld\n\ndata: {\"k\": [1,2,3]}\r\n\r\n: c\n\nevent: b\ndata: z\n\n".as_bytes();
            let whole = decode_all(&[stream]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % stream.len()).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for c in cuts { pieces.push(&stream[last..c]); last = c; }
            pieces.push(&stream[last..]);
            prop_assert_eq!(decode_all(&pieces), whole);
        }
    }
}
