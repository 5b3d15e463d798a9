//! A service's NATS endpoints, built from their types (DESIGN.md §6). A
//! service lists `(endpoint type, handler)` pairs; this module registers them
//! with the NATS service API and owns everything around a handler, once for
//! every service: reading the request into its type, the reply or error
//! reply, logging refusals and failures, the per-endpoint metrics, the
//! request-id span, and the bound on requests in flight. Past the bound a
//! request is refused at once with `service_unavailable` (and a
//! `retry_after`) instead of queueing without limit.

use std::{error::Error as StdError, future::Future, sync::Arc, time::Instant};

use async_nats::{
    Client,
    service::{Request, Service, ServiceExt},
};
use futures::{StreamExt, future::BoxFuture};
use serde::Serialize;
use shared_events::{Endpoint, ErrorCode, ServiceError};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{
    error::{Error, ReplyError},
    metrics::Metrics,
    nats::{error_reply, parse_request, request_id},
};

/// What a handler knows of its request besides the request itself.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The originating HTTP request id (`X-Request-Id`): events' `correlation_id`.
    pub request_id: Option<String>,
    /// The caller's reply inbox.
    pub reply_to: Option<String>,
    /// The service's NATS connection, for a handler that must ask another
    /// service before it answers.
    pub client: Client,
}

type Handler<S> = Arc<dyn Fn(S, Client, Ctx, Request) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// How a request ended, for the metrics: `ok` or its error word.
type Outcome = &'static str;

