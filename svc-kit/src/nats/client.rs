//! The caller's side of a service call. [`ServiceClient::request`] calls an
//! endpoint through its type from `shared_events::endpoint` (what the gateway
//! does); [`ServiceClient::call`] sends any JSON, for tests that must send
//! what no typed caller would.

use std::time::Duration;

use async_nats::{Client, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use shared_events::{Endpoint, subjects::REQUEST_ID_HEADER};

use super::wire::{CallError, decode_reply};

/// A caller of the platform's NATS services.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    client: Client,
    timeout: Duration,
}

impl ServiceClient {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    pub fn nats(&self) -> &Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn headers(request_id: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        headers
    }

    /// Calls endpoint `E`: its request type in, its reply type out.
    pub async fn request<E: Endpoint>(
        &self,
        req: &E::Request,
        request_id: Option<&str>,
    ) -> Result<E::Reply, CallError> {
        self.call(E::SUBJECT, req, request_id).await
    }

    /// Calls endpoint `E` whose reply comes in several messages (frames, or a
    /// redeem's reply and credit notice): the caller reads them off the
    /// returned subscription with [`Replies::next`].
    pub async fn request_replies<E: Endpoint>(
        &self,
        req: &E::Request,
        request_id: Option<&str>,
    ) -> Result<Replies<E>, CallError> {
        let sub = self.call_stream(E::SUBJECT, req, request_id).await?;
        Ok(Replies {
            sub,
            _endpoint: std::marker::PhantomData,
        })
    }

    /// One request with any JSON body, one reply.
    pub async fn call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        subject: &str,
        req: &Req,
        request_id: Option<&str>,
    ) -> Result<Resp, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::BadReply(e.to_string()))?;
        let msg = self.raw(subject, body.into(), request_id).await?;
        decode_reply(subject, &msg)
    }

    /// One request with a raw payload; the reply message as it came.
    pub async fn raw(
        &self,
        subject: &str,
        body: Bytes,
        request_id: Option<&str>,
    ) -> Result<Message, CallError> {
        let request = async_nats::Request::new()
            .payload(body)
            .headers(Self::headers(request_id))
            .timeout(Some(self.timeout));
        self.client
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|e| map_request_error(subject, e))
    }

    /// A request answered by several messages, on a fresh inbox subscribed
    /// before the request leaves (so no answer can be missed).
    pub async fn call_stream<Req: Serialize + ?Sized>(
        &self,
        subject: &str,
        req: &Req,
        request_id: Option<&str>,
    ) -> Result<Subscriber, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::BadReply(e.to_string()))?;
        let inbox = self.client.new_inbox();
        let sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        self.client
            .publish_with_reply_and_headers(
                subject.to_owned(),
                inbox,
                Self::headers(request_id),
                body.into(),
            )
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        Ok(sub)
    }
}

/// The answers of one multi-message call, each read as `E::Reply`.
pub struct Replies<E: Endpoint> {
    sub: Subscriber,
    _endpoint: std::marker::PhantomData<E>,
}

impl<E: Endpoint> Replies<E> {
    /// The next answer, waiting until `deadline`: `None` once it passed or
    /// the subscription ended.
    pub async fn next_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<Result<E::Reply, CallError>> {
        use futures::StreamExt;
        let msg = tokio::time::timeout_at(deadline, self.sub.next())
            .await
            .ok()??;
        Some(decode_reply(E::SUBJECT, &msg))
    }

    /// The answers as a stream (they end when the subscription does).
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<E::Reply, CallError>> {
        use futures::StreamExt;
        self.sub.map(|msg| decode_reply(E::SUBJECT, &msg))
    }
}

fn map_request_error(subject: &str, e: async_nats::RequestError) -> CallError {
    use async_nats::RequestErrorKind;
    match e.kind() {
        RequestErrorKind::NoResponders => CallError::NoResponders(subject.to_owned()),
        RequestErrorKind::TimedOut => CallError::Timeout(subject.to_owned()),
        _ => CallError::Transport(e.to_string()),
    }
}
