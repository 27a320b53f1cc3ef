//! Into the OpenAI Responses dialect: answers and streams for clients of `/v1/responses` served
//! through chat completions.

pub mod from_openai;