/// The endpoints of one service and their handlers.
pub struct Endpoints<S> {
    list: Vec<(&'static str, Handler<S>)>,
}

impl<S> Default for Endpoints<S> {
    fn default() -> Self {
        Self { list: Vec::new() }
    }
}

impl<S: Clone + Send + Sync + 'static> Endpoints<S> {
    /// Endpoint `E`, answered with one reply.
    pub fn endpoint<E, F, Fut, Err>(mut self, handler: F) -> Self
    where
        E: Endpoint,
        F: Fn(S, Ctx, E::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E::Reply, Err>> + Send + 'static,
        Err: ReplyError,
    {
        let handler = Arc::new(handler);
        let h: Handler<S> = Arc::new(move |state, _client, ctx, req| {
            let handler = handler.clone();
            Box::pin(async move {
                let result = match parse_request::<E::Request>(&req.message.payload) {
                    Ok(r) => handler(state, ctx, r).await.map_err(|e| refused(&e)),
                    Err(e) => Err(input_refused(e)),
                };
                respond(&req, &result).await;
                outcome(&result)
            })
        });
        self.list.push((E::SUBJECT, h));
        self
    }

    /// Endpoint `E`, answered in frames: the first is the service reply, the
    /// rest are published to the caller's inbox in order (a million codes do
    /// not fit in one NATS message). Frames are built one at a time.
    pub fn framed<E, F, Fut, Err, I>(mut self, handler: F) -> Self
    where
        E: Endpoint,
        F: Fn(S, Ctx, E::Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, Err>> + Send + 'static,
        Err: ReplyError,
        I: Iterator<Item = E::Reply> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let h: Handler<S> = Arc::new(move |state, client, ctx, req| {
            let handler = handler.clone();
            Box::pin(async move {
                let reply_to = ctx.reply_to.clone();
                let frames = match parse_request::<E::Request>(&req.message.payload) {
                    Ok(r) => handler(state, ctx, r).await.map_err(|e| refused(&e)),
                    Err(e) => Err(input_refused(e)),
                };
                let mut frames = match frames {
                    Ok(f) => f,
                    Err(e) => {
                        let failed: Result<(), _> = Err(e);
                        respond(&req, &failed).await;
                        return outcome(&failed);
                    }
                };
                let first: Result<Option<E::Reply>, ServiceError> = Ok(frames.next());
                respond(&req, &first).await;
                let Some(reply_to) = reply_to else {
                    return "ok";
                };
                for frame in frames {
                    let body = match serde_json::to_vec(&frame) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot encode a frame");
                            return ErrorCode::Internal.as_str();
                        }
                    };
                    if let Err(e) = client.publish(reply_to.clone(), body.into()).await {
                        tracing::error!(error = %e, "reply frames interrupted");
                        return ErrorCode::Internal.as_str();
                    }
                }
                if let Err(e) = client.flush().await {
                    tracing::warn!(error = %e, "flush after the frames failed");
                }
                "ok"
            })
        });
        self.list.push((E::SUBJECT, h));
        self
    }

    /// Registers the NATS service `name` with every endpoint (named after its
    /// subject without the service, e.g. `groups-create`) in the default
    /// queue group, so replicas share the load. Each request runs on its own
    /// task on `tracker` (so shutdown can wait for them) while it holds one of
    /// `bound`'s permits.
    pub(crate) async fn serve(
        self,
        client: &Client,
        service: (&'static str, &'static str),
        state: S,
        tracker: &TaskTracker,
        bound: Arc<Semaphore>,
        metrics: Metrics,
    ) -> Result<Service, Error> {
        let (name, description) = service;
        let nats_error = |source| Error::Service {
            service: name,
            source,
        };
        let svc = client
            .service_builder()
            .description(description)
            .start(name, env!("CARGO_PKG_VERSION"))
            .await
            .map_err(nats_error)?;
        for (subject, handler) in self.list {
            let endpoint_name = subject
                .strip_prefix(name)
                .map(|s| s.trim_start_matches('.'))
                .unwrap_or(subject)
                .replace('.', "-");
            let mut endpoint = svc
                .endpoint_builder()
                .name(endpoint_name)
                .add(subject)
                .await
                .map_err(nats_error)?;
            let (tasks, state, client) = (tracker.clone(), state.clone(), client.clone());
            let (bound, metrics) = (bound.clone(), metrics.clone());
            tracker.spawn(async move {
                while let Some(req) = endpoint.next().await {
                    let started = Instant::now();
                    let Ok(permit) = bound.clone().try_acquire_owned() else {
                        let overloaded: Result<(), _> = Err(ServiceError::overloaded(name));
                        respond(&req, &overloaded).await;
                        metrics.observe(subject, "overloaded", started.elapsed().as_secs_f64());
                        continue;
                    };
                    let ctx = Ctx {
                        request_id: request_id(&req.message),
                        reply_to: req.message.reply.as_ref().map(|r| r.to_string()),
                        client: client.clone(),
                    };
                    let span = tracing::info_span!(
                        "request",
                        endpoint = subject,
                        request_id = ctx.request_id.as_deref().unwrap_or("")
                    );
                    let work = handler(state.clone(), client.clone(), ctx, req);
                    let metrics = metrics.clone();
                    tasks.spawn(
                        async move {
                            let outcome = work.await;
                            metrics.observe(subject, outcome, started.elapsed().as_secs_f64());
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
            });
        }
        Ok(svc)
    }
}

/// A request the service could not even read: the caller's fault.
fn input_refused(e: ServiceError) -> ServiceError {
    tracing::debug!(code = e.code.as_str(), message = %e.message, "request refused");
    e
}

/// A handler's error as its reply, logged once here: failures of ours as
/// errors with their whole cause chain, refusals at debug.
fn refused<E: ReplyError>(e: &E) -> ServiceError {
    let reply = e.to_reply();
    if reply.code == ErrorCode::Internal {
        tracing::error!(error = %chain(e), "request failed");
    } else {
        tracing::debug!(code = reply.code.as_str(), error = %e, "request refused");
    }
    reply
}

/// An error and its sources, `outer: inner: innermost`.
pub fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn outcome<T>(result: &Result<T, ServiceError>) -> Outcome {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}

/// Answers a request with a JSON value or an error reply. An error is sent as
/// a normal payload with the error headers set, because the service API's own
/// error reply has no body to carry `{code, message}`.
async fn respond<T: Serialize>(req: &Request, result: &Result<T, ServiceError>) {
    let sent = match result {
        Ok(value) => match serde_json::to_vec(value) {
            Ok(body) => req.respond(Ok(body.into())).await,
            Err(e) => {
                let err = ServiceError::new(ErrorCode::Internal, e.to_string());
                let (headers, body) = error_reply(&err);
                req.respond_with_headers(Ok(body), headers).await
            }
        },
        Err(err) => {
            let (headers, body) = error_reply(err);
            req.respond_with_headers(Ok(body), headers).await
        }
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not send reply");
    }
}
