//! The caller's side of a service call. [`ServiceClient::request`] calls an
//! endpoint through its type from `shared_events::endpoint` (what the gateway
//! does); [`ServiceClient::call`] sends any JSON, for tests that must send
//! what no typed caller would.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{Client, HeaderMap, Message};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Serialize, de::DeserializeOwned};
use shared_events::{Endpoint, subjects::REQUEST_ID_HEADER};
use tokio::sync::{OnceCell, mpsc};

use super::wire::{CallError, decode_reply};

/// A caller of the platform's NATS services.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    client: Client,
    timeout: Duration,
    inboxes: Arc<OnceCell<Inboxes>>,
}

impl ServiceClient {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            inboxes: Arc::new(OnceCell::new()),
        }
    }

    /// Opens what the first call would (the reply subscriptions), so that
    /// the first real call does not pay for it.
    pub async fn warm(&self) -> Result<(), CallError> {
        self.inboxes().await.map(|_| ())
    }

    async fn inboxes(&self) -> Result<&Inboxes, CallError> {
        self.inboxes
            .get_or_try_init(|| Inboxes::subscribe(&self.client))
            .await
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
    /// redeem's reply and credit notice): the caller reads them with
    /// [`Replies::next_until`]. The replies come to an inbox of this client's
    /// one long-lived subscription, so a call opens and closes none.
    pub async fn request_replies<E: Endpoint>(
        &self,
        req: &E::Request,
        request_id: Option<&str>,
    ) -> Result<Replies<E>, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::BadReply(e.to_string()))?;
        let inbox = self.inboxes().await?.next_inbox();
        self.client
            .publish_with_reply_and_headers(
                E::SUBJECT.to_owned(),
                inbox.subject.clone(),
                Self::headers(request_id),
                body.into(),
            )
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        Ok(Replies {
            inbox,
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

    /// A request answered by several messages, with any JSON body, on a
    /// fresh inbox subscribed before the request leaves (so no answer can be
    /// missed). Tests use it; typed callers use [`Self::request_replies`].
    pub async fn call_stream<Req: Serialize + ?Sized>(
        &self,
        subject: &str,
        req: &Req,
        request_id: Option<&str>,
    ) -> Result<async_nats::Subscriber, CallError> {
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
    inbox: Inbox,
    _endpoint: std::marker::PhantomData<E>,
}

/// One of a saga's two answers on one inbox ([`Replies::reply_and_notice`]).
pub enum Answer<R, N> {
    /// The called service's reply.
    Reply(R),
    /// The notice of the service downstream, once its effect is committed.
    Notice(N),
}

impl<E: Endpoint> Replies<E> {
    /// A saga's two answers (a redeem, a reversal), which may come in either
    /// order: the called service's reply, within `call_timeout` (or by
    /// `deadline` if that is later), and the downstream notice, by
    /// `deadline`. `split` tells them apart; a reply for which `is_last`
    /// holds (a replay: nothing new was asked downstream) ends the wait.
    /// What came; the caller decides what a missing one means.
    pub async fn reply_and_notice<R, N>(
        &mut self,
        call_timeout: Duration,
        deadline: tokio::time::Instant,
        split: impl Fn(E::Reply) -> Answer<R, N>,
        is_last: impl Fn(&R) -> bool,
    ) -> Result<(Option<R>, Option<N>), CallError> {
        let (mut reply, mut notice) = (None, None);
        while reply.is_none() || notice.is_none() {
            let until = if reply.is_none() {
                deadline.max(tokio::time::Instant::now() + call_timeout)
            } else {
                deadline
            };
            match self.next_until(until).await {
                None => break,
                Some(Err(e)) => return Err(e),
                Some(Ok(m)) => match split(m) {
                    Answer::Notice(n) => notice = Some(n),
                    Answer::Reply(r) => {
                        let last = is_last(&r);
                        reply = Some(r);
                        if last {
                            break;
                        }
                    }
                },
            }
        }
        Ok((reply, notice))
    }

    /// The next answer, waiting until `deadline`: `None` once it passed.
    pub async fn next_until(
        &mut self,
        deadline: tokio::time::Instant,
    ) -> Option<Result<E::Reply, CallError>> {
        let msg = tokio::time::timeout_at(deadline, self.inbox.rx.recv())
            .await
            .ok()??;
        Some(decode_reply(E::SUBJECT, &msg))
    }

    /// The answers as a stream (it ends when the inbox is dropped).
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<E::Reply, CallError>> {
        futures::stream::unfold(self, |mut r| async move {
            let msg = r.inbox.rx.recv().await?;
            Some((decode_reply(E::SUBJECT, &msg), r))
        })
    }
}

/// Answers a call may hold unread; past it the rest are dropped. The longest
/// answer is a million codes' creation, 103 frames (group, 100 of codes,
/// end); a redeem gets two messages.
const INBOX_DEPTH: usize = 128;

/// One subscription, `<prefix>.*`, for every multi-message call of this
/// client: each call gets `<prefix>.<n>` and the messages to it are handed
/// to that call's channel. Opening and closing a subscription per redeem was
/// two more protocol messages for the broker on each.
#[derive(Debug)]
struct Inboxes {
    prefix: String,
    next: AtomicU64,
    open: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
}

impl Inboxes {
    async fn subscribe(client: &Client) -> Result<Self, CallError> {
        let prefix = client.new_inbox();
        let mut sub = client
            .subscribe(format!("{prefix}.*"))
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let open: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>> = Arc::default();
        let routes = open.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(n) = msg
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                else {
                    continue;
                };
                let tx = routes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&n)
                    .cloned();
                if let Some(tx) = tx {
                    // A caller that stopped reading loses the rest.
                    let _ = tx.try_send(msg);
                }
            }
        });
        Ok(Self {
            prefix,
            next: AtomicU64::new(1),
            open,
        })
    }

    fn next_inbox(&self) -> Inbox {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(INBOX_DEPTH);
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(n, tx);
        Inbox {
            subject: format!("{}.{n}", self.prefix),
            n,
            rx,
            routes: self.open.clone(),
        }
    }
}

/// One call's inbox; closed when dropped.
struct Inbox {
    subject: String,
    n: u64,
    rx: mpsc::Receiver<Message>,
    routes: Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.n);
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
