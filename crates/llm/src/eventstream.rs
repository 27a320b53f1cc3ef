//! The AWS binary event stream (`application/vnd.amazon.eventstream`), as Bedrock's
//! `ConverseStream` sends it: length-prefixed frames with headers and a CRC-checked prelude and
//! message. Framing and checksums are AWS's own `aws-smithy-eventstream`; this module feeds it
//! bytes as they arrive and names what each frame is.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use bytes::{Bytes, BytesMut};

use crate::LlmError;

/// One decoded frame: an event or an exception, with its JSON payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: String,
    /// `:event-type` of an event, `:exception-type` of an exception, `:error-code` of an error.
    pub name: String,
    pub payload: Bytes,
}

/// Turns byte chunks into frames; a frame split across chunks waits for the rest.
#[derive(Debug, Default)]
pub struct Decoder {
    frames: MessageFrameDecoder,
    buf: BytesMut,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the frames it completes. A frame whose checksum or length is wrong
    /// is an error: the stream cannot be trusted past it.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, LlmError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            match self.frames.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Incomplete) => return Ok(out),
                Ok(DecodedFrame::Complete(message)) => {
                    let header = |name: &str| {
                        message
                            .headers()
                            .iter()
                            .find(|h| h.name().as_str() == name)
                            .and_then(|h| h.value().as_string().ok())
                            .map(|s| s.as_str().to_owned())
                    };
                    let message_type = header(":message-type").unwrap_or_else(|| "event".into());
                    let name = match message_type.as_str() {
                        "exception" => header(":exception-type"),
                        "error" => header(":error-code"),
                        _ => header(":event-type"),
                    }
                    .unwrap_or_default();
                    out.push(Frame {
                        message_type,
                        name,
                        payload: message.payload().clone(),
                    });
                }
                Err(e) => {
                    return Err(LlmError::Stream(format!(
                        "a malformed event stream frame: {e}"
                    )))
                }
            }
        }
    }

    /// Whether the bytes so far end on a frame boundary (else the stream was cut mid-frame).
    pub fn at_boundary(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Encodes one event frame, as Bedrock writes them (for the mock and for tests).
pub fn encode_event(event_type: &str, payload: &[u8]) -> Bytes {
    encode(
        &[
            (":event-type", event_type),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// Encodes one exception frame (`throttlingException`, `validationException`…).
pub fn encode_exception(exception_type: &str, payload: &[u8]) -> Bytes {
    encode(
        &[
            (":exception-type", exception_type),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ],
        payload,
    )
}

fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    let mut message = Message::new(Bytes::copy_from_slice(payload));
    for (name, value) in headers {
        message = message.add_header(Header::new(
            (*name).to_owned(),
            HeaderValue::String((*value).to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    // Writing to a Vec cannot fail for headers and payloads this small.
    let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut bytes = encode_event("messageStart", br#"{"role":"assistant"}"#).to_vec();
        bytes.extend_from_slice(&encode_event(
            "contentBlockDelta",
            br#"{"delta":{"text":"hi"},"contentBlockIndex":0}"#,
        ));
        for split in 1..bytes.len() {
            let mut d = Decoder::new();
            let mut frames = d.feed(&bytes[..split]).unwrap();
            frames.extend(d.feed(&bytes[split..]).unwrap());
            assert_eq!(frames.len(), 2, "split at {split}");
            assert_eq!(frames[0].name, "messageStart");
            assert_eq!(frames[1].name, "contentBlockDelta");
            assert_eq!(
                &frames[1].payload[..],
                br#"{"delta":{"text":"hi"},"contentBlockIndex":0}"#
            );
            assert!(d.at_boundary());
        }
    }

    #[test]
    fn a_corrupt_frame_is_a_clean_error() {
        let mut bytes = encode_event("messageStop", br#"{"stopReason":"end_turn"}"#).to_vec();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff; // flip a payload byte: the message CRC no longer matches
        let e = Decoder::new().feed(&bytes).unwrap_err();
        assert!(
            e.to_string().contains("malformed event stream frame"),
            "{e}"
        );
        let mut prelude = encode_event("messageStop", b"{}").to_vec();
        prelude[9] ^= 0x01; // the prelude's own CRC
        assert!(Decoder::new().feed(&prelude).is_err());
        // A length that claims more than arrives leaves the decoder waiting, mid-frame: the
        // driver reports the stream as cut when the upstream ends there.
        let mut long = encode_event("messageStop", b"{}").to_vec();
        long[3] = long[3].wrapping_add(8);
        let mut d = Decoder::new();
        assert!(d.feed(&long).unwrap().is_empty());
        assert!(!d.at_boundary());
    }

    #[test]
    fn exceptions_are_named() {
        let f = Decoder::new()
            .feed(&encode_exception(
                "throttlingException",
                br#"{"message":"slow down"}"#,
            ))
            .unwrap();
        assert_eq!(f[0].message_type, "exception");
        assert_eq!(f[0].name, "throttlingException");
    }
}
